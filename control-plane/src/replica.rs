//! The `gantry-control-plane` command line and the replica it runs. The flags are a contract other
//! tools and tests rely on (see the README): `--node-id --data-dir --listen-peer --listen-client
//! --initial-cluster`, plus optional tuning.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use raft_store::config::{parse_cluster, DEFAULT_MAX_REQUEST_BYTES};

use crate::api::auth::UserInfo;
use crate::api::services::ranges::{DEFAULT_CLUSTER_IP_RANGE, DEFAULT_NODE_PORT_RANGE};
use crate::api::services::{api_endpoints, repair, system_services, ClusterIpRange, NodePortRange, ServiceRanges};
use raft_store::{ServeOptions, Store, StoreConfig, StoreError};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Parser)]
#[command(name = "gantry-control-plane", version, about = "One replica of Gantry's control plane")]
pub struct ReplicaArgs {
    /// This replica's node id (a member of --initial-cluster).
    #[arg(long)]
    pub node_id: u64,
    /// Directory holding this replica's data; created if missing.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address to serve Raft peer traffic on.
    #[arg(long)]
    pub listen_peer: String,
    /// Address to serve the etcd v3 client API on.
    #[arg(long)]
    pub listen_client: String,
    /// Peer addresses of the initial members: `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`.
    #[arg(long)]
    pub initial_cluster: String,
    /// Largest client request accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Client URLs announced to other members (default: http://<listen-client>).
    #[arg(long, value_delimiter = ',')]
    pub advertise_client_urls: Vec<String>,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval_ms: u64,
    /// Minimum Raft election timeout in milliseconds (the maximum is twice this).
    #[arg(long, default_value_t = 600)]
    pub election_timeout_ms: u64,
    /// Take a Raft snapshot after this many applied entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_after_entries: u64,
    /// Automatic compaction keeps at least this many seconds of history.
    #[arg(long, default_value_t = 300)]
    pub compaction_retention_secs: u64,
    /// Automatic compaction keeps at least this many revisions.
    #[arg(long, default_value_t = 10_000)]
    pub compaction_min_revisions: i64,
    /// Interval of progress notifications for watches that ask for them, in seconds.
    #[arg(long, default_value_t = 600)]
    pub progress_notify_interval_secs: u64,
    /// Address to serve the Kubernetes API (HTTPS) on. Without it only the store APIs are served.
    #[arg(long)]
    pub listen_api: Option<String>,
    /// Directory with the cluster CA and certificates; created (with `admin.kubeconfig`) by the first
    /// replica that finds it empty, reused by the others. Default: `<data-dir>/pki`.
    #[arg(long)]
    pub pki_dir: Option<PathBuf>,
    /// Static bearer tokens: CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Serve the API only: never run the scheduler and controllers, even when leading.
    #[arg(long)]
    pub disable_controllers: bool,
    /// How long a node's heartbeats may stop before the node lifecycle controller marks it NotReady
    /// (upstream kube-controller-manager's flag): `40s`, `500ms`, `2m`, or plain seconds.
    #[arg(long, default_value = "40s", value_parser = parse_flag_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// IPv4 CIDR that Services' cluster IPs are allocated from (upstream kube-apiserver's flag); its
    /// first address goes to the `kubernetes` Service, its tenth to `kube-dns`. At least a /28.
    #[arg(long, default_value = DEFAULT_CLUSTER_IP_RANGE, value_parser = parse_cluster_ip_range)]
    pub service_cluster_ip_range: ClusterIpRange,
    /// Ports that NodePort and LoadBalancer Services' node ports are allocated from: `A-B` (or `A+N`).
    #[arg(long, default_value = DEFAULT_NODE_PORT_RANGE, value_parser = parse_node_port_range)]
    pub service_node_port_range: NodePortRange,
}

fn parse_cluster_ip_range(s: &str) -> Result<ClusterIpRange, String> {
    ClusterIpRange::parse(s).map_err(|e| e.reason().to_string())
}

fn parse_node_port_range(s: &str) -> Result<NodePortRange, String> {
    NodePortRange::parse(s).map_err(|e| e.reason().to_string())
}

