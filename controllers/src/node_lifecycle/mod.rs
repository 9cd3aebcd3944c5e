//! The node lifecycle controller (upstream `pkg/controller/nodelifecycle`): notices nodes whose kubelet
//! stopped heartbeating (Lease or `Ready` condition older than the monitor grace period) and marks
//! them `Unknown`, keeps the condition-derived taints (`not-ready`, `unreachable`, `unschedulable`,
//! pressure) in line with each node, marks pods of unreachable nodes not ready, and as the taint
//! manager deletes pods whose `NoExecute` tolerations ran out.
//!
//! Decisions are pure functions of (node, lease, pods, now) in `health`, `taints` and `eviction`;
//! `controller` does the I/O. Must not depend on the store or the control plane's internals.

pub mod controller;
pub mod eviction;
pub mod health;
pub mod taints;

#[cfg(test)]
mod tests;

pub use controller::{spawn, NodeLifecycleController};
