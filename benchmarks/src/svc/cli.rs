//! Command-line flags of `svc-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cli::parse_duration;

/// The node agent's service proxy: full resync of many Services, EndpointSlice change to rule in the
/// kernel, and the latency a ClusterIP adds. Needs root and nftables.
#[derive(Debug, Clone, Parser)]
#[command(name = "svc-bench", about, long_about = None)]
pub struct SvcArgs {
    /// Kubeconfig of a running cluster; without it a 3-replica Gantry cluster is started.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Services to create (one TCP port each, ClusterIPs from 10.104.0.1 upwards).
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Endpoints per Service (one EndpointSlice each; the addresses are never contacted).
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Full resyncs (render + apply of the whole table) timed in-process; the first one writes into an
    /// empty kernel.
    #[arg(long, default_value_t = 10)]
    pub full_syncs: usize,
    /// EndpointSlice changes timed from the API request to the rule in the kernel.
    #[arg(long, default_value_t = 200)]
    pub changes: usize,
    /// Least time between two changes (each waits for its rule first).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub change_interval: Duration,
    /// Give up on one change's rule after this long (counted as missed).
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub change_timeout: Duration,
    /// Request/response round trips per path (ClusterIP, pod IP) on one kept-open connection.
    #[arg(long, default_value_t = 20000)]
    pub round_trips: usize,
    /// Connections per path, each carrying one request/response (connection set-up included).
    #[arg(long, default_value_t = 2000)]
    pub connections: usize,
    /// Skip the latency phase (it needs no cluster, but a network namespace and a veth pair).
    #[arg(long)]
    pub no_latency: bool,
    /// Leave the namespace behind.
    #[arg(long)]
    pub keep: bool,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// `gantry-node-agent` binary (default: next to this binary, or `$GANTRY_BIN_DIR`).
    #[arg(long, value_name = "PATH")]
    pub agent_bin: Option<PathBuf>,
    /// Gantry binary for the self-started cluster (default: next to this binary, or `$GANTRY_BIN_DIR`).
    #[arg(long, value_name = "PATH")]
    pub gantry_bin: Option<PathBuf>,
    /// Parent directory of the self-started cluster's data and the agent's root dir and log.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
    /// Per-request timeout.
    #[arg(long, default_value = "30", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// `RUST_LOG` of the self-started replicas.
    #[arg(long, default_value = "warn")]
    pub server_log_level: String,
    /// How long the self-started cluster may take to serve the API.
    #[arg(long, default_value = "90", value_parser = parse_duration)]
    pub startup_timeout: Duration,
    /// How long the agent may take to program every Service after it starts.
    #[arg(long, default_value = "120", value_parser = parse_duration)]
    pub program_timeout: Duration,
}

crate::api::target::target_options_from_args!(SvcArgs);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() -> Result<(), clap::Error> {
        let args = SvcArgs::try_parse_from(["svc-bench"])?;
        assert_eq!((args.services, args.endpoints, args.changes), (1000, 10, 200));
        assert_eq!(args.change_interval, Duration::from_millis(200));
        let args = SvcArgs::try_parse_from(["svc-bench", "--services", "10", "--no-latency"])?;
        assert!(args.no_latency && args.services == 10);
        Ok(())
    }
}
