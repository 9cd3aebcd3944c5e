//! Gantry's end-to-end test support.
//!
//! The library part owns the reusable machinery of the integration tests in
//! `tests/`: a process-level cluster harness ([`ProcessCluster`], launched via
//! [`Launcher`] against Gantry or, to validate the tests, etcd), bounded client
//! helpers ([`client`]), an operation recorder ([`HistoryRecorder`]) and a
//! linearizability checker for register histories ([`check_history`]).

pub mod client;
pub mod cluster;
pub mod history;
pub mod kube;
pub mod launcher;
pub mod linearizability;
pub mod lock;
pub mod node_env;
pub mod poll;

/// The private containerd and local images, from `gantry-local-runtime`.
pub use gantry_local_runtime::{containerd, images};

pub use client::{bounded, collect_events, connect, ClientError, WatchedEvent};
pub use cluster::{error_chain, ClusterConfig, ClusterError, ProcessCluster};
pub use history::{HistoryError, HistoryRecorder, Invocation};
pub use launcher::{free_port, free_ports, Backend, Launcher, LauncherError, MemberSpec};
pub use linearizability::{
    check_history, check_history_with, CheckResult, CheckerConfig, Input, Operation, Outcome, Output,
};
pub use lock::{LockError, ProcessLock};
pub use tonic::Code;
