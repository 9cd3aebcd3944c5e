//! `rollout-bench`: a Deployment of many replicas from creation to Available, then a full rolling
//! update of it, on simulated nodes.
//!
//! It speaks only the REST API (the client, kubeconfig handling and self-started 3-replica cluster
//! of [`api`](crate::api)); the pods are run by a `gantry-sim-nodes` process. Creation and rollout
//! are observed by watch (pods and the Deployment of its namespace), never by polling.
//!
//! Module map:
//! - [`cli`]: command-line flags.
//! - [`objects`]: the Deployment, the template patch, and maxSurge/maxUnavailable in pods.
//! - [`observer`]: the watch events turned into milestones, counts and extremes (pure).
//! - [`sim_process`]: the simulated nodes' process.
//! - [`report`]: the result, its tables and JSON.
//! - [`run`]: the benchmark sequence.

pub mod cli;
pub mod objects;
pub mod observer;
pub mod report;
pub mod run;
pub mod sim_process;
