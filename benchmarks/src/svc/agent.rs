//! The node agent of `svc-bench`: a `gantry-node-agent` process with the default `--proxy-mode
//! nftables`, registered as its own node. It gets no container runtime (its CRI endpoint does not
//! exist, so it runs no pods and logs that it retries): the service proxy does not need one.
//!
//! Found like the control plane binary: `--agent-bin`, else `$GANTRY_BIN_DIR`, else beside the
//! benchmark executable.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gantry_node_agent::proxy::{table_name, Nft};
use serde_json::Value;
use tempfile::TempDir;

use crate::gantry::{resolve_named_binary, BinarySource};
use crate::ports::{free_ports, PortError};
use crate::process::{ManagedProcess, ProcessError};

pub const AGENT_BINARY: &str = "gantry-node-agent";
/// The benchmark's node.
pub const NODE: &str = "svc-bench-node";
const LOG_LINES: usize = 20;

/// Failures of the agent process.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "{AGENT_BINARY} not found at {path} ({origin}); build it with `cargo build --release -p gantry-node-agent`, \
         or pass --agent-bin PATH / set GANTRY_BIN_DIR"
    )]
    NotFound { path: PathBuf, origin: &'static str },
    #[error("cannot locate {AGENT_BINARY}: current executable path unknown; pass --agent-bin")]
    NoExeDir(#[source] std::io::Error),
    #[error("failed to create a directory under {0}")]
    Dir(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{AGENT_BINARY} exited early ({status}); last log lines:\n{log}")]
    Exited { status: String, log: String },
    #[error("the agent programmed {programmed} of {wanted} ClusterIPs within {timeout:?}; last log lines:\n{log}")]
    NotProgrammed { programmed: usize, wanted: usize, timeout: Duration, log: String },
    #[error("the agent's chain {chain} did not send to {endpoint} within {timeout:?}; agent log:\n{log}")]
    EndpointNotProgrammed { chain: String, endpoint: Ipv4Addr, timeout: Duration, log: String },
}

/// The agent's chain for port `http` of Service `namespace/name` (`gantry_node_agent::proxy`'s naming).
pub fn service_chain(namespace: &str, name: &str) -> String {
    format!("svc-{namespace}/{name}/tcp/http")
}

/// The agent binary: `explicit`, else `$GANTRY_BIN_DIR`, else beside this executable.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, AgentError> {
    let exe_dir = match explicit {
        Some(_) => None,
        None => std::env::current_exe().map_err(AgentError::NoExeDir)?.parent().map(Path::to_path_buf),
    };
    let (path, source) = resolve_named_binary(AGENT_BINARY, explicit, std::env::var_os("GANTRY_BIN_DIR"), exe_dir)
        .ok_or_else(|| AgentError::NoExeDir(std::io::Error::other("executable has no parent dir")))?;
    if !path.is_file() {
        let origin = match source {
            BinarySource::Flag => "from --agent-bin",
            BinarySource::EnvDir => "from GANTRY_BIN_DIR",
            BinarySource::ExeDir => "next to svc-bench",
        };
        return Err(AgentError::NotFound { path, origin });
    }
    Ok(path)
}

/// The running agent (stopped on drop; its table stays, as a stopped agent's does).
pub struct AgentProcess {
    process: ManagedProcess,
    pub table: String,
    /// Its cluster DNS redirect (`gantry_node_agent::dns::redirect::table_name`), also left behind.
    pub dns_table: String,
    _dir: TempDir,
}

impl AgentProcess {
    pub fn spawn(binary: &Path, kubeconfig: &Path, work_dir: &Path) -> Result<Self, AgentError> {
        let dir = tempfile::Builder::new()
            .prefix("svc-bench-agent-")
            .tempdir_in(work_dir)
            .map_err(|e| AgentError::Dir(work_dir.to_path_buf(), e))?;
        let ports = free_ports(2)?;
        let args: Vec<String> = vec![
            "--kubeconfig".into(),
            kubeconfig.to_string_lossy().into_owned(),
            "--node-name".into(),
            NODE.into(),
            "--runtime-endpoint".into(),
            format!("unix://{}", dir.path().join("no-runtime.sock").display()),
            "--root-dir".into(),
            dir.path().join("root").to_string_lossy().into_owned(),
            "--listen".into(),
            format!("127.0.0.1:{}", ports[0]),
            // Its cluster DNS server is not measured; it only must not need a fixed port.
            "--dns-listen".into(),
            format!("127.0.0.1:{}", ports[1]),
        ];
        let envs = [("RUST_LOG".to_string(), "warn,gantry_node_agent::proxy=info".to_string())];
        let process = ManagedProcess::spawn("node-agent", binary, &args, &envs, &dir.path().join("agent.log"))?;
        Ok(Self { process, table: table_name(NODE), dns_table: format!("gantry-dns-{NODE}"), _dir: dir })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits until the agent's table maps every ClusterIP of `wanted` (the cluster's own Services,
    /// `kubernetes` and `kube-dns`, are there too and must not count); returns how long that took.
    pub async fn wait_programmed(&mut self, wanted: &[Ipv4Addr], timeout: Duration) -> Result<Duration, AgentError> {
        let started = Instant::now();
        let nft = Nft::default();
        loop {
            if let Some(status) = self.process.try_exit_status()? {
                return Err(AgentError::Exited { status: status.to_string(), log: self.process.log_tail(LOG_LINES) });
            }
            let in_kernel = programmed_cluster_ips(&nft, &self.table).await;
            let programmed = wanted.iter().filter(|ip| in_kernel.contains(ip)).count();
            if programmed == wanted.len() {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                return Err(AgentError::NotProgrammed {
                    programmed,
                    wanted: wanted.len(),
                    timeout,
                    log: self.process.log_tail(LOG_LINES),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the chain of Service `namespace/name` (port `http`) sends to `endpoint`: a
    /// ClusterIP is mapped as soon as its Service is known, its endpoints may follow a moment later.
    pub async fn wait_endpoint(
        &mut self,
        namespace: &str,
        name: &str,
        endpoint: Ipv4Addr,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        let started = Instant::now();
        let chain = service_chain(namespace, name);
        let nft = Nft::default();
        loop {
            let text = nft.output(&["list", "chain", "ip", &self.table, &chain]).await.unwrap_or_default();
            // A map of endpoints prints `10.254.254.2 . 8080`, a lone endpoint `to 10.254.254.2:8080`.
            if text.contains(&format!("{endpoint} ")) || text.contains(&format!("{endpoint}:")) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(AgentError::EndpointNotProgrammed { chain, endpoint, timeout, log: self.log_tail() });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail(LOG_LINES)
    }

    pub fn stop(mut self) -> Result<(), AgentError> {
        self.process.stop(Duration::from_secs(10))?;
        Ok(())
    }
}

/// Elements of the `service-ips` map of `table` (0 when it does not exist yet).
pub async fn programmed_cluster_ips(nft: &Nft, table: &str) -> BTreeSet<Ipv4Addr> {
    let Ok(text) = nft.output(&["-j", "list", "map", "ip", table, "service-ips"]).await else { return BTreeSet::new() };
    let Ok(doc) = serde_json::from_str::<Value>(&text) else { return BTreeSet::new() };
    let mut found = BTreeSet::new();
    for item in doc["nftables"].as_array().into_iter().flatten() {
        for elem in item["map"]["elem"].as_array().into_iter().flatten() {
            collect_addresses(elem, &mut found);
        }
    }
    found
}

/// Every IPv4 address among the strings of `value` (a map element: its key, maybe a concatenation,
/// and its verdict).
fn collect_addresses(value: &Value, found: &mut BTreeSet<Ipv4Addr>) {
    match value {
        Value::String(s) => found.extend(s.parse::<Ipv4Addr>().ok()),
        Value::Array(items) => items.iter().for_each(|v| collect_addresses(v, found)),
        Value::Object(fields) => fields.values().for_each(|v| collect_addresses(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_agent_names_the_build_command() {
        let err = locate(Some(Path::new("/nonexistent/gantry-node-agent"))).expect_err("missing binary");
        let text = err.to_string();
        assert!(text.contains("cargo build --release -p gantry-node-agent") && text.contains("--agent-bin"), "{text}");
    }
}
