//! The simulated nodes of `rollout-bench`: a `gantry-sim-nodes` process (kwok-style kubelets that
//! register Ready nodes, renew their Leases and turn bound pods Running/Ready, deleting them once
//! they are gracefully deleted). It runs as its own process, so its CPU time is accounted apart from
//! the benchmark's watches and the control plane's.
//!
//! Found like the control plane binary: `--sim-bin`, else `$GANTRY_BIN_DIR`, else beside the
//! benchmark executable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::api::client::{ClientError, Connector};
use crate::gantry::{resolve_named_binary, BinarySource};
use crate::process::{ManagedProcess, ProcessError};
use crate::sched::objects::is_ready;

/// File name of the simulator binary.
pub const SIM_BINARY: &str = "gantry-sim-nodes";
/// What the simulator logs once its nodes are registered and its pod watch has listed.
const RUNNING_LINE: &str = "running; stop with";
/// How often readiness is checked.
const POLL: Duration = Duration::from_millis(250);
/// Lines of the simulator's log quoted in an error.
const LOG_LINES: usize = 20;

/// Failures of the simulated nodes.
#[derive(Debug, thiserror::Error)]
pub enum SimProcessError {
    #[error(
        "{SIM_BINARY} not found at {path} ({origin}); build it with `cargo build --release -p gantry-sim-nodes`, \
         or pass --sim-bin PATH / set GANTRY_BIN_DIR"
    )]
    NotFound { path: PathBuf, origin: &'static str },
    #[error("cannot locate {SIM_BINARY}: current executable path unknown; pass --sim-bin")]
    NoExeDir(#[source] std::io::Error),
    #[error("failed to create a directory under {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{SIM_BINARY} exited early ({status}); last log lines:\n{log}")]
    Exited { status: String, log: String },
    #[error("only {ready} of {wanted} simulated nodes were Ready after {timeout:?}; last log lines:\n{log}")]
    NotReady { ready: usize, wanted: usize, timeout: Duration, log: String },
    #[error("listing the simulated nodes failed")]
    List(#[source] ClientError),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub nodes: usize,
    pub prefix: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// `RUST_LOG` of the simulator (must include `info` for the readiness line).
    pub log_level: String,
}

impl SimSettings {
    pub fn node_names(&self) -> Vec<String> {
        (0..self.nodes).map(|i| format!("{}{i}", self.prefix)).collect()
    }
}

/// The running simulator (stopped on drop).
#[derive(Debug)]
pub struct SimProcess {
    process: ManagedProcess,
    names: Vec<String>,
    _dir: TempDir,
}

/// The simulator binary: `explicit`, else `$GANTRY_BIN_DIR`, else beside this executable.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, SimProcessError> {
    let exe_dir = match explicit {
        Some(_) => None,
        None => std::env::current_exe().map_err(SimProcessError::NoExeDir)?.parent().map(Path::to_path_buf),
    };
    let (path, source) = resolve_named_binary(SIM_BINARY, explicit, std::env::var_os("GANTRY_BIN_DIR"), exe_dir)
        .ok_or_else(|| SimProcessError::NoExeDir(std::io::Error::other("executable has no parent dir")))?;
    if !path.is_file() {
        let origin = match source {
            BinarySource::Flag => "from --sim-bin",
            BinarySource::EnvDir => "from GANTRY_BIN_DIR",
            BinarySource::ExeDir => "next to rollout-bench",
        };
        return Err(SimProcessError::NotFound { path, origin });
    }
    Ok(path)
}

impl SimProcess {
    /// Starts `binary` against the cluster of `kubeconfig` (`context`), logging into a temp dir
    /// under `work_dir`.
    pub fn spawn(
        binary: &Path,
        kubeconfig: &Path,
        context: Option<&str>,
        settings: &SimSettings,
        work_dir: &Path,
    ) -> Result<Self, SimProcessError> {
        let dir = tempfile::Builder::new()
            .prefix("rollout-bench-sim-")
            .tempdir_in(work_dir)
            .map_err(|e| SimProcessError::Dir(work_dir.to_path_buf(), e))?;
        let mut args: Vec<String> = vec![
            "--kubeconfig".into(),
            kubeconfig.to_string_lossy().into_owned(),
            "--nodes".into(),
            settings.nodes.to_string(),
            "--prefix".into(),
            settings.prefix.clone(),
            "--cpu".into(),
            settings.cpu.clone(),
            "--memory".into(),
            settings.memory.clone(),
            "--pods".into(),
            settings.pods.to_string(),
        ];
        if let Some(context) = context {
            args.extend(["--context".to_string(), context.to_string()]);
        }
        let envs = [("RUST_LOG".to_string(), settings.log_level.clone())];
        let log = dir.path().join("sim-nodes.log");
        let process = ManagedProcess::spawn("sim-nodes", binary, &args, &envs, &log)?;
        Ok(Self { process, names: settings.node_names(), _dir: dir })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn node_names(&self) -> &[String] {
        &self.names
    }

    /// Waits until every simulated node is Ready in the API and the simulator says it is running.
    pub async fn wait_ready(&mut self, connector: &Arc<Connector>, timeout: Duration) -> Result<(), SimProcessError> {
        let deadline = Instant::now() + timeout;
        let mut conn = connector.connection(0);
        loop {
            if let Some(status) = self.process.try_exit_status()? {
                return Err(SimProcessError::Exited {
                    status: status.to_string(),
                    log: self.process.log_tail(LOG_LINES),
                });
            }
            let list = conn.get_json("/api/v1/nodes?labelSelector=type%3Dsim").await.map_err(SimProcessError::List)?;
            let ready = list["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter(|n| {
                            n["metadata"]["name"].as_str().is_some_and(|name| self.names.iter().any(|m| m == name))
                        })
                        .filter(|n| is_ready(n))
                        .count()
                })
                .unwrap_or(0);
            let running = std::fs::read_to_string(self.process.log_path()).is_ok_and(|log| log.contains(RUNNING_LINE));
            if ready == self.names.len() && running {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SimProcessError::NotReady {
                    ready,
                    wanted: self.names.len(),
                    timeout,
                    log: self.process.log_tail(LOG_LINES),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the simulator (its Nodes and Leases stay, like a stopped kubelet's).
    pub fn stop(mut self) -> Result<(), SimProcessError> {
        self.process.stop(Duration::from_secs(10))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_simulator_names_the_build_command() {
        let err = locate(Some(Path::new("/nonexistent/gantry-sim-nodes"))).expect_err("missing binary");
        let text = err.to_string();
        assert!(text.contains("cargo build --release -p gantry-sim-nodes") && text.contains("--sim-bin"), "{text}");
    }

    #[test]
    fn node_names_follow_the_simulator_prefix() {
        let settings = SimSettings {
            nodes: 3,
            prefix: "n-".into(),
            cpu: "1".into(),
            memory: "1Gi".into(),
            pods: 10,
            log_level: "info".into(),
        };
        assert_eq!(settings.node_names(), ["n-0", "n-1", "n-2"]);
    }
}
