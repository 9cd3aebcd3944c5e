//! Gantry's scheduler and controllers: the loops that turn desired state written through the Kubernetes
//! API into pods placed on nodes, and keep it that way through failures.
//!
//! Everything here talks to the cluster only through a `kube::Client`, so it works against any
//! conformant API server; the control plane hands it an in-process client of its own API while its
//! replica leads Raft. Decision logic (placement, reconcile plans) is pure and unit-tested from object
//! snapshots; the `runtime` module does the I/O: informers, work queues, workers, events.
//!
//! Must not depend on the store, the control plane's internals or CRI.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbage_collector;
pub mod history;
pub mod job;
pub mod manager;
pub mod node_lifecycle;
pub mod pods;
pub mod replicaset;
pub mod runtime;
pub mod scheduler;
pub mod serviceaccount;
pub mod statefulset;

pub use manager::{run_controller_manager, ManagerConfig};
