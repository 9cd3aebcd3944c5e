//! The on-disk description of the local cluster that `cargo xtask up` starts, all under `.gantry/` in
//! the workspace root (ignored by git):
//!
//! - `cluster.json`: the running cluster — the binary and, per replica, node id, pid, peer and client
//!   addresses, data dir and log file. Written by `up`, removed by `down`.
//! - `layout.json`: node ids and addresses only. It survives `down` (but not `down --purge`), so the next
//!   `up` restarts the replicas on the addresses that their Raft membership (in the data dirs) records.
//! - `node-N/data` (the replica's data dir) and `node-N/replica.log` (its stdout and stderr).
//! - `containerd/`, `images/` and `agent/`: the node (see [`crate::node`]).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::util;

/// Number of replicas in a local cluster.
pub const REPLICAS: u64 = 3;

/// Node id and listen addresses of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddrs {
    pub id: u64,
    /// Raft traffic between replicas (`--listen-peer`).
    pub peer_addr: String,
    /// etcd v3 gRPC API (`--listen-client`).
    pub client_addr: String,
    /// Kubernetes API, HTTPS (`--listen-api`); empty in layouts written before it existed.
    #[serde(default)]
    pub api_addr: String,
}

/// Contents of `layout.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layout {
    pub nodes: Vec<NodeAddrs>,
}

/// One running replica, as recorded in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub id: u64,
    pub pid: u32,
    pub peer_addr: String,
    pub client_addr: String,
    #[serde(default)]
    pub api_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Node {
    /// True when the recorded pid is alive and is still this replica (its command line names our
    /// data dir), so a recycled pid is never mistaken for it.
    pub fn is_running(&self) -> bool {
        if !util::pid_alive(self.pid) {
            return false;
        }
        let data_dir = self.data_dir.to_string_lossy();
        match util::pid_cmdline(self.pid) {
            Some(args) => args.iter().any(|a| a.contains(data_dir.as_ref())),
            None => true,
        }
    }
}

/// Contents of `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    /// The replica binary that was started.
    pub binary: PathBuf,
    pub nodes: Vec<Node>,
    /// The node (containerd and its agent), when one was started.
    #[serde(default)]
    pub node: Option<crate::node::NodeProcs>,
}

impl Cluster {
    /// Client endpoints, comma-separated, in the form `etcdctl --endpoints` takes.
    pub fn endpoints(&self) -> String {
        self.nodes.iter().map(|n| n.client_addr.as_str()).collect::<Vec<_>>().join(",")
    }
}

/// Paths of the local cluster's files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Workspace root, for showing paths relative to it.
    pub root: PathBuf,
    /// `.gantry/`.
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(workspace_root: &Path) -> Self {
        Self { root: workspace_root.to_path_buf(), dir: workspace_root.join(".gantry") }
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }

    /// Cluster CA and certificates shared by all replicas (`--pki-dir`).
    pub fn pki_dir(&self) -> PathBuf {
        self.dir.join("pki")
    }

    /// The admin kubeconfig the first replica writes.
    pub fn kubeconfig(&self) -> PathBuf {
        self.pki_dir().join("admin.kubeconfig")
    }

    pub fn layout_file(&self) -> PathBuf {
        self.dir.join("layout.json")
    }

    pub fn node_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("data")
    }

    pub fn log(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("replica.log")
    }

    /// `path` relative to the workspace root, for display.
    pub fn show(&self, path: &Path) -> String {
        util::rel(path, &self.root).display().to_string()
    }
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).with_context(|| format!("cannot parse {}", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a JSON file atomically (temporary file, then rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Prints the cluster's replicas and how to use it.
pub fn print_usage(cluster: &Cluster, paths: &Paths, leader: Option<u64>) {
    let endpoints = cluster.endpoints();
    let gantry_dir = paths.show(&paths.dir);
    let mut lines = vec![
        String::new(),
        format!(
            "Local Gantry cluster: {} control-plane replicas (Kubernetes API over HTTPS, etcd v3 gRPC API).",
            cluster.nodes.len()
        ),
        String::new(),
        format!("  {:<5} {:<8} {:<21} {:<21} {:<21} log", "node", "pid", "kubernetes api", "etcd client", "peer"),
    ];
    for n in &cluster.nodes {
        let mark = if leader == Some(n.id) { " (leader)" } else { "" };
        lines.push(format!(
            "  {:<5} {:<8} {:<21} {:<21} {:<21} {}{mark}",
            n.id,
            n.pid,
            n.api_addr,
            n.client_addr,
            n.peer_addr,
            paths.show(&n.log)
        ));
    }
    let kubeconfig = paths.show(&paths.kubeconfig());
    lines.extend([
        String::new(),
        format!("Use it with kubectl (admin credentials in {kubeconfig}):"),
        format!("  export KUBECONFIG=$PWD/{kubeconfig}"),
        "  kubectl get namespaces".to_owned(),
        "  kubectl create configmap demo --from-literal=greeting=hello"
            .to_owned(),
        "  kubectl get configmaps -o wide".to_owned(),
        "  (every replica serves the API; the kubeconfig points at node 1, add --server https://<kubernetes api> for another)"
            .to_owned(),
    ]);
    lines.extend([
        String::new(),
        format!("Endpoints: {endpoints}"),
        String::new(),
        "Try it with etcdctl (Debian package etcd-client):".to_owned(),
        format!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} put foo bar"),
        format!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} get foo"),
        format!("  ETCDCTL_API=3 etcdctl --endpoints={endpoints} endpoint status -w table"),
        String::new(),
        "The scheduler and controllers run on the leading replica.".to_owned(),
    ]);
    match &cluster.node {
        Some(node) => lines.extend(crate::node::usage(paths, node)),
        None => lines.push(
            "No node runs pods (see above why); for pods that reach Running without containers, start \
             simulated nodes:\n  cargo run -p gantry-sim-nodes -- --kubeconfig .gantry/pki/admin.kubeconfig --nodes 3"
                .to_owned(),
        ),
    }
    lines.extend([
        String::new(),
        format!("Logs: {gantry_dir}/node-N/replica.log    Data: {gantry_dir}/node-N/data"),
        "Stop: cargo xtask down    (cargo xtask down --purge also deletes .gantry/ and all data)".to_owned(),
    ]);
    util::say(lines.join("\n"));
}
