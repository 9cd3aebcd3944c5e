//! Gantry node agent: registers its Node (capacity, conditions, Lease heartbeats) and runs the pods
//! bound to it on a CRI runtime (containerd or CRI-O), reporting their status back.
//!
//! Layout: [`config`] (the flag contract), [`machine`] (facts read from /proc), [`runtime`] (thin CRI
//! client), [`node`] (Node status, pure, and its heartbeat loop), [`pod`] (pure planning, status, env
//! and CRI configs, and the per-pod workers), [`objects`] (the ConfigMaps and Secrets pods read, each
//! followed by a watch), [`volume`] (volume plans, mounts and their set-up on the host), [`server`]
//! (the HTTPS server for logs, exec and metrics), [`metrics`] (the registry it serves),
//! [`events`] (the kubelet's core/v1 Events), [`services`] (the cluster's Services joined with their
//! endpoints), [`dns`] (cluster DNS answered from them, and the redirect pods reach it through) and
//! [`proxy`] (the service proxy: an nftables table for ClusterIPs and NodePorts).
//!
//! It talks to the control plane only through the public Kubernetes API, so it could serve any
//! conformant API server; it must not depend on `raft-store`, `control-plane` or `controllers`. The
//! CRI bindings come from `gantry-cri-proto`. The binary is `gantry-node-agent`.

pub mod config;
pub mod dns;
pub mod events;
pub mod machine;
pub mod metrics;
pub mod node;
pub mod objects;
pub mod pod;
pub mod proxy;
pub mod runtime;
pub mod server;
pub mod services;
pub mod volume;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;
use tracing::{info, warn};

pub use config::{Config, ProxyMode};

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
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    #[error("server tls: {0}")]
    Tls(#[from] server::tls::TlsError),
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("service proxy: {0}")]
    Proxy(#[from] proxy::NftError),
    #[error("cluster DNS: {0}")]
    Dns(#[from] dns::DnsSetupError),
    #[error("reading {path}: {source}")]
    ResolvConf { path: String, source: std::io::Error },
}

/// Reads a kubeconfig file into a client configuration.
pub async fn kube_config(path: &std::path::Path) -> Result<kube::Config, AgentError> {
    let kubeconfig_err = |source| AgentError::Kubeconfig { path: path.display().to_string(), source };
    let kubeconfig = Kubeconfig::read_from(path).map_err(kubeconfig_err)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(kubeconfig_err)
}

/// Builds an API client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<kube::Client, AgentError> {
    Ok(kube::Client::try_from(kube_config(path).await?)?)
}

/// How long the service catalog waits for more Service and EndpointSlice changes before publishing:
/// a rollout's burst of slice updates becomes one proxy sync (and DNS answers lag by at most this).
pub const SERVICE_CATALOG_DEBOUNCE: Duration = Duration::from_millis(50);

/// Grace period given to containers stopped by [`cleanup`].
pub const CLEANUP_GRACE: Duration = Duration::from_secs(5);

/// Stops and removes everything this node created on the runtime and under its root directory, and
/// its cluster DNS redirect and service proxy tables; returns how many pods were removed. The API is
/// not touched.
pub async fn cleanup(config: &Config) -> Result<usize, AgentError> {
    config.validate()?;
    // The tables first: they need no runtime. Without nft there can be no proxy table to delete.
    let table = dns::redirect::table_name(&config.node_name).map_err(dns::DnsSetupError::from)?;
    if dns::redirect::remove(&table).await.map_err(dns::DnsSetupError::from)? {
        info!(%table, "removed the cluster DNS redirect");
    }
    let table = proxy::table_name(&config.node_name);
    match proxy::Nft::default().delete_table(&table).await {
        Ok(()) => info!(%table, "deleted the service proxy table"),
        Err(proxy::NftError::Missing(_)) => {}
        Err(e) => return Err(AgentError::Proxy(e)),
    }
    let runtime = runtime::Runtime::connect(&config.runtime_endpoint, CRI_TIMEOUT).await?;
    let sandboxes = runtime.sandboxes(runtime::node_selector(&config.node_name)).await?;
    let mut uids: std::collections::BTreeSet<String> =
        sandboxes.iter().filter_map(|s| s.labels.get(runtime::POD_UID_LABEL).cloned()).collect();
    uids.extend(volume::pod_dir_uids(&config.root_dir));
    for uid in &uids {
        info!(pod_uid = %uid, "removing pod");
        pod::teardown::teardown(&runtime, &config.node_name, &config.root_dir, uid, CLEANUP_GRACE).await?;
    }
    // Whatever else is left under the pods directory (logs of pods that never got a sandbox).
    let pods_dir = config.root_dir.join("pods");
    for (mount, e) in volume::host::unmount_under(&pods_dir) {
        warn!(mount = %mount.display(), error = %e, "unmounting");
    }
    match std::fs::remove_dir_all(&pods_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(AgentError::RootDir { path: pods_dir.display().to_string(), source }),
    }
    Ok(uids.len())
}

