//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector, adopting orphans
//! and releasing pods that no longer match, and reports counts in `status`.

pub mod controller;
pub mod plan;

#[cfg(test)]
mod tests;

pub use controller::{spawn, ReplicaSetController};
pub use plan::{plan, ReplicaSetPlan, BURST_REPLICAS};
