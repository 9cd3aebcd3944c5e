//! Gantry node agent: registers its Node (capacity, conditions, Lease heartbeats) and runs the pods
//! bound to it on a CRI runtime (containerd or CRI-O), reporting their status back.
//!
//! Layout: [`config`] (the flag contract), [`machine`] (facts read from /proc), [`runtime`] (thin CRI
//! client), [`node`] (Node status, pure, and its heartbeat loop), [`pod`] (pure planning, status and
//! CRI configs, and the per-pod workers), [`events`] (the kubelet's core/v1 Events).
//!
//! It talks to the control plane only through the public Kubernetes API, so it could serve any
//! conformant API server; it must not depend on `raft-store`, `control-plane` or `controllers`. The
//! CRI bindings come from `gantry-cri-proto`. The binary is `gantry-node-agent`.

pub mod config;
pub mod events;
pub mod machine;
pub mod node;
pub mod pod;
pub mod runtime;

use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;
use tracing::{info, warn};

pub use config::Config;

/// CRI calls other than pulls and stops must answer within this.
pub const CRI_TIMEOUT: Duration = Duration::from_secs(60);
/// Image pulls may take this long.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig { path: String, source: kube::config::KubeconfigError },
    #[error("building the API client: {0}")]
    Client(#[from] kube::Error),
    #[error("creating {path}: {source}")]
    RootDir { path: String, source: std::io::Error },
}

/// Builds an API client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<kube::Client, AgentError> {
    let kubeconfig_err = |source| AgentError::Kubeconfig { path: path.display().to_string(), source };
    let kubeconfig = Kubeconfig::read_from(path).map_err(kubeconfig_err)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kubeconfig_err)?;
    Ok(kube::Client::try_from(config)?)
}

/// Runs the agent until `shutdown` becomes true. Running pods are left alone on shutdown: a restarted
/// agent adopts them.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
    config.validate()?;
    let client = client_from_kubeconfig(&config.kubeconfig).await?;
    let pods_dir = config.root_dir.join("pods");
    std::fs::create_dir_all(&pods_dir)
        .map_err(|source| AgentError::RootDir { path: pods_dir.display().to_string(), source })?;
    let listen = config.listen_addr()?;
    let facts = node::NodeFacts {
        name: config.node_name.clone(),
        ip: config.node_ip().to_string(),
        port: listen.port(),
        pod_cidr: config.pod_cidr.clone(),
        machine: machine::MachineInfo::read(),
        reserved_cpu_millis: config.reserved_cpu_millis,
        reserved_memory_bytes: config.reserved_memory_mib * 1024 * 1024,
        max_pods: config.max_pods,
        runtime_version: String::new(),
        runtime_not_ready: Some("runtime not contacted yet".into()),
    };
    let heartbeat =
        node::Heartbeat::new(client.clone(), facts, config.runtime_endpoint.clone(), config.lease_renew_seconds);
    let heartbeat = tokio::spawn(heartbeat.run(shutdown.clone()));
    let runtime = loop {
        match runtime::Runtime::connect(&config.runtime_endpoint, CRI_TIMEOUT).await {
            Ok(runtime) => break runtime,
            Err(e) => warn!(error = %e, "runtime unreachable; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    };
    info!(node = %config.node_name, endpoint = %config.runtime_endpoint, "node agent running");
    let recorder = events::EventRecorder::new(client.clone(), config.node_name.clone());
    let env = Arc::new(pod::worker::WorkerEnv {
        client,
        pull_runtime: runtime.with_timeout(PULL_TIMEOUT),
        runtime,
        node: config.node_name.clone(),
        root: config.root_dir.clone(),
        host_ip: config.node_ip().to_string(),
        resync: config.pod_resync_seconds,
        events: recorder,
    });
    pod::manager::run(env, shutdown.clone()).await;
    let _ = heartbeat.await;
    Ok(())
}
