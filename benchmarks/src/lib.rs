//! Benchmarks comparing the Gantry replicated store with etcd.
//!
//! The `store-bench` binary starts a 3-replica Gantry store and a 3-member etcd
//! cluster (one after the other, so they never compete for the CPU), drives both
//! through the etcd v3 gRPC API with the same client library (`etcd-client`) and
//! reports throughput, latency percentiles and memory use side by side.
//!
//! The `api-bench` binary measures a Kubernetes API server (Gantry's or any other) through its
//! REST API; its modules live under [`api`].
//!
//! Module map:
//! - [`cli`]: command-line flags and their parsers.
//! - [`ports`]: free loopback ports.
//! - [`process`]: a child process that is stopped (SIGTERM, then SIGKILL) on drop.
//! - [`cluster`]: a running 3-member cluster, readiness probing and teardown.
//! - [`etcd`] / [`gantry`]: launchers for the two systems.
//! - [`latency`]: latency histograms and percentiles.
//! - [`workload`]: the load generator (puts and linearizable reads).
//! - [`rss`]: memory figures from `/proc/<pid>/status`.
//! - [`report`]: result types, text tables and the JSON document.
//! - [`bench`]: the per-system benchmark sequence.
//! - [`api`]: everything of `api-bench`.
//! - [`sched`]: everything of `sched-bench` (scheduler throughput and latency).
//! - [`rollout`]: everything of `rollout-bench` (a large Deployment's creation and rolling update).
//! - [`cpu`]: CPU time of processes, from `/proc`.
//! - [`podstart`]: everything of `podstart-bench` (pod start latency on one node, against raw CRI).
//! - [`svc`]: everything of `svc-bench` (the node agent's service proxy: resync, change → rule,
//!   added latency).

pub mod api;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod cpu;
pub mod etcd;
pub mod gantry;
pub mod latency;
pub mod podstart;
pub mod ports;
pub mod process;
pub mod report;
pub mod rollout;
pub mod rss;
pub mod sched;
pub mod svc;
pub mod workload;
