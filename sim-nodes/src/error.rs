//! Errors of the simulator's public entry points.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig { path: PathBuf, source: kube::config::KubeconfigError },
    #[error("building a client from kubeconfig {path}: {source}")]
    Client { path: PathBuf, source: kube::Error },
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
    #[error("invalid config: {0}")]
    Config(String),
}
