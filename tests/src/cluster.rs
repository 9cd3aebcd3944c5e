//! A cluster of real store processes on loopback, for end-to-end tests.
//!
//! This module owns [`ProcessCluster`]: it starts N replicas (Gantry's
//! `gantry-control-plane`, or etcd through the same [`Launcher`]) on free
//! loopback ports with one data directory and one log file each inside a
//! temporary directory, waits for readiness by polling `Maintenance.Status`
//! under a deadline, and offers fault injection (SIGKILL, SIGTERM, restart with
//! the same flags and data directory) and leader discovery. Dropping the
//! cluster SIGKILLs every replica still running.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use etcd_client::Client;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::client::{bounded, connect, ClientError};
use crate::launcher::{free_ports, Backend, Launcher, LauncherError, MemberSpec};
use crate::lock::{LockError, ProcessLock};

/// How many log lines an error quotes.
const LOG_TAIL_LINES: usize = 40;
/// Per-request deadline of status polls.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// Set to keep the cluster's directory (data and logs) after the test.
pub const KEEP_DIR_ENV: &str = "GANTRY_KEEP_CLUSTER_DIR";
/// Pause between two readiness polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Errors of the process cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The binary or ports could not be had.
    #[error(transparent)]
    Launcher(#[from] LauncherError),
    /// The cross-test cluster lock could not be had.
    #[error("cannot take the cluster lock")]
    Lock(#[from] LockError),
    /// A file-system or process operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Sending a signal failed.
    #[error("cannot send {signal} to replica {index} (pid {pid})")]
    Signal {
        /// Replica index.
        index: usize,
        /// Process id.
        pid: u32,
        /// Signal name.
        signal: Signal,
        /// Cause.
        #[source]
        source: nix::errno::Errno,
    },
    /// A replica exited while it was expected to run.
    #[error("replica {index} exited with {status} while {during}; log tail:\n{log_tail}")]
    Exited {
        /// Replica index.
        index: usize,
        /// Its exit status.
        status: ExitStatus,
        /// What the harness was waiting for.
        during: String,
        /// Last lines of its log.
        log_tail: String,
    },
    /// A replica did not become ready in time.
    #[error("replica {index} not ready after {waited:?} (last status: {last}); log tail:\n{log_tail}")]
    NotReady {
        /// Replica index.
        index: usize,
        /// Time waited.
        waited: Duration,
        /// Last poll result.
        last: String,
        /// Last lines of its log.
        log_tail: String,
    },
    /// A replica ignored SIGTERM.
    #[error("replica {index} still running {waited:?} after SIGTERM (killed it); log tail:\n{log_tail}")]
    TerminateTimeout {
        /// Replica index.
        index: usize,
        /// Time waited.
        waited: Duration,
        /// Last lines of its log.
        log_tail: String,
    },
    /// No leader was agreed on in time.
    #[error("no leader among running replicas after {waited:?} (last observation: {last})")]
    NoLeader {
        /// Time waited.
        waited: Duration,
        /// Last observation.
        last: String,
    },
    /// The index names no replica.
    #[error("no replica {index} (cluster has {size})")]
    NoSuchMember {
        /// Requested index.
        index: usize,
        /// Cluster size.
        size: usize,
    },
    /// The operation needs a running replica.
    #[error("replica {0} is not running")]
    NotRunning(usize),
    /// The operation needs a stopped replica.
    #[error("replica {0} is already running")]
    AlreadyRunning(usize),
    /// A client call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Shape of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Number of replicas.
    pub size: usize,
    /// Extra flags appended to every replica's command line.
    pub extra_args: Vec<String>,
    /// Deadline for a replica to become ready.
    pub ready_timeout: Duration,
    /// Deadline for taking the cross-test cluster lock.
    pub lock_timeout: Duration,
    /// Serve the Kubernetes API too: each replica gets `--listen-api` on its own port and all share
    /// `--pki-dir <cluster dir>/pki` (so one `admin.kubeconfig` works for every replica).
    pub kubernetes_api: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            size: 3,
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(30 * 60),
            kubernetes_api: false,
        }
    }
}

