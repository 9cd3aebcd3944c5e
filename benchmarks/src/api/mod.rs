//! `api-bench`: throughput, latency, LIST and watch-delay figures of any Kubernetes API server.
//!
//! It speaks only the public REST API (JSON over HTTPS/1.1, authenticated with the kubeconfig's
//! client certificate or bearer token), so it measures Gantry and upstream Kubernetes alike; without
//! a kubeconfig it starts its own 3-replica Gantry cluster and also reports the replicas' memory.
//!
//! Module map:
//! - [`cli`]: command-line flags.
//! - [`kubeconfig`]: YAML/JSON kubeconfig parsing and context resolution.
//! - [`client`]: keep-alive HTTPS connections and watch streams (hyper 1 + tokio-rustls).
//! - [`objects`]: the ConfigMap, Pod and Namespace bodies and REST paths.
//! - [`pod_watch`]: a reconnecting pod watch, decoded (shared with `sched-bench` and `podstart-bench`).
//! - [`load`]: closed-loop creates/gets and open-loop creates.
//! - [`list`]: pod preload and full/paged LISTs.
//! - [`watch`]: watch-event delay with many watchers.
//! - [`launcher`]: the self-started 3-replica cluster.
//! - [`server_metrics`]: request and reconcile counters from the servers' `/metrics`.
//! - [`target`]: the cluster a benchmark runs against (a kubeconfig's, or a self-started one).
//! - [`watch_follow`]: a watch that resumes from its last resourceVersion (shared by the benches).
//! - [`report`]: result rows, tables and JSON.
//! - [`bench`]: the phase sequence and cleanup.

pub mod bench;
pub mod cli;
pub mod client;
pub mod kubeconfig;
pub mod launcher;
pub mod list;
pub mod load;
pub mod objects;
pub mod pod_watch;
pub mod report;
pub mod server_metrics;
pub mod target;
pub mod watch;
pub mod watch_follow;
