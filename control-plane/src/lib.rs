//! The Gantry control plane: one replica of the replicated store, serving its peer and etcd-compatible
//! client APIs and the Kubernetes API, and (while it leads Raft) running the scheduler and controllers
//! of `gantry-controllers` against its own API in-process.
//!
//! Must not depend on CRI or the node agent.

pub mod api;
pub mod controller_host;
pub mod replica;

pub use replica::{run_replica, ReplicaArgs, ReplicaError};
