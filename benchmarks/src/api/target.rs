//! The cluster a REST benchmark runs against: the one a kubeconfig names, or a 3-replica Gantry
//! cluster started here (see [`launcher`](super::launcher)) whose connections are spread over all
//! replicas. Shared by `sched-bench` and `rollout-bench`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::client::{ClientError, Connector};
use super::kubeconfig::{self, KubeconfigError};
use super::launcher::{self, ApiCluster, LauncherError};
use crate::cluster::ClusterError;

/// Failures while reaching or starting the cluster.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot use kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("cannot build api clients")]
    Client(#[from] ClientError),
    #[error("cannot start a gantry cluster")]
    Start(#[from] LauncherError),
}

/// How to reach the cluster; without `kubeconfig` one is started.
#[derive(Debug, Clone)]
pub struct TargetOptions<'a> {
    pub kubeconfig: Option<&'a Path>,
    pub context: Option<&'a str>,
    pub request_timeout: Duration,
    /// The rest only matters for a self-started cluster.
    pub gantry_bin: Option<&'a Path>,
    pub server_log_level: &'a str,
    pub work_dir: &'a Path,
    pub startup_timeout: Duration,
}

/// Implements `From<&Args> for TargetOptions` for a benchmark's argument struct, which must have
/// the fields `kubeconfig`, `context`, `request_timeout`, `gantry_bin`, `server_log_level`,
/// `work_dir` and `startup_timeout` (each benchmark keeps its own defaults and help texts).
macro_rules! target_options_from_args {
    ($args:ty) => {
        impl<'a> From<&'a $args> for $crate::api::target::TargetOptions<'a> {
            fn from(args: &'a $args) -> Self {
                Self {
                    kubeconfig: args.kubeconfig.as_deref(),
                    context: args.context.as_deref(),
                    request_timeout: args.request_timeout,
                    gantry_bin: args.gantry_bin.as_deref(),
                    server_log_level: &args.server_log_level,
                    work_dir: &args.work_dir,
                    startup_timeout: args.startup_timeout,
                }
            }
        }
    };
}
pub(crate) use target_options_from_args;

/// A reachable cluster. Dropping it stops a self-started cluster (prefer [`BenchTarget::stop`],
/// which reports failures).
#[derive(Debug)]
pub struct BenchTarget {
    pub connector: Arc<Connector>,
    /// The kubeconfig other clients (started beside the benchmark) should use.
    pub kubeconfig_path: PathBuf,
    /// Its context (`None`: the file's current context).
    pub context: Option<String>,
    /// The replicas, when this process started them.
    pub started: Option<ApiCluster>,
}

impl BenchTarget {
    /// Connects to `options.kubeconfig`, or starts a cluster and waits until every replica serves
    /// the API.
    pub async fn connect(options: &TargetOptions<'_>) -> Result<Self, TargetError> {
        if let Some(path) = options.kubeconfig {
            let config = kubeconfig::load(path, options.context)
                .map_err(|source| TargetError::Kubeconfig { path: path.to_path_buf(), source })?;
            return Ok(Self {
                connector: Arc::new(Connector::new(&config, options.request_timeout)?),
                kubeconfig_path: path.to_path_buf(),
                context: options.context.map(str::to_string),
                started: None,
            });
        }
        eprintln!("no --kubeconfig: starting a 3-replica gantry cluster");
        let cluster =
            launcher::start(options.gantry_bin, options.server_log_level, options.work_dir, options.startup_timeout)
                .await?;
        eprintln!(
            "started {} (api {})",
            cluster.binary.display(),
            cluster.api_servers.iter().map(|s| s.authority()).collect::<Vec<_>>().join(", ")
        );
        let connector =
            Connector::new(&cluster.kubeconfig, options.request_timeout)?.with_servers(cluster.api_servers.clone());
        Ok(Self {
            connector: Arc::new(connector),
            kubeconfig_path: cluster.kubeconfig_path.clone(),
            context: None,
            started: Some(cluster),
        })
    }

    /// `(name, pid)` of the self-started replicas (empty for a cluster given by kubeconfig).
    pub fn replica_pids(&self) -> Vec<(String, u32)> {
        self.started.as_ref().map(|c| c.cluster.pids()).unwrap_or_default()
    }

    /// Stops a self-started cluster and removes its data.
    pub fn stop(self) -> Result<(), ClusterError> {
        match self.started {
            Some(cluster) => cluster.cluster.stop(),
            None => Ok(()),
        }
    }
}
