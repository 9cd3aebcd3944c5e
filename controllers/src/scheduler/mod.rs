//! Pure pod placement: the scheduler's decision logic with Kubernetes semantics, as a function of a pod and
//! a [`ClusterSnapshot`] of nodes and bound pods. It filters nodes (readiness, cordon, taints, node
//! affinity/selector, host ports, CPU/memory/pod-count fit, required pod anti-affinity), scores the feasible
//! ones and picks the best, or explains why none fits with the upstream `FailedScheduling` message.
//!
//! Must not depend on the store, HTTP or any I/O: callers build the snapshot and bind the result.

pub mod filters;
pub mod matching;
pub mod quantity;
pub mod reason;
pub mod resources;
pub mod schedule;
pub mod scoring;
pub mod snapshot;
pub mod taints;
pub mod unschedulable;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_scoring;

pub use quantity::{parse_milli_value, parse_value, QuantityError};
pub use reason::Reason;
pub use resources::Resources;
pub use schedule::schedule;
pub use snapshot::ClusterSnapshot;
pub use unschedulable::Unschedulable;
