//! Which store binary a test cluster runs, and with which command line.
//!
//! This module owns [`Launcher`]: it locates the `gantry-control-plane` binary
//! (or, to validate the tests themselves, a real `etcd`) and renders the flags
//! of one replica according to each binary's process contract
//! (`CONTRACT-store.md` for Gantry). It also hands out free loopback ports.

use std::env;
use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Name of the Gantry store binary.
pub const GANTRY_BINARY: &str = "gantry-control-plane";
/// Directory holding [`GANTRY_BINARY`]; overrides the search next to the test binary.
pub const GANTRY_BIN_DIR_ENV: &str = "GANTRY_BIN_DIR";
/// Selects the backend of [`Launcher::from_env`]: `gantry` (default) or `etcd`.
pub const BACKEND_ENV: &str = "GANTRY_TEST_BACKEND";
/// Path of the etcd binary; defaults to `etcd` on `PATH`.
pub const ETCD_BIN_ENV: &str = "ETCD_BIN";

/// Errors locating a binary or allocating ports.
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    /// The Gantry binary is nowhere to be found.
    #[error(
        "{GANTRY_BINARY} binary not found (searched: {searched}); build it with \
         `cargo build -p control-plane` or point {GANTRY_BIN_DIR_ENV} at the directory holding it"
    )]
    GantryNotFound {
        /// Paths that were tried, comma separated.
        searched: String,
    },
    /// etcd is not installed.
    #[error("etcd binary not found (set {ETCD_BIN_ENV} or install it: apt-get install -y etcd-server)")]
    EtcdNotFound,
    /// `GANTRY_TEST_BACKEND` holds an unknown name.
    #[error("unknown {BACKEND_ENV} value {0:?} (expected `gantry` or `etcd`)")]
    UnknownBackend(String),
    /// The test binary's own path could not be determined.
    #[error("cannot determine the test executable's path")]
    CurrentExe(#[source] std::io::Error),
    /// The binary could not be run.
    #[error("cannot run {binary}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The binary did not exit in time (it was killed).
    #[error("{binary} {args} still running after {after:?} (killed it)")]
    NoExit {
        /// The binary.
        binary: PathBuf,
        /// Its arguments, space separated.
        args: String,
        /// The deadline that passed.
        after: std::time::Duration,
    },
    /// No free port could be had.
    #[error("cannot allocate a free loopback port")]
    Port(#[source] std::io::Error),
}

/// The store implementation a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Gantry's `gantry-control-plane`.
    Gantry,
    /// A real etcd (reference implementation, to validate the tests).
    Etcd,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Gantry => write!(f, "gantry"),
            Backend::Etcd => write!(f, "etcd"),
        }
    }
}

/// Addresses and data directory of one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// Node id, 1-based (Gantry's member id; etcd's member name is `n{node_id}`).
    pub node_id: u64,
    /// Loopback port of the client (etcd v3 gRPC) API.
    pub client_port: u16,
    /// Loopback port of the peer (Raft) traffic.
    pub peer_port: u16,
    /// The replica's data directory.
    pub data_dir: PathBuf,
}

impl MemberSpec {
    /// `http://127.0.0.1:PORT` of the client API.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

/// A located store binary and how to invoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    backend: Backend,
    binary: PathBuf,
}

impl Launcher {
    /// Gantry's binary: `$GANTRY_BIN_DIR/gantry-control-plane` if the variable
    /// is set, else the first `gantry-control-plane` found walking up from the
    /// test executable (`target/debug/deps/x` → `target/debug/`).
    pub fn gantry() -> Result<Self, LauncherError> {
        let mut searched = Vec::new();
        if let Some(dir) = env::var_os(GANTRY_BIN_DIR_ENV) {
            let candidate = PathBuf::from(dir).join(GANTRY_BINARY);
            if candidate.is_file() {
                return Ok(Self::new(Backend::Gantry, candidate));
            }
            return Err(LauncherError::GantryNotFound {
                searched: format!("{} (from {GANTRY_BIN_DIR_ENV})", candidate.display()),
            });
        }
        let exe = env::current_exe().map_err(LauncherError::CurrentExe)?;
        for dir in exe.ancestors().skip(1).take(4) {
            let candidate = dir.join(GANTRY_BINARY);
            if candidate.is_file() {
                return Ok(Self::new(Backend::Gantry, candidate));
            }
            searched.push(candidate.display().to_string());
        }
        Err(LauncherError::GantryNotFound { searched: searched.join(", ") })
    }

    /// etcd: `$ETCD_BIN` if set, else `etcd` on `PATH`.
    pub fn etcd() -> Result<Self, LauncherError> {
        if let Some(bin) = env::var_os(ETCD_BIN_ENV) {
            let bin = PathBuf::from(bin);
            return if bin.is_file() { Ok(Self::new(Backend::Etcd, bin)) } else { Err(LauncherError::EtcdNotFound) };
        }
        find_on_path("etcd").map(|bin| Self::new(Backend::Etcd, bin)).ok_or(LauncherError::EtcdNotFound)
    }

    /// The backend named by `GANTRY_TEST_BACKEND` (default: Gantry).
    pub fn from_env() -> Result<Self, LauncherError> {
        match env::var(BACKEND_ENV).ok().as_deref().map(str::trim) {
            None | Some("") | Some("gantry") => Self::gantry(),
            Some("etcd") => Self::etcd(),
            Some(other) => Err(LauncherError::UnknownBackend(other.to_string())),
        }
    }

