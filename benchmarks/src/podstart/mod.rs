//! `podstart-bench`: pod start latency and throughput on one node, through the Kubernetes API and the
//! node agent against raw CRI calls on the same containerd, and the agent's memory with many pods.
//!
//! It starts everything itself under one temporary directory: a private containerd with its own CNI
//! bridge and the local busybox image (`gantry-local-runtime`), three `gantry-control-plane` replicas
//! (`api-bench`'s launcher) and one `gantry-node-agent`. Needs root.
//!
//! Module map:
//! - [`cli`]: command-line flags.
//! - [`locks`]: the test suite's machine-wide locks.
//! - [`workload`]: the pod, as an API object and as CRI configs (pure).
//! - [`figures`]: latency percentiles and throughput of a batch (pure).
//! - [`node`]: containerd, network, images, cluster and agent; their teardown.
//! - [`raw`]: the raw CRI batches.
//! - [`tracker`]: API pod milestones from the pod watch.
//! - [`api_pods`]: the API batches.
//! - [`memory`]: the agent's memory samples.
//! - [`report`]: result, targets, table and JSON.
//! - [`run`]: the phase sequence.

pub mod api_pods;
pub mod cli;
pub mod figures;
pub mod locks;
pub mod memory;
pub mod node;
pub mod raw;
pub mod report;
pub mod run;
pub mod tracker;
pub mod workload;
