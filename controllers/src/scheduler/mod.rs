//! The scheduler. Pod placement: the decision logic with Kubernetes semantics, as a function of a pod and
//! a [`ClusterSnapshot`] of nodes and bound pods. It filters nodes (readiness, cordon, taints, node
//! affinity/selector, host ports, CPU/memory/pod-count fit, required pod anti-affinity), scores the feasible
//! ones and picks the best, or explains why none fits with the upstream `FailedScheduling` message.
//!
//! The placement modules are pure and must not depend on the store, HTTP or I/O. Only [`driver`] (the
//! event loop fed by the informers, binding concurrently) and [`bind`] (the API writes) do I/O.

pub mod bind;
pub mod changes;
pub mod driver;
pub mod filters;
pub mod matching;
pub mod pod_info;
pub mod quantity;
pub mod queue;
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
#[cfg(test)]
mod tests_snapshot;

pub use driver::spawn;
pub use quantity::{parse_milli_value, parse_value, QuantityError};
pub use reason::Reason;
pub use resources::Resources;
pub use schedule::{feasible_nodes_to_find, schedule, schedule_in, Placement, SearchWindow};
pub use snapshot::{ClusterSnapshot, NodeInfo};
pub use unschedulable::Unschedulable;
