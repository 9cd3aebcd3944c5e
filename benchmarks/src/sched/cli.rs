//! Command-line flags of `sched-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cli::parse_duration;

/// Scheduler throughput and create->bound latency: registers simulated nodes, creates pods as fast as
/// the API accepts them, and watches them get bound.
#[derive(Debug, Clone, Parser)]
#[command(name = "sched-bench", about, long_about = None)]
pub struct SchedArgs {
    /// Kubeconfig of a running cluster (with a scheduler); without it a 3-replica Gantry cluster is
    /// started (its controller manager schedules).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Nodes to register.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Pods to create.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Concurrent clients (connections) creating pods and nodes.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Allocatable CPU of each node.
    #[arg(long, default_value = "32")]
    pub node_cpu: String,
    /// Allocatable memory of each node.
    #[arg(long, default_value = "256Gi")]
    pub node_memory: String,
    /// Allocatable pod count of each node.
    #[arg(long, default_value_t = 110)]
    pub node_pods: u32,
    /// CPU request of each pod.
    #[arg(long, default_value = "10m")]
    pub pod_cpu: String,
    /// Memory request of each pod.
    #[arg(long, default_value = "16Mi")]
    pub pod_memory: String,
    /// How often node Leases are renewed (0 disables renewal; upstream kubelets renew every 10 s).
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub lease_interval: Duration,
    /// Give up waiting for bindings after this long.
    #[arg(long, default_value = "300", value_parser = parse_duration)]
    pub bind_timeout: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "30", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Prefix of node names (pods go into a fresh random namespace).
    #[arg(long, default_value = "sched-bench-node-")]
    pub node_prefix: String,
    /// Leave the namespace, nodes and leases behind.
    #[arg(long)]
    pub keep: bool,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Gantry binary for the self-started cluster (default: next to this binary, or `$GANTRY_BIN_DIR`).
    #[arg(long, value_name = "PATH")]
    pub gantry_bin: Option<PathBuf>,
    /// Parent directory of the self-started cluster's data.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
    /// `RUST_LOG` of the self-started replicas.
    #[arg(long, default_value = "warn")]
    pub server_log_level: String,
    /// How long the self-started cluster may take to serve the API.
    #[arg(long, default_value = "90", value_parser = parse_duration)]
    pub startup_timeout: Duration,
}

crate::api::target::target_options_from_args!(SchedArgs);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() -> Result<(), clap::Error> {
        let args = SchedArgs::try_parse_from(["sched-bench"])?;
        assert_eq!((args.nodes, args.pods), (1000, 10_000));
        assert_eq!(args.lease_interval, Duration::from_secs(10));
        let args = SchedArgs::try_parse_from(["sched-bench", "--nodes", "5", "--pods", "50", "--lease-interval", "0"])?;
        assert_eq!((args.nodes, args.pods, args.lease_interval), (5, 50, Duration::ZERO));
        Ok(())
    }

    #[test]
    fn cluster_flags_become_the_target_options() -> Result<(), clap::Error> {
        let args = SchedArgs::try_parse_from([
            "sched-bench",
            "--kubeconfig",
            "/k",
            "--context",
            "c",
            "--work-dir",
            "/w",
            "--request-timeout",
            "7",
        ])?;
        let o = crate::api::target::TargetOptions::from(&args);
        assert_eq!(o.kubeconfig, Some(std::path::Path::new("/k")));
        assert_eq!(o.context, Some("c"));
        assert_eq!(o.work_dir, std::path::Path::new("/w"));
        assert_eq!(o.request_timeout, Duration::from_secs(7));
        assert_eq!((o.gantry_bin, o.server_log_level, o.startup_timeout), (None, "warn", Duration::from_secs(90)));
        Ok(())
    }
}
