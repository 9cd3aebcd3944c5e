//! Command-line flags of `podstart-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::cli::parse_duration;

/// The measurements `podstart-bench` can run, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Pods started with raw CRI calls (RunPodSandbox, CreateContainer, StartContainer).
    Raw,
    /// Pods created through the API and run by the node agent, until Running and Ready.
    Api,
    /// The node agent's memory with `--memory-pods` pods Running and Ready.
    Memory,
}

/// Pod start latency and throughput on one node: raw CRI calls against pods created through the
/// Kubernetes API and run by `gantry-node-agent`, plus the agent's memory. Needs root.
#[derive(Debug, Clone, Parser)]
#[command(name = "podstart-bench", about, long_about = None)]
pub struct PodStartArgs {
    /// Measurements to run (in the order raw, api, memory).
    #[arg(long, value_delimiter = ',', default_value = "raw,api,memory")]
    pub phases: Vec<Phase>,
    /// Pods started one after the other (each waits for the previous one).
    #[arg(long, default_value_t = 20)]
    pub sequential: usize,
    /// Pods started at once.
    #[arg(long, default_value_t = 20)]
    pub parallel: usize,
    /// Pods Running and Ready when the agent's memory is read.
    #[arg(long, default_value_t = 50)]
    pub memory_pods: usize,
    /// Unmeasured pods started (and removed) before each sequential series.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Set `spec.nodeName` in the pods instead of letting the scheduler bind them.
    #[arg(long)]
    pub bind_directly: bool,
    /// How long one sequential pod may take to become Ready, or to disappear after its deletion.
    #[arg(long, default_value = "60", value_parser = parse_duration)]
    pub pod_timeout: Duration,
    /// How long a batch of pods started at once may take to become Ready, or to disappear.
    #[arg(long, default_value = "300", value_parser = parse_duration)]
    pub batch_timeout: Duration,
    /// How long the agent's memory is sampled (once a second) once the memory pods are Ready.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub memory_settle: Duration,
    /// Per-request timeout of API and CRI calls.
    #[arg(long, default_value = "30", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Also write all figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Copy the logs (agent, containerd, replicas) into this directory before the work dir is removed.
    #[arg(long, value_name = "DIR")]
    pub keep_logs: Option<PathBuf>,
    /// `gantry-control-plane` to start (default: $GANTRY_BIN_DIR, then next to podstart-bench).
    #[arg(long, value_name = "PATH")]
    pub gantry_bin: Option<PathBuf>,
    /// `gantry-node-agent` to start (default: beside `gantry-control-plane`).
    #[arg(long, value_name = "PATH")]
    pub agent_bin: Option<PathBuf>,
    /// Parent of the temporary directory holding containerd, the agent and the replicas.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
    /// `RUST_LOG` of the started replicas.
    #[arg(long, default_value = "warn")]
    pub server_log_level: String,
    /// `RUST_LOG` of the node agent (`info,gantry_node_agent=debug` shows each pod's steps).
    #[arg(long, default_value = "info")]
    pub agent_log_level: String,
    /// How long the cluster may take to serve the API and the node to become Ready.
    #[arg(long, default_value = "90", value_parser = parse_duration)]
    pub startup_timeout: Duration,
    /// Name of the CNI bridge of the benchmark's containerd (at most 15 characters).
    #[arg(long, default_value = "gnabench0")]
    pub bridge: String,
    /// Pod subnet of that bridge.
    #[arg(long, default_value = "10.230.0.0/16")]
    pub subnet: String,
    /// Name of the node the agent registers.
    #[arg(long, default_value = "podstart-bench-node")]
    pub node_name: String,
    /// Do not take the test suite's runtime and cluster locks (by default the benchmark waits for
    /// running end-to-end tests and keeps new ones from starting while it measures).
    #[arg(long)]
    pub no_locks: bool,
}

impl PodStartArgs {
    /// Whether `phase` was selected.
    pub fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }

    /// Whether a control plane and a node agent are needed.
    pub fn needs_cluster(&self) -> bool {
        self.runs(Phase::Api) || self.runs(Phase::Memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() -> Result<(), clap::Error> {
        let args = PodStartArgs::try_parse_from(["podstart-bench"])?;
        assert_eq!((args.sequential, args.parallel, args.memory_pods), (20, 20, 50));
        assert!(args.runs(Phase::Raw) && args.runs(Phase::Api) && args.runs(Phase::Memory));
        assert!(args.needs_cluster() && !args.bind_directly);
        assert_eq!((args.bridge.as_str(), args.subnet.as_str()), ("gnabench0", "10.230.0.0/16"));
        Ok(())
    }

    #[test]
    fn raw_alone_needs_no_cluster() -> Result<(), clap::Error> {
        let args = PodStartArgs::try_parse_from(["podstart-bench", "--phases", "raw", "--sequential", "5"])?;
        assert!(args.runs(Phase::Raw) && !args.runs(Phase::Api) && !args.needs_cluster());
        assert_eq!(args.sequential, 5);
        assert!(PodStartArgs::try_parse_from(["podstart-bench", "--phases", "bogus"]).is_err());
        Ok(())
    }
}
