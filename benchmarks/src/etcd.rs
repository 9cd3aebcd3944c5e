//! Launcher for a 3-member etcd cluster on loopback.
//!
//! Each member gets its own data dir inside one temporary directory (on the
//! same disk as the Gantry replicas' data dirs when `--work-dir` is shared),
//! free client and peer ports, and the default durability settings (fsync
//! on every commit), so it is compared like for like with Gantry.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cluster::{Cluster, SystemKind};
use crate::ports::{free_ports, PortError};
use crate::process::{ManagedProcess, ProcessError};

/// Number of members started.
pub const MEMBERS: usize = 3;

/// Errors while starting etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The etcd binary was not found.
    #[error("etcd binary {0:?} not found in PATH; install it (apt-get install -y etcd-server) or pass --etcd-bin")]
    NotFound(PathBuf),
    /// The temporary directory could not be created.
    #[error("failed to create a temp dir under {0}")]
    TempDir(PathBuf, #[source] std::io::Error),
    /// A member data dir could not be created.
    #[error("failed to create data dir {0}")]
    DataDir(PathBuf, #[source] std::io::Error),
    /// No free ports.
    #[error("failed to pick ports for etcd")]
    Ports(#[from] PortError),
    /// A member failed to start.
    #[error("failed to start an etcd member")]
    Process(#[from] ProcessError),
}

/// Starts etcd clusters.
#[derive(Debug, Clone)]
pub struct EtcdLauncher {
    binary: PathBuf,
    log_level: String,
}

impl EtcdLauncher {
    /// Resolves `binary` (searched in `PATH` when it contains no slash).
    pub fn new(binary: &Path, log_level: &str) -> Result<Self, EtcdError> {
        let resolved =
            find_in_path(binary, std::env::var_os("PATH")).ok_or_else(|| EtcdError::NotFound(binary.to_path_buf()))?;
        Ok(Self { binary: resolved, log_level: log_level.to_string() })
    }

    /// Resolved binary path.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Starts the members under a fresh temp dir inside `parent` (not yet ready:
    /// call [`Cluster::wait_ready`]).
    pub fn start(&self, parent: &Path) -> Result<Cluster, EtcdError> {
        let dir = tempfile::Builder::new()
            .prefix("store-bench-etcd-")
            .tempdir_in(parent)
            .map_err(|e| EtcdError::TempDir(parent.to_path_buf(), e))?;
        let ports = free_ports(2 * MEMBERS)?;
        let (client_ports, peer_ports) = ports.split_at(MEMBERS);
        let initial_cluster = (0..MEMBERS)
            .map(|i| format!("{}=http://127.0.0.1:{}", member_name(i), peer_ports[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(MEMBERS);
        let mut endpoints = Vec::with_capacity(MEMBERS);
        for i in 0..MEMBERS {
            let name = member_name(i);
            let data_dir = dir.path().join(&name);
            std::fs::create_dir(&data_dir).map_err(|e| EtcdError::DataDir(data_dir.clone(), e))?;
            let client_url = format!("http://127.0.0.1:{}", client_ports[i]);
            let peer_url = format!("http://127.0.0.1:{}", peer_ports[i]);
            let args = member_args(&name, &data_dir, &client_url, &peer_url, &initial_cluster, &self.log_level);
            let log = dir.path().join(format!("{name}.log"));
            members.push(ManagedProcess::spawn(&name, &self.binary, &args, &[], &log)?);
            endpoints.push(client_url);
        }
        Ok(Cluster::new(SystemKind::Etcd, members, endpoints, dir))
    }
}

fn member_name(i: usize) -> String {
    format!("etcd-{}", i + 1)
}

fn member_args(
    name: &str,
    data_dir: &Path,
    client_url: &str,
    peer_url: &str,
    initial_cluster: &str,
    log_level: &str,
) -> Vec<String> {
    [
        "--name",
        name,
        "--data-dir",
        &data_dir.to_string_lossy(),
        "--listen-client-urls",
        client_url,
        "--advertise-client-urls",
        client_url,
        "--listen-peer-urls",
        peer_url,
        "--initial-advertise-peer-urls",
        peer_url,
        "--initial-cluster",
        initial_cluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "store-bench",
        "--logger",
        "zap",
        "--log-outputs",
        "stderr",
        "--log-level",
        log_level,
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// `which`: a name with a slash is taken as a path, otherwise `PATH` is searched.
pub fn find_in_path(binary: &Path, path_var: Option<OsString>) -> Option<PathBuf> {
    if binary.components().count() > 1 || binary.is_absolute() {
        return binary.is_file().then(|| binary.to_path_buf());
    }
    std::env::split_paths(&path_var?).map(|dir| dir.join(binary)).find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_in_path() {
        let found = find_in_path(Path::new("sh"), Some(OsString::from("/nonexistent:/bin")));
        assert_eq!(found, Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_in_path(Path::new("no-such-binary-xyz"), std::env::var_os("PATH")), None);
        assert_eq!(find_in_path(Path::new("/bin/sh"), None), Some(PathBuf::from("/bin/sh")));
    }

    #[test]
    fn member_args_name_every_url() {
        let args = member_args(
            "etcd-1",
            Path::new("/tmp/d"),
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "etcd-1=http://127.0.0.1:2",
            "warn",
        );
        let joined = args.join(" ");
        assert!(joined.contains("--listen-client-urls http://127.0.0.1:1"));
        assert!(joined.contains("--initial-advertise-peer-urls http://127.0.0.1:2"));
        assert!(joined.contains("--data-dir /tmp/d"));
        assert!(joined.contains("--log-level warn"));
    }
}
