//! The benchmark's node and cluster, all under one temporary directory: the test suite's locks, a
//! private containerd with its own CNI bridge and the local images (`gantry-local-runtime`, as
//! `tests/src/node_env.rs` and `cargo xtask up` use it), the 3-replica cluster of `api-bench`, and
//! one `gantry-node-agent` registered as a Node and waited for until Ready.
//!
//! [`NodeEnv::teardown`] takes everything apart, whatever step the run reached: the agent stops and
//! `gantry-node-agent --cleanup` removes its pods from the runtime, the raw pods are removed, then
//! containerd (and its shims), leftover mounts, the CNI network, the replicas and the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_local_runtime::{CniNetwork, ContainerdError, ImageError, PrivateContainerd};
use tempfile::TempDir;

use super::cli::PodStartArgs;
use super::locks::{LockError, TestLocks};
use super::raw::RawRunner;
use crate::api::client::{ClientError, Connector};
use crate::api::launcher::{self, ApiCluster, LauncherError};
use crate::ports::{free_ports, PortError};
use crate::process::{ManagedProcess, ProcessError};
use crate::rss::{MemoryStatus, RssError};
use crate::sched::objects::is_ready;

/// The agent binary's file name.
pub const AGENT_BINARY: &str = "gantry-node-agent";
/// How long the benchmark waits for running tests to release the locks.
const LOCK_WAIT: Duration = Duration::from_secs(60 * 60);
/// How long the agent's `--cleanup` may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Log lines quoted when the agent fails.
const LOG_TAIL_LINES: usize = 30;

