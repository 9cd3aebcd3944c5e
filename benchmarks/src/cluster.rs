//! A running 3-member cluster (Gantry or etcd): readiness, memory, teardown.
//!
//! [`Cluster`] owns the member processes and the temporary directory holding
//! their data dirs and logs. Dropping it (normal end, error path, Ctrl-C)
//! sends SIGTERM to every member, waits for a bounded grace period, kills the
//! stragglers and removes the directory.

use std::fmt;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use serde::Serialize;
use tempfile::TempDir;

use crate::process::{ManagedProcess, ProcessError, DEFAULT_STOP_TIMEOUT};
use crate::rss::{MemoryStatus, RssError};

/// Lines of each member's log quoted in startup errors.
const LOG_TAIL_LINES: usize = 15;

/// The two benchmarked systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// The Gantry replicated store (`gantry-control-plane`).
    Gantry,
    /// etcd.
    Etcd,
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gantry => "gantry",
            Self::Etcd => "etcd",
        })
    }
}

/// Errors of a running cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A member exited while the cluster was starting.
    #[error("{system} member {member} exited during startup with {status}; last log lines:\n{log}")]
    EarlyExit {
        /// System.
        system: SystemKind,
        /// Member name.
        member: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// Tail of the member's log.
        log: String,
    },
    /// Not every member reported a leader before the deadline.
    #[error("{system} cluster not ready after {timeout:?} (last problem: {last}); last log lines:\n{logs}")]
    NotReady {
        /// System.
        system: SystemKind,
        /// Deadline that passed.
        timeout: Duration,
        /// Last probe failure.
        last: String,
        /// Tails of all members' logs.
        logs: String,
    },
    /// No member reported itself as the leader.
    #[error("no {system} member reports itself as the leader (last problem: {last})")]
    NoLeader {
        /// System.
        system: SystemKind,
        /// Last status failure.
        last: String,
    },
    /// Process handling failed.
    #[error("{system} member process error")]
    Process {
        /// System.
        system: SystemKind,
        /// Underlying error.
        #[source]
        source: ProcessError,
    },
    /// Reading memory figures failed.
    #[error("failed to read memory of {system} member {member}")]
    Memory {
        /// System.
        system: SystemKind,
        /// Member name.
        member: String,
        /// Underlying error.
        #[source]
        source: RssError,
    },
    /// Removing the temporary directory failed.
    #[error("failed to remove {system} temp dir")]
    Cleanup {
        /// System.
        system: SystemKind,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Memory of one member at one point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberMemory {
    /// Member name.
    pub member: String,
    /// Process id.
    pub pid: u32,
    /// `VmRSS` / `VmHWM` figures.
    pub memory: MemoryStatus,
}

/// A started cluster.
#[derive(Debug)]
pub struct Cluster {
    system: SystemKind,
    members: Vec<ManagedProcess>,
    endpoints: Vec<String>,
    dir: Option<TempDir>,
    stop_timeout: Duration,
}

impl Cluster {
    /// Wraps started members; `endpoints[i]` is the client URL of `members[i]`.
    pub fn new(system: SystemKind, members: Vec<ManagedProcess>, endpoints: Vec<String>, dir: TempDir) -> Self {
        Self { system, members, endpoints, dir: Some(dir), stop_timeout: DEFAULT_STOP_TIMEOUT }
    }

    /// Sets the SIGTERM grace period used when stopping.
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Which system this is.
    pub fn system(&self) -> SystemKind {
        self.system
    }

    /// Client URLs (`http://127.0.0.1:PORT`), one per member.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Polls `Maintenance.Status` on every member until each reports a
    /// leader (`leader != 0`), failing fast if a member exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let last = match self.probe_all().await {
                Ok(()) => return Ok(()),
                Err(problem) => problem,
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::NotReady { system: self.system, timeout, last, logs: self.log_tails() });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Index (into `endpoints`) of the member that leads now: the one whose own member id is the
    /// leader its status reports.
    pub async fn leader_index(&self) -> Result<usize, ClusterError> {
        let mut last = String::from("no member answered");
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            match status(endpoint).await {
                Ok((member, leader)) if member == leader && leader != 0 => return Ok(i),
                Ok(_) => {}
                Err(e) => last = e,
            }
        }
        Err(ClusterError::NoLeader { system: self.system, last })
    }

    /// `(name, pid)` of every member.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.members.iter().map(|m| (m.name().to_string(), m.pid())).collect()
    }

    /// Current memory figures of every member.
    pub fn memory(&self) -> Result<Vec<MemberMemory>, ClusterError> {
        self.members
            .iter()
            .map(|m| {
                MemoryStatus::read(m.pid())
                    .map(|memory| MemberMemory { member: m.name().to_string(), pid: m.pid(), memory })
                    .map_err(|source| ClusterError::Memory {
                        system: self.system,
                        member: m.name().to_string(),
                        source,
                    })
            })
            .collect()
    }

    /// Stops every member (SIGTERM to all, then SIGKILL after the grace
    /// period) and removes the temporary directory.
    pub fn stop(mut self) -> Result<(), ClusterError> {
        self.stop_members()?;
        if let Some(dir) = self.dir.take() {
            dir.close().map_err(|source| ClusterError::Cleanup { system: self.system, source })?;
        }
        Ok(())
    }

    fn stop_members(&mut self) -> Result<(), ClusterError> {
        let system = self.system;
        let wrap = |source| ClusterError::Process { system, source };
        // Signal everyone first so the members shut down in parallel.
        let mut first_err = None;
        for m in &mut self.members {
            if let Err(e) = m.terminate() {
                first_err.get_or_insert(wrap(e));
            }
        }
        let deadline = Instant::now() + self.stop_timeout;
        for m in &mut self.members {
            if let Err(e) = m.wait_or_kill(deadline) {
                first_err.get_or_insert(wrap(e));
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn check_alive(&mut self) -> Result<(), ClusterError> {
        let system = self.system;
        for m in &mut self.members {
            let status = m.try_exit_status().map_err(|source| ClusterError::Process { system, source })?;
            if let Some(status) = status {
                return Err(ClusterError::EarlyExit {
                    system,
                    member: m.name().to_string(),
                    status,
                    log: m.log_tail(LOG_TAIL_LINES),
                });
            }
        }
        Ok(())
    }

    /// One round of probes; `Err` describes the first member not ready.
    async fn probe_all(&self) -> Result<(), String> {
        for endpoint in &self.endpoints {
            probe(endpoint).await?;
        }
        Ok(())
    }

    fn log_tails(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ({}) ---\n{}", m.name(), m.log_path().display(), m.log_tail(LOG_TAIL_LINES)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(err) = self.stop_members() {
            eprintln!("warning: failed to stop {} cluster: {err}", self.system);
        }
        // `dir` (a TempDir) removes itself when dropped after this.
    }
}

/// Asks one endpoint for its status; `Ok` when it knows a leader.
async fn probe(endpoint: &str) -> Result<(), String> {
    let (_, leader) = status(endpoint).await?;
    if leader == 0 {
        return Err(format!("{endpoint} reports no leader yet"));
    }
    Ok(())
}

/// `(own member id, leader id)` as one endpoint reports them.
async fn status(endpoint: &str) -> Result<(u64, u64), String> {
    let options =
        ConnectOptions::new().with_connect_timeout(Duration::from_secs(1)).with_timeout(Duration::from_secs(2));
    let attempt = async {
        let mut client =
            Client::connect([endpoint], Some(options)).await.map_err(|e| format!("connect {endpoint}: {e}"))?;
        let status = client.status().await.map_err(|e| format!("status {endpoint}: {e}"))?;
        let member = status.header().map(|h| h.member_id()).unwrap_or(0);
        Ok((member, status.leader()))
    };
    tokio::time::timeout(Duration::from_secs(3), attempt).await.map_err(|_| format!("status {endpoint}: timed out"))?
}