    fn new(backend: Backend, binary: PathBuf) -> Self {
        Self { backend, binary }
    }

    /// Which implementation this launches.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Path of the binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Command-line arguments of replica `me` in a cluster of `all`, followed by
    /// `extra` (e.g. `--max-request-bytes 1024`, spelled the same for both).
    pub fn args(&self, me: &MemberSpec, all: &[MemberSpec], extra: &[String]) -> Vec<String> {
        let mut args = match self.backend {
            Backend::Gantry => {
                let initial = all
                    .iter()
                    .map(|m| format!("{}=127.0.0.1:{}", m.node_id, m.peer_port))
                    .collect::<Vec<_>>()
                    .join(",");
                vec![
                    "--node-id".to_string(),
                    me.node_id.to_string(),
                    "--data-dir".to_string(),
                    me.data_dir.display().to_string(),
                    "--listen-peer".to_string(),
                    format!("127.0.0.1:{}", me.peer_port),
                    "--listen-client".to_string(),
                    format!("127.0.0.1:{}", me.client_port),
                    "--initial-cluster".to_string(),
                    initial,
                ]
            }
            Backend::Etcd => {
                let initial = all
                    .iter()
                    .map(|m| format!("n{}=http://127.0.0.1:{}", m.node_id, m.peer_port))
                    .collect::<Vec<_>>()
                    .join(",");
                let peer = format!("http://127.0.0.1:{}", me.peer_port);
                vec![
                    "--name".to_string(),
                    format!("n{}", me.node_id),
                    "--data-dir".to_string(),
                    me.data_dir.display().to_string(),
                    "--listen-client-urls".to_string(),
                    me.client_url(),
                    "--advertise-client-urls".to_string(),
                    me.client_url(),
                    "--listen-peer-urls".to_string(),
                    peer.clone(),
                    "--initial-advertise-peer-urls".to_string(),
                    peer,
                    "--initial-cluster".to_string(),
                    initial,
                    "--initial-cluster-state".to_string(),
                    "new".to_string(),
                    "--initial-cluster-token".to_string(),
                    "gantry-tests".to_string(),
                    "--heartbeat-interval".to_string(),
                    "50".to_string(),
                    "--election-timeout".to_string(),
                    "500".to_string(),
                ]
            }
        };
        args.extend(extra.iter().cloned());
        args
    }

    /// Runs the binary with `args` until it exits (killed after `timeout`),
    /// capturing stdout and stderr; for start-up failure tests.
    pub async fn run_to_exit(
        &self,
        args: &[String],
        timeout: std::time::Duration,
    ) -> Result<std::process::Output, LauncherError> {
        let child = tokio::process::Command::new(&self.binary)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LauncherError::Spawn { binary: self.binary.clone(), source })?;
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|source| LauncherError::Spawn { binary: self.binary.clone(), source }),
            Err(_) => Err(LauncherError::NoExit { binary: self.binary.clone(), args: args.join(" "), after: timeout }),
        }
    }
}

/// A port that was free on 127.0.0.1 a moment ago (bound to port 0, read, released).
pub fn free_port() -> Result<u16, LauncherError> {
    Ok(free_ports(1)?[0])
}

/// `n` distinct ports that were free on 127.0.0.1; all listeners are held until
/// every port is read, so the ports differ from each other.
pub fn free_ports(n: usize) -> Result<Vec<u16>, LauncherError> {
    // A port is free only until someone binds it: two configs made one after the other (say, for
    // two agents) could get the same one before the first process binds it. This process never
    // hands a port out twice.
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut listeners = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(LauncherError::Port)?;
        let port = listener.local_addr().map_err(LauncherError::Port)?.port();
        // Kept bound until all are picked, so the kernel does not offer the same port twice.
        listeners.push(listener);
        if handed_out.insert(port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Looks `name` up in the directories of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(node_id: u64) -> MemberSpec {
        MemberSpec {
            node_id,
            client_port: 2000 + node_id as u16,
            peer_port: 3000 + node_id as u16,
            data_dir: PathBuf::from(format!("/tmp/d{node_id}")),
        }
    }

    #[test]
    fn gantry_args_follow_the_contract() {
        let all = [spec(1), spec(2), spec(3)];
        let l = Launcher::new(Backend::Gantry, PathBuf::from("/bin/x"));
        let args = l.args(&all[1], &all, &["--max-request-bytes".into(), "1024".into()]);
        assert_eq!(
            args.join(" "),
            "--node-id 2 --data-dir /tmp/d2 --listen-peer 127.0.0.1:3002 \
             --listen-client 127.0.0.1:2002 \
             --initial-cluster 1=127.0.0.1:3001,2=127.0.0.1:3002,3=127.0.0.1:3003 \
             --max-request-bytes 1024"
        );
    }

    #[test]
    fn etcd_args_name_members_by_node_id() {
        let all = [spec(1), spec(2)];
        let l = Launcher::new(Backend::Etcd, PathBuf::from("/bin/etcd"));
        let args = l.args(&all[0], &all, &[]).join(" ");
        assert!(args.contains("--name n1"), "{args}");
        assert!(args.contains("n1=http://127.0.0.1:3001,n2=http://127.0.0.1:3002"), "{args}");
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(6).expect("ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
        assert!(ports.iter().all(|p| *p != 0));
    }
}