/// Why the node or cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("creating the work directory under {path}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("starting containerd: {0}")]
    Containerd(#[from] ContainerdError),
    #[error("building or importing the images: {0}")]
    Image(#[from] ImageError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the cluster")]
    Cluster(#[from] LauncherError),
    #[error("{AGENT_BINARY} not found at {0} (build it with `cargo build --release -p gantry-node-agent`, or pass --agent-bin)")]
    AgentMissing(PathBuf),
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("starting {AGENT_BINARY}")]
    AgentSpawn(#[from] ProcessError),
    #[error("{AGENT_BINARY} exited with {status}; last log lines:\n{log}")]
    AgentExited { status: std::process::ExitStatus, log: String },
    #[error("node {node} not Ready after {timeout:?} (last: {last}); agent log:\n{log}")]
    NotReady { node: String, timeout: Duration, last: String, log: String },
    #[error("building api clients")]
    Client(#[from] ClientError),
    #[error("a setup task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("reading the agent's memory")]
    Memory(#[from] RssError),
}

/// Everything the benchmark started; see the module doc.
pub struct NodeEnv {
    work: Option<TempDir>,
    locks: Option<TestLocks>,
    network: CniNetwork,
    containerd: Option<PrivateContainerd>,
    cluster: Option<ApiCluster>,
    agent: Option<ManagedProcess>,
    agent_binary: Option<PathBuf>,
    /// Raw pods to remove at teardown.
    pub raw: Option<RawRunner>,
    node_name: String,
}

impl NodeEnv {
    /// A fresh work directory under `--work-dir`; nothing is started yet.
    pub fn new(args: &PodStartArgs) -> Result<Self, NodeError> {
        let work = tempfile::Builder::new()
            .prefix("podstart-bench-")
            .tempdir_in(&args.work_dir)
            .map_err(|source| NodeError::WorkDir { path: args.work_dir.clone(), source })?;
        Ok(Self {
            work: Some(work),
            locks: None,
            network: CniNetwork::new(&args.bridge, &args.subnet),
            containerd: None,
            cluster: None,
            agent: None,
            agent_binary: None,
            raw: None,
            node_name: args.node_name.clone(),
        })
    }

    /// The work directory.
    pub fn dir(&self) -> &Path {
        self.work.as_ref().map_or(Path::new("/nonexistent"), |w| w.path())
    }

    fn containerd_dir(&self) -> PathBuf {
        self.dir().join("containerd")
    }

    fn agent_root(&self) -> PathBuf {
        self.dir().join("agent")
    }

    fn agent_log(&self) -> PathBuf {
        self.dir().join("agent.log")
    }

    /// The CRI endpoint of the benchmark's containerd.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.containerd_dir().join("containerd.sock").display())
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Takes the test suite's runtime and cluster locks.
    pub async fn lock(&mut self) -> Result<(), NodeError> {
        let locks = TestLocks::acquire(&std::env::temp_dir(), LOCK_WAIT, |path| {
            eprintln!("waiting for {} (an end-to-end test is running; --no-locks skips this)", path.display());
        })
        .await?;
        self.locks = Some(locks);
        Ok(())
    }

    /// Starts containerd with the CNI network and imports the images.
    pub async fn start_runtime(&mut self) -> Result<(), NodeError> {
        let network = self.network.clone();
        // A bridge left by a crashed run would carry stale addresses of the same subnet.
        network.remove().map_err(|source| NodeError::Io { context: format!("removing {}", network.bridge), source })?;
        let (dir, images) = (self.containerd_dir(), self.dir().join("images"));
        let containerd = tokio::task::spawn_blocking(move || -> Result<PrivateContainerd, NodeError> {
            let containerd = PrivateContainerd::start(&dir)?;
            network.write_conflist(&dir).map_err(|source| NodeError::Io {
                context: format!("writing the conflist of {}", network.bridge),
                source,
            })?;
            Ok(containerd)
        })
        .await??;
        let endpoint = containerd.endpoint();
        self.containerd = Some(containerd);
        tokio::task::spawn_blocking(move || -> Result<(), NodeError> {
            std::fs::create_dir_all(&images)
                .map_err(|source| NodeError::Io { context: format!("creating {}", images.display()), source })?;
            gantry_local_runtime::images::import_test_images(&endpoint, &images)?;
            Ok(())
        })
        .await??;
        Ok(())
    }

    /// Starts the 3 replicas; returns a connector spread over their APIs.
    pub async fn start_cluster(&mut self, args: &PodStartArgs) -> Result<Arc<Connector>, NodeError> {
        let cluster =
            launcher::start(args.gantry_bin.as_deref(), &args.server_log_level, self.dir(), args.startup_timeout)
                .await?;
        let connector =
            Connector::new(&cluster.kubeconfig, args.request_timeout)?.with_servers(cluster.api_servers.clone());
        self.agent_binary = Some(match &args.agent_bin {
            Some(path) => path.clone(),
            None => cluster.binary.with_file_name(AGENT_BINARY),
        });
        self.cluster = Some(cluster);
        Ok(Arc::new(connector))
    }

    /// The agent's flags (without `--listen`, which only a running agent needs).
    fn agent_args(&self) -> Vec<String> {
        let kubeconfig = self.cluster.as_ref().map(|c| c.kubeconfig_path.display().to_string()).unwrap_or_default();
        vec![
            "--kubeconfig".into(),
            kubeconfig,
            "--node-name".into(),
            self.node_name.clone(),
            "--runtime-endpoint".into(),
            self.endpoint(),
            "--root-dir".into(),
            self.agent_root().display().to_string(),
        ]
    }

    /// Starts the agent and waits until its Node is Ready.
    pub async fn start_agent(
        &mut self,
        connector: &Arc<Connector>,
        log_level: &str,
        timeout: Duration,
    ) -> Result<(), NodeError> {
        let binary = self.agent_binary.clone().unwrap_or_else(|| PathBuf::from(AGENT_BINARY));
        if !binary.is_file() {
            return Err(NodeError::AgentMissing(binary));
        }
        let port = free_ports(1)?[0];
        let mut args = self.agent_args();
        args.extend(["--listen".to_string(), format!("127.0.0.1:{port}")]);
        // NO_COLOR: plain log lines, to be read with grep.
        let envs = [("RUST_LOG".to_string(), log_level.to_string()), ("NO_COLOR".to_string(), "1".to_string())];
        self.agent = Some(ManagedProcess::spawn(AGENT_BINARY, &binary, &args, &envs, &self.agent_log())?);
        self.wait_node_ready(connector, timeout).await
    }

    async fn wait_node_ready(&mut self, connector: &Arc<Connector>, timeout: Duration) -> Result<(), NodeError> {
        let deadline = Instant::now() + timeout;
        let path = format!("/api/v1/nodes/{}", self.node_name);
        let mut conn = connector.connection(0);
        loop {
            if let Some(agent) = &mut self.agent {
                if let Some(status) = agent.try_exit_status()? {
                    return Err(NodeError::AgentExited { status, log: agent.log_tail(LOG_TAIL_LINES) });
                }
            }
            let last = match conn.get_json(&path).await {
                Ok(node) if is_ready(&node) => return Ok(()),
                Ok(_) => "not Ready".to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let log = self.agent.as_ref().map(|a| a.log_tail(LOG_TAIL_LINES)).unwrap_or_default();
                return Err(NodeError::NotReady { node: self.node_name.clone(), timeout, last, log });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The agent's memory now.
    pub fn agent_memory(&self) -> Result<Option<MemoryStatus>, NodeError> {
        Ok(match &self.agent {
            Some(agent) => Some(MemoryStatus::read(agent.pid())?),
            None => None,
        })
    }

    /// The agent's pid, while it runs.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(ManagedProcess::pid)
    }

    /// The replicas, while they run.
    pub fn cluster(&self) -> Option<&ApiCluster> {
        self.cluster.as_ref()
    }

    /// Takes everything apart (best effort; problems are printed). `keep_logs` gets copies of the
    /// agent's, containerd's and the replicas' logs first.
    pub async fn teardown(&mut self, keep_logs: Option<&Path>) {
        if let Some(mut agent) = self.agent.take() {
            if let Err(e) = agent.stop(Duration::from_secs(10)) {
                eprintln!("warning: stopping the agent: {e}");
            }
        }
        if self.containerd.is_some() {
            if let Some(binary) = self.agent_binary.clone().filter(|b| b.is_file()) {
                self.agent_cleanup(&binary).await;
            }
            if let Some(raw) = self.raw.take() {
                let removed = raw.remove_all().await;
                if removed > 0 {
                    eprintln!("removed {removed} raw sandbox(es) left by an unfinished batch");
                }
            }
        }
        if let Some(dir) = keep_logs {
            self.copy_logs(dir);
        }
        // Kills containerd's process group and the shims it started (and their containers).
        self.containerd = None;
        unmount_under(self.dir());
        if let Err(e) = self.network.remove() {
            eprintln!("warning: removing the network {}: {e}", self.network.bridge);
        }
        if let Some(cluster) = self.cluster.take() {
            if let Err(e) = cluster.cluster.stop() {
                eprintln!("warning: stopping the cluster: {e}");
            }
        }
        if let Some(work) = self.work.take() {
            let path = work.path().to_path_buf();
            if let Err(e) = work.close() {
                eprintln!("warning: removing {}: {e}", path.display());
            }
        }
        self.locks = None;
    }

    /// `gantry-node-agent --cleanup`: removes every pod of the node from the runtime and the root dir.
    async fn agent_cleanup(&self, binary: &Path) {
        let mut command = tokio::process::Command::new(binary);
        command.args(self.agent_args()).arg("--cleanup").stdin(std::process::Stdio::null()).kill_on_drop(true);
        match tokio::time::timeout(CLEANUP_TIMEOUT, command.output()).await {
            Ok(Ok(out)) if out.status.success() => {}
            Ok(Ok(out)) => eprintln!(
                "warning: {AGENT_BINARY} --cleanup failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(Err(e)) => eprintln!("warning: cannot run {}: {e}", binary.display()),
            Err(_) => eprintln!("warning: {AGENT_BINARY} --cleanup took longer than {CLEANUP_TIMEOUT:?}"),
        }
    }

    fn copy_logs(&self, to: &Path) {
        if let Err(e) = std::fs::create_dir_all(to) {
            return eprintln!("warning: cannot create {}: {e}", to.display());
        }
        let mut logs = vec![self.agent_log(), self.containerd_dir().join("containerd.log")];
        // The replicas log into the launcher's directory inside the work dir.
        for entry in std::fs::read_dir(self.dir()).into_iter().flatten().flatten() {
            let files = std::fs::read_dir(entry.path()).into_iter().flatten().flatten();
            logs.extend(files.map(|f| f.path()).filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("gantry-") && n.ends_with(".log"))
            }));
        }
        for log in logs.iter().filter(|l| l.is_file()) {
            let name = log.file_name().unwrap_or_default();
            if let Err(e) = std::fs::copy(log, to.join(name)) {
                eprintln!("warning: copying {}: {e}", log.display());
            }
        }
        eprintln!("logs copied to {}", to.display());
    }
}

/// Lazily unmounts whatever is still mounted under `dir` (deepest first): sandbox mounts of a
/// containerd that was killed before it removed them.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut mounts = mounts_under(&mountinfo, dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let ok = std::process::Command::new("umount")
            .args(["-l", &m])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: cannot unmount {m}");
        }
    }
}

/// Mount points (field 5 of `/proc/self/mountinfo`) at or below `dir`.
fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mounts_below_the_work_dir_are_picked() {
        let info = "36 25 0:32 / /tmp/podstart-bench-x/containerd/state/shm rw - tmpfs shm rw\n\
                    37 25 0:33 / /tmp/podstart-bench-xy rw - tmpfs t rw\n\
                    38 25 0:34 / /sys/fs/cgroup rw - tmpfs t rw\n";
        assert_eq!(
            mounts_under(info, Path::new("/tmp/podstart-bench-x")),
            ["/tmp/podstart-bench-x/containerd/state/shm"]
        );
    }
}
