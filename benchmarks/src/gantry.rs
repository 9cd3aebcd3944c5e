//! Launcher for a 3-replica Gantry store (`gantry-control-plane`).
//!
//! Flags follow `CONTRACT-store.md`: `--node-id N --data-dir DIR
//! --listen-peer HOST:PORT --listen-client HOST:PORT --initial-cluster
//! 1=HOST:PEERPORT,...`. Readiness (`Maintenance.Status` reports a leader) is
//! checked by [`Cluster::wait_ready`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::cluster::{Cluster, SystemKind};
use crate::ports::{free_ports, PortError};
use crate::process::{ManagedProcess, ProcessError};

/// Number of replicas started.
pub const REPLICAS: usize = 3;

/// File name of the store binary.
pub const BINARY_NAME: &str = "gantry-control-plane";

/// Where the binary path came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinarySource {
    /// `--gantry-bin`.
    Flag,
    /// `$GANTRY_BIN_DIR`.
    EnvDir,
    /// The directory of the store-bench executable.
    ExeDir,
}

/// Errors while starting the Gantry store.
#[derive(Debug, thiserror::Error)]
pub enum GantryError {
    /// The binary is missing.
    #[error(
        "gantry-control-plane not found at {path} ({source_desc}); build it first with \
         `cargo build --release -p control-plane`, or pass --gantry-bin PATH / set GANTRY_BIN_DIR, \
         or run with --system etcd"
    )]
    NotFound {
        /// Path that was tried.
        path: PathBuf,
        /// Human-readable origin of that path.
        source_desc: &'static str,
    },
    /// The path of the running executable is unknown.
    #[error("cannot locate gantry-control-plane: current executable path unknown; pass --gantry-bin")]
    NoExeDir(#[source] std::io::Error),
    /// The temporary directory could not be created.
    #[error("failed to create a temp dir under {0}")]
    TempDir(PathBuf, #[source] std::io::Error),
    /// A replica data dir could not be created.
    #[error("failed to create data dir {0}")]
    DataDir(PathBuf, #[source] std::io::Error),
    /// No free ports.
    #[error("failed to pick ports for the gantry store")]
    Ports(#[from] PortError),
    /// A replica failed to start.
    #[error("failed to start a gantry replica")]
    Process(#[from] ProcessError),
}

/// Starts Gantry store clusters.
#[derive(Debug, Clone)]
pub struct GantryLauncher {
    binary: PathBuf,
    log_level: String,
}

impl GantryLauncher {
    /// Locates the binary: `--gantry-bin`, else `$GANTRY_BIN_DIR`, else the
    /// store-bench executable's directory; fails with a build hint if absent.
    pub fn locate(explicit: Option<&Path>, log_level: &str) -> Result<Self, GantryError> {
        let exe_dir = match explicit {
            Some(_) => None,
            None => std::env::current_exe().map_err(GantryError::NoExeDir)?.parent().map(Path::to_path_buf),
        };
        let (path, source) = resolve_binary(explicit, std::env::var_os("GANTRY_BIN_DIR"), exe_dir)
            .ok_or_else(|| GantryError::NoExeDir(std::io::Error::other("executable has no parent dir")))?;
        if !path.is_file() {
            return Err(GantryError::NotFound {
                path,
                source_desc: match source {
                    BinarySource::Flag => "from --gantry-bin",
                    BinarySource::EnvDir => "from GANTRY_BIN_DIR",
                    BinarySource::ExeDir => "next to store-bench",
                },
            });
        }
        Ok(Self { binary: path, log_level: log_level.to_string() })
    }

    /// Resolved binary path.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Starts the replicas under a fresh temp dir inside `parent` (not yet
    /// ready: call [`Cluster::wait_ready`]).
    pub fn start(&self, parent: &Path) -> Result<Cluster, GantryError> {
        let dir: TempDir = tempfile::Builder::new()
            .prefix("store-bench-gantry-")
            .tempdir_in(parent)
            .map_err(|e| GantryError::TempDir(parent.to_path_buf(), e))?;
        let ports = free_ports(2 * REPLICAS)?;
        let (client_ports, peer_ports) = ports.split_at(REPLICAS);
        let initial_cluster =
            (0..REPLICAS).map(|i| format!("{}=127.0.0.1:{}", i + 1, peer_ports[i])).collect::<Vec<_>>().join(",");
        let envs = vec![("RUST_LOG".to_string(), self.log_level.clone())];
        let mut members = Vec::with_capacity(REPLICAS);
        let mut endpoints = Vec::with_capacity(REPLICAS);
        for i in 0..REPLICAS {
            let name = format!("gantry-{}", i + 1);
            let data_dir = dir.path().join(&name);
            std::fs::create_dir(&data_dir).map_err(|e| GantryError::DataDir(data_dir.clone(), e))?;
            let args = replica_args(i + 1, &data_dir, peer_ports[i], client_ports[i], &initial_cluster);
            let log = dir.path().join(format!("{name}.log"));
            members.push(ManagedProcess::spawn(&name, &self.binary, &args, &envs, &log)?);
            endpoints.push(format!("http://127.0.0.1:{}", client_ports[i]));
        }
        Ok(Cluster::new(SystemKind::Gantry, members, endpoints, dir))
    }
}

/// Picks the candidate path of the store binary, in priority order.
pub fn resolve_binary(
    explicit: Option<&Path>,
    env_dir: Option<OsString>,
    exe_dir: Option<PathBuf>,
) -> Option<(PathBuf, BinarySource)> {
    resolve_named_binary(BINARY_NAME, explicit, env_dir, exe_dir)
}

/// Picks the candidate path of the workspace binary `name`: the explicit path, else `name` in
/// `env_dir` (`$GANTRY_BIN_DIR`), else in `exe_dir` (beside the running benchmark).
pub fn resolve_named_binary(
    name: &str,
    explicit: Option<&Path>,
    env_dir: Option<OsString>,
    exe_dir: Option<PathBuf>,
) -> Option<(PathBuf, BinarySource)> {
    if let Some(path) = explicit {
        return Some((path.to_path_buf(), BinarySource::Flag));
    }
    if let Some(dir) = env_dir.filter(|d| !d.is_empty()) {
        return Some((PathBuf::from(dir).join(name), BinarySource::EnvDir));
    }
    exe_dir.map(|d| (d.join(name), BinarySource::ExeDir))
}

fn replica_args(
    node_id: usize,
    data_dir: &Path,
    peer_port: u16,
    client_port: u16,
    initial_cluster: &str,
) -> Vec<String> {
    vec![
        "--node-id".into(),
        node_id.to_string(),
        "--data-dir".into(),
        data_dir.to_string_lossy().into_owned(),
        "--listen-peer".into(),
        format!("127.0.0.1:{peer_port}"),
        "--listen-client".into(),
        format!("127.0.0.1:{client_port}"),
        "--initial-cluster".into(),
        initial_cluster.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_resolution_order() {
        let flag = resolve_binary(Some(Path::new("/x/bin")), Some("/env".into()), Some("/exe".into()));
        assert_eq!(flag, Some((PathBuf::from("/x/bin"), BinarySource::Flag)));
        let env = resolve_binary(None, Some("/env".into()), Some("/exe".into()));
        assert_eq!(env, Some((PathBuf::from("/env/gantry-control-plane"), BinarySource::EnvDir)));
        let exe = resolve_binary(None, Some("".into()), Some("/exe".into()));
        assert_eq!(exe, Some((PathBuf::from("/exe/gantry-control-plane"), BinarySource::ExeDir)));
        assert_eq!(resolve_binary(None, None, None), None);
    }

    #[test]
    fn missing_binary_error_names_the_build_command() {
        let err = GantryLauncher::locate(Some(Path::new("/nonexistent/gantry")), "warn");
        let msg = match err {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        assert!(msg.contains("cargo build --release -p control-plane"), "{msg}");
        assert!(msg.contains("/nonexistent/gantry"), "{msg}");
    }

    #[test]
    fn replica_args_follow_the_contract() {
        let args = replica_args(2, Path::new("/d"), 7001, 7002, "1=a,2=b,3=c");
        assert_eq!(
            args.join(" "),
            "--node-id 2 --data-dir /d --listen-peer 127.0.0.1:7001 \
             --listen-client 127.0.0.1:7002 --initial-cluster 1=a,2=b,3=c"
        );
    }
}
