//! A 3-replica Gantry cluster serving the Kubernetes API, started by `api-bench` itself when no
//! `--kubeconfig` is given.
//!
//! Each replica gets the store flags of `CONTRACT-store.md` plus `--listen-api 127.0.0.1:<port>` and a
//! shared `--pki-dir`, in which the first replica writes the CA and `admin.kubeconfig`. Readiness is
//! every replica reporting a Raft leader (the store's `Maintenance.Status`, via [`Cluster`]) and then
//! every replica's API answering `GET /api/v1/namespaces/default` with the admin credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, ClusterError, SystemKind};
use crate::gantry::{GantryError, GantryLauncher, REPLICAS};
use crate::ports::{free_ports, PortError};
use crate::process::{ManagedProcess, ProcessError};

use super::client::{ClientError, Connector};
use super::kubeconfig::{self, KubeconfigError, ResolvedKubeconfig, ServerAddress};

/// Name of the shared PKI directory inside the cluster's temp dir.
const PKI_DIR: &str = "pki";
/// The admin kubeconfig the first replica writes into the PKI directory.
const KUBECONFIG_FILE: &str = "admin.kubeconfig";
/// Timeout of one readiness probe request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors while starting the cluster.
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    /// The binary is missing.
    #[error(transparent)]
    Binary(#[from] GantryError),
    /// The temporary directory could not be created.
    #[error("failed to create a directory under {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    /// No free ports.
    #[error("failed to pick ports for the cluster")]
    Ports(#[from] PortError),
    /// A replica failed to start.
    #[error("failed to start a gantry replica")]
    Process(#[from] ProcessError),
    /// The store did not become ready.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The kubeconfig did not appear or is unusable.
    #[error("the started cluster's kubeconfig {path} is unusable")]
    Kubeconfig {
        /// Its path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: KubeconfigError,
    },
    /// TLS material of the kubeconfig is unusable.
    #[error("cannot build api clients for the started cluster")]
    Client(#[from] ClientError),
    /// The API did not answer in time.
    #[error("kubernetes api of replica {replica} not ready after {timeout:?}: {last}")]
    ApiNotReady {
        /// 1-based replica number.
        replica: usize,
        /// Deadline that passed.
        timeout: Duration,
        /// Last probe failure.
        last: String,
    },
}

/// A started cluster and how to reach its API.
#[derive(Debug)]
pub struct ApiCluster {
    /// The replicas (stopped on drop).
    pub cluster: Cluster,
    /// The admin kubeconfig written by the first replica.
    pub kubeconfig: ResolvedKubeconfig,
    /// Where that kubeconfig is (for other processes, such as a node agent, to use).
    pub kubeconfig_path: PathBuf,
    /// The API address of every replica.
    pub api_servers: Vec<ServerAddress>,
    /// Binary that was started.
    pub binary: PathBuf,
}

/// Starts the cluster under a fresh temp dir in `parent` and waits until every replica serves the API.
pub async fn start(
    binary: Option<&Path>,
    log_level: &str,
    parent: &Path,
    timeout: Duration,
) -> Result<ApiCluster, LauncherError> {
    let binary = GantryLauncher::locate(binary, log_level)?.binary().to_path_buf();
    let dir = tempfile::Builder::new()
        .prefix("api-bench-gantry-")
        .tempdir_in(parent)
        .map_err(|e| LauncherError::Dir(parent.to_path_buf(), e))?;
    let pki_dir = dir.path().join(PKI_DIR);
    let ports = free_ports(3 * REPLICAS)?;
    let initial_cluster =
        (0..REPLICAS).map(|i| format!("{}=127.0.0.1:{}", i + 1, ports[i])).collect::<Vec<_>>().join(",");
    let envs = vec![("RUST_LOG".to_string(), log_level.to_string())];
    let (mut members, mut endpoints, mut api_servers) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..REPLICAS {
        let name = format!("gantry-{}", i + 1);
        let data_dir = dir.path().join(&name);
        std::fs::create_dir(&data_dir).map_err(|e| LauncherError::Dir(data_dir.clone(), e))?;
        let (peer, client, api) = (ports[i], ports[REPLICAS + i], ports[2 * REPLICAS + i]);
        let args: Vec<String> = vec![
            "--node-id".into(),
            (i + 1).to_string(),
            "--data-dir".into(),
            data_dir.to_string_lossy().into_owned(),
            "--listen-peer".into(),
            format!("127.0.0.1:{peer}"),
            "--listen-client".into(),
            format!("127.0.0.1:{client}"),
            "--initial-cluster".into(),
            initial_cluster.clone(),
            "--listen-api".into(),
            format!("127.0.0.1:{api}"),
            "--pki-dir".into(),
            pki_dir.to_string_lossy().into_owned(),
        ];
        let log = dir.path().join(format!("{name}.log"));
        members.push(ManagedProcess::spawn(&name, &binary, &args, &envs, &log)?);
        endpoints.push(format!("http://127.0.0.1:{client}"));
        api_servers.push(ServerAddress { host: "127.0.0.1".into(), port: api, path_prefix: String::new() });
    }
    let mut cluster = Cluster::new(SystemKind::Gantry, members, endpoints, dir);
    let started = Instant::now();
    cluster.wait_ready(timeout).await?;
    let remaining = timeout.saturating_sub(started.elapsed());
    let kubeconfig = wait_for_api(&pki_dir, &api_servers, remaining).await?;
    let kubeconfig_path = pki_dir.join(KUBECONFIG_FILE);
    Ok(ApiCluster { cluster, kubeconfig, kubeconfig_path, api_servers, binary })
}

async fn wait_for_api(
    pki_dir: &Path,
    servers: &[ServerAddress],
    timeout: Duration,
) -> Result<ResolvedKubeconfig, LauncherError> {
    let deadline = Instant::now() + timeout;
    let path = pki_dir.join(KUBECONFIG_FILE);
    let config = loop {
        match kubeconfig::load(&path, None) {
            Ok(config) => break config,
            Err(source) if Instant::now() >= deadline => return Err(LauncherError::Kubeconfig { path, source }),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let connector = Arc::new(Connector::new(&config, PROBE_TIMEOUT)?.with_servers(servers.to_vec()));
    for replica in 0..servers.len() {
        loop {
            let mut conn = connector.connection(replica);
            match conn.get_json("/api/v1/namespaces/default").await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(LauncherError::ApiNotReady { replica: replica + 1, timeout, last: e.to_string() })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(config)
}
