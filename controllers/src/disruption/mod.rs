//! The disruption controller (upstream `pkg/controller/disruption`): keeps each PodDisruptionBudget's
//! status (expected, healthy and desired-healthy pod counts, `disruptionsAllowed`, the
//! `DisruptionAllowed` condition, admitted evictions in `disruptedPods`) current, which the eviction API
//! consults and decrements.
//!
//! `plan` is pure; `controller` does the I/O. Must not depend on the store or the control plane.

pub mod controller;
pub mod plan;

#[cfg(test)]
mod tests;

pub use controller::{spawn, DisruptionController};
pub use plan::{plan, DisruptionPlan, Workloads};
