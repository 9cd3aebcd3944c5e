//! Gantry's replicated store: an etcd-like MVCC key space with watches and leases, replicated by
//! openraft over RocksDB, served over an etcd-v3-compatible gRPC API.
//!
//! Owns: the openraft type configuration, RocksDB log storage and state machine, the MVCC key space
//! with a global revision, transactions, watches from any retained revision, compaction and log purge,
//! leases, snapshots, membership, the Raft peer transport and the etcd client API.
//! Must not depend on anything Kubernetes: the control plane builds its API on top of `Store`.

pub mod config;
pub mod core_watch;
pub mod error;
pub mod etcd_api;
pub mod lease;
pub mod metrics;
pub mod mvcc;
pub mod network;
pub mod proto;
pub mod server;
pub mod storage;
pub mod store;
pub mod types;
pub mod watch;

pub use config::StoreConfig;
pub use error::{RequestError, StoreError};
pub use server::{run, ServeOptions};
pub use store::Store;
