//! The DaemonSet controller: one pod per eligible node (node selector, required node affinity, tolerated
//! taints), placed by the scheduler through a `metadata.name` node affinity; ControllerRevisions per
//! template (for `kubectl rollout history/undo`), RollingUpdate (maxUnavailable/maxSurge) and OnDelete,
//! failed pods replaced with back-off, and the status `kubectl rollout status` reads.

pub mod controller;
pub mod node_fit;
pub mod plan;

#[cfg(test)]
mod tests;

pub use controller::{spawn, DaemonSetController};
pub use plan::{plan, DaemonSetPlan};
