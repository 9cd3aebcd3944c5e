//! Simulated nodes, in the manner of kwok: each simulated node registers a Node, renews its Lease in
//! `kube-node-lease` and posts status like a kubelet, and the pods bound to it go Running (with fake
//! IPs and container statuses), finish or restart as their `sim.gantry.dev/*` annotations say, and are
//! removed once gracefully deleted. There are no containers. Only talks to the Kubernetes API through
//! `kube`; must not depend on Gantry's server crates.
//!
//! - `config`, `error`: the public settings and errors.
//! - `node_object`, `pod_plan`: pure decisions (what a Node/Lease/pod status must look like).
//! - `state`, `work_queue`: shared bookkeeping.
//! - `heartbeat`, `pod_worker`, `sim`: the I/O loops and their owner.

mod config;
mod error;
mod heartbeat;
pub mod node_object;
pub mod pod_plan;
mod pod_worker;
mod sim;
mod state;
mod work_queue;

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use config::SimConfig;
pub use error::SimError;
pub use pod_plan::{EXIT_CODE, READY, RUN_SECONDS};
pub use sim::SimNodes;

/// A client for the cluster in the kubeconfig at `path` (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, SimError> {
    client_from_kubeconfig_context(path, None).await
}

/// A client for the cluster of `context` (`None`: the current one) in the kubeconfig at `path`.
pub async fn client_from_kubeconfig_context(path: &Path, context: Option<&str>) -> Result<kube::Client, SimError> {
    let kubeconfig =
        Kubeconfig::read_from(path).map_err(|source| SimError::Kubeconfig { path: path.to_path_buf(), source })?;
    let options = KubeConfigOptions { context: context.map(str::to_string), ..KubeConfigOptions::default() };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| SimError::Kubeconfig { path: path.to_path_buf(), source })?;
    kube::Client::try_from(config).map_err(|source| SimError::Client { path: path.to_path_buf(), source })
}
