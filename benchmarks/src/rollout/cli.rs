//! Command-line flags of `rollout-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::objects::IntOrPercent;
use crate::cli::parse_duration;

/// A Deployment from creation to Available, then a full rolling update of it, on simulated nodes.
#[derive(Debug, Clone, Parser)]
#[command(name = "rollout-bench", about, long_about = None)]
pub struct RolloutArgs {
    /// Kubeconfig of a running cluster (with a scheduler and Deployment/ReplicaSet controllers);
    /// without it a 3-replica Gantry cluster is started.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Simulated nodes to register.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 1000)]
    pub replicas: u32,
    /// `maxSurge` of the rolling update (a count or a percentage).
    #[arg(long, default_value = "25%")]
    pub max_surge: IntOrPercent,
    /// `maxUnavailable` of the rolling update (a count or a percentage).
    #[arg(long, default_value = "25%")]
    pub max_unavailable: IntOrPercent,
    /// Allocatable CPU of each node.
    #[arg(long, default_value = "8")]
    pub node_cpu: String,
    /// Allocatable memory of each node.
    #[arg(long, default_value = "32Gi")]
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
    /// Skip the rolling update (measure creation only).
    #[arg(long)]
    pub no_update: bool,
    /// Give up on a phase (creation, rolling update) after this long.
    #[arg(long, default_value = "300", value_parser = parse_duration)]
    pub phase_timeout: Duration,
    /// How long the simulated nodes may take to register.
    #[arg(long, default_value = "120", value_parser = parse_duration)]
    pub nodes_timeout: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "30", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Prefix of node names (the Deployment goes into a fresh random namespace).
    #[arg(long, default_value = "rollout-bench-node-")]
    pub node_prefix: String,
    /// Leave the namespace and the simulated nodes behind.
    #[arg(long)]
    pub keep: bool,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// `gantry-sim-nodes` binary (default: next to this binary, or `$GANTRY_BIN_DIR`).
    #[arg(long, value_name = "PATH")]
    pub sim_bin: Option<PathBuf>,
    /// `RUST_LOG` of the simulator (keep `info` or finer: its readiness is read from its log).
    #[arg(long, default_value = "info")]
    pub sim_log_level: String,
    /// Gantry binary for the self-started cluster (default: next to this binary, or `$GANTRY_BIN_DIR`).
    #[arg(long, value_name = "PATH")]
    pub gantry_bin: Option<PathBuf>,
    /// Parent directory of the self-started cluster's data and the simulator's log.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
    /// `RUST_LOG` of the self-started replicas.
    #[arg(long, default_value = "warn")]
    pub server_log_level: String,
    /// How long the self-started cluster may take to serve the API.
    #[arg(long, default_value = "90", value_parser = parse_duration)]
    pub startup_timeout: Duration,
}

impl RolloutArgs {
    /// Whether the nodes can hold the Deployment at its largest (replicas + surge).
    pub fn capacity_problem(&self) -> Option<String> {
        let bounds = super::objects::RollingBounds::resolve(self.replicas, self.max_surge, self.max_unavailable);
        let needed = u64::from(bounds.max_pods(self.replicas));
        let capacity = self.nodes as u64 * u64::from(self.node_pods);
        (capacity < needed).then(|| {
            format!(
                "{} nodes x {} pods = {capacity} pod slots, but the rolling update may run {needed} pods \
                 (replicas + maxSurge); raise --nodes or --node-pods",
                self.nodes, self.node_pods
            )
        })
    }
}

crate::api::target::target_options_from_args!(RolloutArgs);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() -> Result<(), clap::Error> {
        let args = RolloutArgs::try_parse_from(["rollout-bench"])?;
        assert_eq!((args.nodes, args.replicas), (100, 1000));
        assert_eq!((args.max_surge, args.max_unavailable), (IntOrPercent::Percent(25), IntOrPercent::Percent(25)));
        assert_eq!(args.capacity_problem(), None);
        let args =
            RolloutArgs::try_parse_from(["rollout-bench", "--nodes", "2", "--max-surge", "3", "--node-pods", "10"])?;
        assert_eq!(args.max_surge, IntOrPercent::Int(3));
        assert!(args.capacity_problem().is_some_and(|p| p.contains("1003")), "{:?}", args.capacity_problem());
        Ok(())
    }
}