#[derive(Debug)]
struct Member {
    spec: MemberSpec,
    log_path: PathBuf,
    child: Option<Child>,
    /// Member id as reported by the store (node id for Gantry, learned from
    /// status headers for etcd).
    member_id: u64,
    /// Port of the Kubernetes API, when served.
    api_port: Option<u16>,
}

/// N store replicas running as child processes.
#[derive(Debug)]
pub struct ProcessCluster {
    launcher: Launcher,
    config: ClusterConfig,
    members: Vec<Member>,
    /// `None` only after `Drop` decided to keep the directory.
    dir: Option<TempDir>,
    _lock: ProcessLock,
}

impl ProcessCluster {
    /// Starts `config.size` replicas and waits until each reports a leader.
    pub async fn start(launcher: Launcher, config: ClusterConfig) -> Result<Self, ClusterError> {
        let lock = crate::lock::acquire(&ProcessLock::cluster_lock_path(), config.lock_timeout).await?;
        let dir = tempfile::Builder::new().prefix("gantry-cluster-").tempdir().map_err(|source| ClusterError::Io {
            context: "cannot create the cluster's temp directory".to_string(),
            source,
        })?;
        let ports = free_ports(config.size * 3)?;
        let members = (0..config.size)
            .map(|i| {
                let node_id = i as u64 + 1;
                let member_dir = dir.path().join(format!("node{node_id}"));
                Member {
                    spec: MemberSpec {
                        node_id,
                        client_port: ports[2 * i],
                        peer_port: ports[2 * i + 1],
                        data_dir: member_dir.join("data"),
                    },
                    log_path: member_dir.join("replica.log"),
                    child: None,
                    member_id: node_id,
                    api_port: config.kubernetes_api.then(|| ports[2 * config.size + i]),
                }
            })
            .collect();
        let mut cluster = Self { launcher, config, members, dir: Some(dir), _lock: lock };
        for i in 0..cluster.members.len() {
            let member_dir = cluster.members[i]
                .log_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| cluster.dir().to_path_buf());
            std::fs::create_dir_all(&member_dir).map_err(|source| ClusterError::Io {
                context: format!("cannot create {}", member_dir.display()),
                source,
            })?;
            cluster.spawn(i)?;
        }
        for i in 0..cluster.members.len() {
            cluster.wait_ready(i).await?;
        }
        Ok(cluster)
    }

    /// Starts a 3-replica cluster of the backend chosen by `GANTRY_TEST_BACKEND`.
    pub async fn start_default() -> Result<Self, ClusterError> {
        Self::start(Launcher::from_env()?, ClusterConfig::default()).await
    }

    /// The launcher in use.
    pub fn launcher(&self) -> &Launcher {
        &self.launcher
    }

    /// Which implementation runs.
    pub fn backend(&self) -> Backend {
        self.launcher.backend()
    }

    /// Number of replicas.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The temporary directory holding all data directories and logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), TempDir::path)
    }

    /// `http://127.0.0.1:PORT` of every replica's client API, by index.
    pub fn client_endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.spec.client_url()).collect()
    }

    /// Client URL of replica `i`.
    pub fn client_endpoint(&self, i: usize) -> Result<String, ClusterError> {
        Ok(self.member(i)?.spec.client_url())
    }

    /// Addresses and data directory of replica `i`.
    pub fn spec(&self, i: usize) -> Result<&MemberSpec, ClusterError> {
        Ok(&self.member(i)?.spec)
    }

    /// Log file of replica `i` (stdout and stderr, appended across restarts).
    pub fn log_path(&self, i: usize) -> Result<&Path, ClusterError> {
        Ok(&self.member(i)?.log_path)
    }

    /// The command-line arguments replica `i` is (re)started with.
    pub fn member_args(&self, i: usize) -> Result<Vec<String>, ClusterError> {
        let me = &self.member(i)?.spec;
        let all: Vec<MemberSpec> = self.members.iter().map(|m| m.spec.clone()).collect();
        let mut args = self.launcher.args(me, &all, &self.config.extra_args);
        if let Some(port) = self.member(i)?.api_port {
            args.push("--listen-api".into());
            args.push(format!("127.0.0.1:{port}"));
            args.push("--pki-dir".into());
            args.push(self.pki_dir().display().to_string());
        }
        Ok(args)
    }

    /// Where the replicas keep the cluster CA and `admin.kubeconfig`.
    pub fn pki_dir(&self) -> PathBuf {
        self.dir().join("pki")
    }

    /// The admin kubeconfig written by the first replica (Kubernetes API clusters only).
    pub fn kubeconfig(&self) -> PathBuf {
        self.pki_dir().join("admin.kubeconfig")
    }

    /// `https://127.0.0.1:PORT` of replica `i`'s Kubernetes API, when served.
    pub fn api_url(&self, i: usize) -> Result<String, ClusterError> {
        match self.member(i)?.api_port {
            Some(p) => Ok(format!("https://127.0.0.1:{p}")),
            None => Err(ClusterError::NotRunning(i)),
        }
    }

    /// The id replica `i` uses as member id (`status.leader` names it).
    pub fn member_id(&self, i: usize) -> Result<u64, ClusterError> {
        Ok(self.member(i)?.member_id)
    }

    /// Whether replica `i`'s process is running (reaps it if it exited).
    pub fn is_running(&mut self, i: usize) -> bool {
        let Some(m) = self.members.get_mut(i) else {
            return false;
        };
        match m.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) => {
                m.child = None;
                false
            }
            None => false,
        }
    }

    /// Indices of running replicas.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.members.len()).filter(|i| self.is_running(*i)).collect()
    }

    /// A client connected to replica `i` only.
    pub async fn client(&self, i: usize) -> Result<Client, ClusterError> {
        Ok(connect(&self.client_endpoint(i)?, Duration::from_secs(5)).await?)
    }

    /// SIGKILLs replica `i` and reaps it.
    pub fn kill(&mut self, i: usize) -> Result<(), ClusterError> {
        let m = self.member_mut(i)?;
        let mut child = m.child.take().ok_or(ClusterError::NotRunning(i))?;
        // `Child::kill` sends SIGKILL; it fails only if the child was reaped already.
        let _ = child.kill();
        child.wait().map_err(|source| ClusterError::Io { context: format!("cannot reap replica {i}"), source })?;
        Ok(())
    }

    /// SIGTERMs replica `i` and waits (bounded by `timeout`) for it to exit;
    /// returns its exit status. A replica that outlives the deadline is killed
    /// and reported as an error.
    pub async fn terminate(&mut self, i: usize, timeout: Duration) -> Result<ExitStatus, ClusterError> {
        let m = self.member_mut(i)?;
        let child = m.child.as_mut().ok_or(ClusterError::NotRunning(i))?;
        let pid = child.id();
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).map_err(|source| ClusterError::Signal {
            index: i,
            pid,
            signal: Signal::SIGTERM,
            source,
        })?;
        let start = Instant::now();
        loop {
            let m = self.member_mut(i)?;
            let child = m.child.as_mut().ok_or(ClusterError::NotRunning(i))?;
            match child.try_wait() {
                Ok(Some(status)) => {
                    m.child = None;
                    return Ok(status);
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(ClusterError::Io { context: format!("cannot wait for replica {i}"), source })
                }
            }
            if start.elapsed() >= timeout {
                self.kill(i)?;
                return Err(ClusterError::TerminateTimeout {
                    index: i,
                    waited: start.elapsed(),
                    log_tail: self.log_tail(i),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts stopped replica `i` again with the same flags and data directory
    /// and waits until it is ready.
    pub async fn restart(&mut self, i: usize) -> Result<(), ClusterError> {
        if self.is_running(i) {
            return Err(ClusterError::AlreadyRunning(i));
        }
        self.spawn(i)?;
        self.wait_ready(i).await
    }

    /// Last lines of replica `i`'s log (empty if unreadable).
    pub fn log_tail(&self, i: usize) -> String {
        self.members.get(i).map(|m| tail_of_file(&m.log_path, LOG_TAIL_LINES)).unwrap_or_default()
    }

    /// Asks every running replica for its status; returns the index of a
    /// replica that reports itself as leader (the highest term wins if
    /// several do), or `None` if none does right now.
    pub async fn leader_index(&mut self) -> Result<Option<usize>, ClusterError> {
        let mut best: Option<(u64, usize)> = None;
        for i in self.running() {
            let Ok(Ok(status)) = self.status(i).await else {
                continue;
            };
            if status.leader() != 0 && status.leader() == self.members[i].member_id {
                let term = status.raft_term();
                if best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, i));
                }
            }
        }
        Ok(best.map(|(_, i)| i))
    }

    /// Polls [`Self::leader_index`] until a leader is found or `timeout` passes.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> Result<usize, ClusterError> {
        let start = Instant::now();
        loop {
            if let Some(i) = self.leader_index().await? {
                return Ok(i);
            }
            if start.elapsed() >= timeout {
                return Err(ClusterError::NoLeader {
                    waited: start.elapsed(),
                    last: format!("running replicas {:?}", self.running()),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits (bounded by the configured ready timeout) until replica `i`
    /// answers `Maintenance.Status` with a non-zero leader.
    pub async fn wait_ready(&mut self, i: usize) -> Result<(), ClusterError> {
        let timeout = self.config.ready_timeout;
        let start = Instant::now();
        loop {
            self.check_alive(i, "waiting for readiness")?;
            let last = match self.status(i).await {
                Ok(Ok(status)) if status.leader() != 0 => {
                    if self.launcher.backend() == Backend::Etcd {
                        if let Some(id) = status.header().map(|h| h.member_id()) {
                            self.members[i].member_id = id;
                        }
                    }
                    return Ok(());
                }
                Ok(Ok(_)) => "answered with leader 0".to_string(),
                Ok(Err(e)) | Err(e) => error_chain(&e),
            };
            if start.elapsed() >= timeout {
                return Err(ClusterError::NotReady {
                    index: i,
                    waited: start.elapsed(),
                    last,
                    log_tail: self.log_tail(i),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// One bounded `Maintenance.Status` call to replica `i`. The outer error
    /// is a connection failure, the inner one a request failure.
    async fn status(&self, i: usize) -> Result<Result<etcd_client::StatusResponse, ClientError>, ClientError> {
        let endpoint = self.members[i].spec.client_url();
        let mut client = connect(&endpoint, POLL_TIMEOUT).await?;
        Ok(bounded(&format!("status of {endpoint}"), POLL_TIMEOUT, client.status()).await)
    }

    fn check_alive(&mut self, i: usize, during: &str) -> Result<(), ClusterError> {
        let m = self.member_mut(i)?;
        let child = m.child.as_mut().ok_or(ClusterError::NotRunning(i))?;
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                m.child = None;
                Err(ClusterError::Exited { index: i, status, during: during.to_string(), log_tail: self.log_tail(i) })
            }
            Err(source) => Err(ClusterError::Io { context: format!("cannot poll replica {i}"), source }),
        }
    }

    fn spawn(&mut self, i: usize) -> Result<(), ClusterError> {
        let args = self.member_args(i)?;
        let m = &mut self.members[i];
        let log = open_log(&m.log_path)?;
        let log_err = log.try_clone().map_err(|source| ClusterError::Io {
            context: format!("cannot duplicate log handle {}", m.log_path.display()),
            source,
        })?;
        let mut cmd = Command::new(self.launcher.binary());
        cmd.args(&args).stdin(Stdio::null()).stdout(log).stderr(log_err);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd.spawn().map_err(|source| ClusterError::Io {
            context: format!("cannot start replica {i} ({} {})", self.launcher.binary().display(), args.join(" ")),
            source,
        })?;
        m.child = Some(child);
        Ok(())
    }

    fn member(&self, i: usize) -> Result<&Member, ClusterError> {
        self.members.get(i).ok_or(ClusterError::NoSuchMember { index: i, size: self.members.len() })
    }

    fn member_mut(&mut self, i: usize) -> Result<&mut Member, ClusterError> {
        let size = self.members.len();
        self.members.get_mut(i).ok_or(ClusterError::NoSuchMember { index: i, size })
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::env::var_os(KEEP_DIR_ENV).is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("keeping cluster directory {}", dir.keep().display());
            }
        }
    }
}

fn open_log(path: &Path) -> Result<File, ClusterError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ClusterError::Io { context: format!("cannot open log file {}", path.display()), source })
}

pub use gantry_local_runtime::tail_of_file;

/// An error and its sources, joined with ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