/// Runs the agent until `shutdown` becomes true. Running pods are left alone on shutdown: a restarted
/// agent adopts them.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
    config.validate()?;
    let kube_config = kube_config(&config.kubeconfig).await?;
    // The cluster CA signs the API server's kubelet client certificate, which the server requires.
    let cluster_ca = kube_config.root_cert.clone().unwrap_or_default();
    let client = kube::Client::try_from(kube_config)?;
    let metrics = Arc::new(metrics::AgentMetrics::new()?);
    let pods_dir = config.root_dir.join("pods");
    std::fs::create_dir_all(&pods_dir)
        .map_err(|source| AgentError::RootDir { path: pods_dir.display().to_string(), source })?;
    let listen = config.listen_addr()?;
    let machine = machine::MachineInfo::read();
    let allocatable_cpu_millis = (machine.cpus * 1000).saturating_sub(config.reserved_cpu_millis);
    let allocatable_memory_bytes = machine.memory_bytes.saturating_sub(config.reserved_memory_mib * 1024 * 1024);
    let hosts = vec![config.node_ip().to_string(), config.node_name.clone(), "localhost".into(), "127.0.0.1".into()];
    let (cert, key) = server::tls::ensure_serving_cert(&config.root_dir.join("pki"), &hosts)?;
    let tls = server::tls::server_config(&cert, &key, &cluster_ca)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| AgentError::Listen { addr: listen.to_string(), source })?;
    let host_resolv = dns::ResolvConf::read(&config.resolv_conf)
        .map_err(|source| AgentError::ResolvConf { path: config.resolv_conf.display().to_string(), source })?;
    // One feed of the cluster's Services and endpoints serves the DNS server and the proxy.
    let catalog = services::feed::spawn(client.clone(), SERVICE_CATALOG_DEBOUNCE, shutdown.clone());
    let dns_server = dns::DnsSetup::from_config(&config, &host_resolv)?
        .start(catalog.clone(), metrics.clone(), shutdown.clone())
        .await?;
    let facts = node::NodeFacts {
        name: config.node_name.clone(),
        ip: config.node_ip().to_string(),
        port: listen.port(),
        pod_cidr: config.pod_cidr.clone(),
        machine,
        reserved_cpu_millis: config.reserved_cpu_millis,
        reserved_memory_bytes: config.reserved_memory_mib * 1024 * 1024,
        max_pods: config.max_pods,
        runtime_version: String::new(),
        runtime_not_ready: Some("runtime not contacted yet".into()),
        pressure: Default::default(),
    };
    let thresholds =
        node::pressure::Thresholds::parse(&config.eviction_hard).map_err(config::ConfigError::EvictionHard)?;
    let heartbeat = node::Heartbeat::new(
        client.clone(),
        facts,
        config.runtime_endpoint.clone(),
        config.lease_renew_seconds,
        node::heartbeat::PressureSource { fs_path: config.root_dir.clone(), thresholds },
    );
    let heartbeat = tokio::spawn(heartbeat.run(shutdown.clone()));
    let recorder = events::EventRecorder::new(client.clone(), config.node_name.clone());
    // The proxy needs no runtime: it starts before the agent waits for one.
    let proxy = match config.proxy_mode {
        ProxyMode::Nftables => {
            let proxy = proxy::Proxy {
                netfilter: proxy::Nft::default(),
                table: proxy::table_name(&config.node_name),
                metrics: proxy::ProxyMetrics::register(metrics.registry())?,
                events: Some((recorder.clone(), node_reference(&config.node_name))),
            };
            for warning in proxy::host::apply(&proxy::host::required(std::path::Path::new("/proc/sys"))) {
                warn!(%warning, "service proxy host setting");
            }
            info!(table = %proxy.table, "service proxy running (nftables)");
            Some(tokio::spawn(proxy.run(catalog, shutdown.clone())))
        }
        ProxyMode::None => None,
    };
    let runtime = loop {
        match runtime::Runtime::connect(&config.runtime_endpoint, CRI_TIMEOUT).await {
            Ok(runtime) => break runtime.with_metrics(metrics.clone()),
            Err(e) => warn!(error = %e, "runtime unreachable; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    };
    info!(node = %config.node_name, endpoint = %config.runtime_endpoint, %listen, "node agent running");
    let state = Arc::new(server::ServerState {
        node: config.node_name.clone(),
        root: config.root_dir.clone(),
        runtime: runtime.clone(),
        metrics: metrics.clone(),
    });
    let mut server_shutdown = shutdown.clone();
    let server = tokio::spawn(server::run(state, tls, listener, async move {
        let _ = server_shutdown.wait_for(|stop| *stop).await;
    }));
    let env = Arc::new(pod::worker::WorkerEnv {
        objects: objects::ObjectCache::new(client.clone()),
        host_paths: volume::HostPathPolicy { allowed_prefixes: config.allowed_host_paths.clone() },
        allocatable_cpu_millis: i64::try_from(allocatable_cpu_millis).unwrap_or(i64::MAX),
        allocatable_memory_bytes: i64::try_from(allocatable_memory_bytes).unwrap_or(i64::MAX),
        client,
        pull_runtime: runtime.with_timeout(PULL_TIMEOUT),
        runtime,
        node: config.node_name.clone(),
        root: config.root_dir.clone(),
        host_ip: config.node_ip().to_string(),
        resync: config.pod_resync_seconds,
        metrics,
        events: recorder,
        dns: pod::dns_config::PodDnsSettings {
            cluster_dns: config.cluster_dns,
            cluster_domain: config.cluster_domain.clone(),
            host: host_resolv,
        },
    });
    pod::manager::run(env, shutdown.clone()).await;
    let _ = heartbeat.await;
    if let Some(proxy) = proxy {
        let _ = proxy.await;
    }
    let _ = dns_server.await;
    match server.await {
        Ok(Err(e)) => warn!(error = %e, "agent server stopped with an error"),
        Err(e) => warn!(error = %e, "agent server task failed"),
        Ok(Ok(())) => {}
    }
    Ok(())
}

/// The reference of Node `name` for events about it (upstream uses the name as its uid).
fn node_reference(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.into()),
        uid: Some(name.into()),
        ..Default::default()
    }
}