/// A flag duration: a number with unit `ms`, `s`, `m` or `h`, or plain seconds.
fn parse_flag_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("invalid duration {s:?}: expected e.g. 40s"))?;
    let secs = |k: u64| std::time::Duration::from_secs(n.saturating_mul(k));
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "" | "s" => Ok(secs(1)),
        "m" => Ok(secs(60)),
        "h" => Ok(secs(3600)),
        _ => Err(format!("invalid duration {s:?}: unit must be ms, s, m or h")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("cannot listen for {what} on {addr}: {source}")]
    Listen { what: &'static str, addr: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("certificates in {dir}: {source}")]
    Pki { dir: String, source: crate::api::pki::PkiError },
    #[error("token file: {0}")]
    Auth(#[from] crate::api::auth::AuthError),
    #[error("serving the kubernetes api: {0}")]
    Api(std::io::Error),
}

impl ReplicaArgs {
    /// The store configuration these flags describe.
    pub fn store_config(&self) -> Result<StoreConfig, ReplicaError> {
        let initial = parse_cluster(&self.initial_cluster)?;
        let mut c = StoreConfig::new(self.node_id, &self.data_dir, initial);
        c.max_request_bytes = self.max_request_bytes;
        c.client_urls = if self.advertise_client_urls.is_empty() {
            vec![format!("http://{}", self.listen_client)]
        } else {
            self.advertise_client_urls.clone()
        };
        c.heartbeat_interval = Duration::from_millis(self.heartbeat_interval_ms);
        c.election_timeout_min = Duration::from_millis(self.election_timeout_ms);
        c.election_timeout_max = Duration::from_millis(self.election_timeout_ms * 2);
        c.snapshot_after_entries = self.snapshot_after_entries;
        c.keep_entries_after_snapshot = (self.snapshot_after_entries / 5).max(100);
        c.compaction_retention = Duration::from_secs(self.compaction_retention_secs);
        c.compaction_min_revisions = self.compaction_min_revisions;
        c.validate()?;
        Ok(c)
    }
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, ReplicaError> {
    TcpListener::bind(addr).await.map_err(|source| ReplicaError::Listen { what, addr: addr.to_string(), source })
}

/// Runs one replica until `shutdown` resolves.
pub async fn run_replica(
    args: ReplicaArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ReplicaError> {
    let config = args.store_config()?;
    let peer = bind("raft peers", &args.listen_peer).await?;
    let client = bind("clients", &args.listen_client).await?;
    tracing::info!(
        node_id = config.node_id,
        peer = %args.listen_peer,
        client = %args.listen_client,
        data_dir = %config.data_dir.display(),
        "starting replica"
    );
    let api = match &args.listen_api {
        Some(addr) => {
            Some((bind("the kubernetes api", addr).await?, api_config(&args, addr, config.max_request_bytes)?))
        }
        None => None,
    };
    let store = Store::open(config).await?;
    let options = ServeOptions { progress_notify_interval: Duration::from_secs(args.progress_notify_interval_secs) };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });
    let api_task = api.map(|(listener, api_config)| {
        let store = store.clone();
        let api_address = announced_address(&listener).map_err(ReplicaError::Api)?;
        let ranges = api_config.service_ranges;
        tracing::info!(address = %api_config.advertise_address, "serving the kubernetes api");
        let registry = prometheus::Registry::new();
        let controller_metrics = gantry_controllers::runtime::ControllerMetrics::register(&registry)
            .map_err(|e| ReplicaError::Api(std::io::Error::other(e)))?;
        let server = crate::api::ApiServer::new(api_config, store.clone(), registry).map_err(ReplicaError::Api)?;
        let objects = server.objects().clone();
        tokio::spawn(crate::api::namespace_cleanup::run_namespace_cleanup(objects.clone(), stopped()));
        tokio::spawn(repair::run_repair(store.clone(), objects.services().clone(), stopped()));
        tokio::spawn(async move { crate::api::bootstrap::ensure_bootstrap_objects(&objects).await });
        let system = kube::Client::new(server.local_service(apiserver_user()), "default");
        tokio::spawn(api_endpoints::run_identity_lease(system.clone(), args.node_id, api_address, stopped()));
        tokio::spawn(system_services::run_while_leader(store.clone(), system, ranges, api_address.port(), stopped()));
        if !args.disable_controllers {
            let mut config = gantry_controllers::ManagerConfig::new(controller_metrics);
            config.node_monitor_grace_period = args.node_monitor_grace_period;
            tokio::spawn(crate::controller_host::run_while_leader(server.clone(), store.clone(), config, stopped()));
        }
        let stop = stopped();
        Ok::<_, ReplicaError>(tokio::spawn(async move { server.serve(listener, stop).await }))
    });
    let api_task = api_task.transpose()?;
    raft_store::run(store, peer, client, options, stopped()).await?;
    if let Some(task) = api_task {
        if let Ok(Err(e)) = task.await {
            return Err(ReplicaError::Api(e));
        }
    }
    tracing::info!("replica stopped");
    Ok(())
}

/// The identity this replica's own API tasks (its Lease, the bootstrap Services and the `kubernetes`
/// endpoints) act as.
fn apiserver_user() -> UserInfo {
    UserInfo {
        name: "system:apiserver".to_string(),
        uid: String::new(),
        groups: vec!["system:masters".to_string(), "system:authenticated".to_string()],
    }
}

/// The API address other replicas and clients reach this one at: the bound address, with loopback
/// for an unspecified host (as the advertised address).
fn announced_address(listener: &TcpListener) -> std::io::Result<std::net::SocketAddr> {
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    Ok(addr)
}

/// TLS material, authentication and addresses for the Kubernetes API.
fn api_config(args: &ReplicaArgs, listen: &str, max_body_bytes: usize) -> Result<crate::api::ApiConfig, ReplicaError> {
    let pki_dir = args.pki_dir.clone().unwrap_or_else(|| args.data_dir.join("pki"));
    let host = listen.rsplit_once(':').map(|(h, _)| h).unwrap_or(listen).trim_matches(|c| c == '[' || c == ']');
    let advertise_host = if host == "0.0.0.0" || host == "::" || host.is_empty() { "127.0.0.1" } else { host };
    let port = listen.rsplit_once(':').map(|(_, p)| p).unwrap_or("6443");
    let advertise_address = format!("{advertise_host}:{port}");
    let pki_err = |source| ReplicaError::Pki { dir: pki_dir.display().to_string(), source };
    let pki =
        crate::api::pki::ensure_pki(&pki_dir, &[advertise_host.to_string()], &format!("https://{advertise_address}"))
            .map_err(pki_err)?;
    let tls = crate::api::tls::server_config(&pki).map_err(pki_err)?;
    let kubelet_tls = crate::api::tls::kubelet_client_config(&pki).map_err(pki_err)?;
    let authenticator = crate::api::auth::Authenticator::new(args.token_auth_file.as_deref())?;
    Ok(crate::api::ApiConfig {
        tls,
        authenticator: std::sync::Arc::new(authenticator),
        max_body_bytes,
        advertise_address,
        kubelet_tls,
        service_ranges: ServiceRanges {
            cluster_ip: args.service_cluster_ip_range,
            node_port: args.service_node_port_range,
        },
    })
}
