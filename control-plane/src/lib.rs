//! The Gantry control plane: for now, one replica of the replicated store served over its peer and
//! etcd-compatible client APIs. Later issues add the Kubernetes API, scheduler and controllers on top
//! of the same `raft_store::Store`.
//!
//! Must not depend on CRI or the node agent.

pub mod api;
pub mod replica;
pub mod scheduler;

pub use replica::{run_replica, ReplicaArgs, ReplicaError};
