//! `sched-bench`: scheduler throughput and create->bound latency of any Kubernetes cluster.
//!
//! It registers simulated Ready nodes (renewing their Leases), creates small pods for the default
//! scheduler from many concurrent clients as fast as the API accepts them, watches the pods and reports
//! pods bound per second and create->bound latency percentiles. It speaks only the REST API (reusing
//! `api-bench`'s client, kubeconfig handling and self-started 3-replica cluster).
//!
//! Module map:
//! - [`cli`]: command-line flags.
//! - [`objects`]: node, Lease and pod bodies.
//! - [`nodes`]: registering, renewing and removing the simulated nodes.
//! - [`tracker`]: the pod watch and the create->bound figures.
//! - [`run`]: the benchmark sequence and report.

pub mod cli;
pub mod nodes;
pub mod objects;
pub mod run;
pub mod tracker;
