//! Command-line flags of `api-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::cli::{parse_duration, ClientList};

/// Largest accepted list size or watcher count.
pub const MAX_COUNT: usize = 1_000_000;

/// Errors from parsing a count list such as `1000,10000`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountListError {
    /// One element is not a positive integer up to [`MAX_COUNT`].
    #[error("invalid count {0:?}: expected a positive integer up to 1000000")]
    Invalid(String),
}

/// Parses `1000,10000` (empty text: no counts); duplicates are dropped, order is kept.
pub fn parse_count_list(s: &str) -> Result<Vec<usize>, CountListError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n: usize = part.parse().map_err(|_| CountListError::Invalid(part.to_string()))?;
        if n == 0 || n > MAX_COUNT {
            return Err(CountListError::Invalid(part.to_string()));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Errors from parsing `--rss-pids`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pid {0:?}: expected a positive integer")]
pub struct PidListError(String);

/// Parses `123,456`.
pub fn parse_pid_list(s: &str) -> Result<Vec<u32>, PidListError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| PidListError(p.to_string())))
        .collect()
}

/// The workload groups `api-bench` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Closed-loop creates of ConfigMaps and Pods at each `--clients` level.
    Create,
    /// Open-loop ConfigMap creates at `--steady-rate`.
    Steady,
    /// Closed-loop gets of existing Pods at each `--clients` level.
    Get,
    /// Full and paged LISTs of `--list-sizes` Pods.
    List,
    /// Watch-event delay for each `--watchers` count.
    Watch,
}

/// `api-bench`: Kubernetes API throughput, latency, list and watch figures.
#[derive(Debug, Clone, Parser)]
#[command(name = "api-bench", about, long_about = None)]
pub struct ApiArgs {
    /// Kubeconfig of the cluster to measure (YAML or JSON). Without it, api-bench starts its own
    /// 3-replica Gantry cluster from `gantry-control-plane`.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current-context).
    #[arg(long)]
    pub context: Option<String>,
    /// Concurrent clients per row, one keep-alive connection each.
    #[arg(long, default_value = "1,16,64")]
    pub clients: ClientList,
    /// Measured time per closed-loop row and for the open-loop and watch writers, e.g. 10, 2.5s.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time before each closed-loop row.
    #[arg(long, default_value = "1", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open-loop ConfigMap creates per second for the steady-rate row (0 skips it).
    #[arg(long, default_value_t = 200.0)]
    pub steady_rate: f64,
    /// Pod counts to LIST (the namespace is preloaded up to each size in turn).
    #[arg(long, default_value = "1000,10000", value_parser = parse_count_list)]
    pub list_sizes: ::std::vec::Vec<usize>,
    /// Page size of the paged LIST.
    #[arg(long, default_value_t = 500)]
    pub page_size: usize,
    /// Concurrent writers of the LIST preload.
    #[arg(long, default_value_t = 64)]
    pub preload_clients: usize,
    /// Watcher counts of the watch-delay rows, one connection per watcher.
    #[arg(long, default_value = "1,1000", value_parser = parse_count_list)]
    pub watchers: ::std::vec::Vec<usize>,
    /// ConfigMap creates per second while the watchers listen.
    #[arg(long, default_value_t = 20.0)]
    pub watch_rate: f64,
    /// Report the RSS of these processes (e.g. the control-plane replicas) after the largest preload.
    #[arg(long, value_name = "PID,PID,...", value_parser = parse_pid_list)]
    pub rss_pids: Option<::std::vec::Vec<u32>>,
    /// Workload groups to run.
    #[arg(long, value_delimiter = ',', default_value = "create,steady,get,list,watch")]
    pub phases: Vec<Phase>,
    /// Per-request timeout.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Leave the benchmark namespaces in place at the end.
    #[arg(long)]
    pub keep_namespaces: bool,
    /// Also write all figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// `gantry-control-plane` to start when no --kubeconfig is given (default: $GANTRY_BIN_DIR, then
    /// next to api-bench).
    #[arg(long, value_name = "PATH")]
    pub gantry_bin: Option<PathBuf>,
    /// Parent of the started cluster's temporary directory.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
    /// `RUST_LOG` of the started replicas.
    #[arg(long, default_value = "warn")]
    pub server_log_level: String,
    /// How long the started cluster may take to serve the API.
    #[arg(long, default_value = "90", value_parser = parse_duration)]
    pub startup_timeout: Duration,
}

impl ApiArgs {
    /// Whether `phase` was selected.
    pub fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

crate::api::target::target_options_from_args!(ApiArgs);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_pid_lists() {
        assert_eq!(parse_count_list("1000, 10000,1000"), Ok(vec![1000, 10000]));
        assert_eq!(parse_count_list(""), Ok(vec![]));
        assert!(parse_count_list("0").is_err());
        assert!(parse_count_list("x").is_err());
        assert_eq!(parse_pid_list("12,34"), Ok(vec![12, 34]));
        assert!(parse_pid_list("12,-1").is_err());
    }

    #[test]
    fn defaults_follow_the_issue() -> Result<(), clap::Error> {
        let args = ApiArgs::try_parse_from(["api-bench", "--kubeconfig", "/k", "--phases", "list,watch"])?;
        assert_eq!(args.clients.0, vec![1, 16, 64]);
        assert_eq!(args.list_sizes, vec![1000, 10000]);
        assert_eq!(args.watchers, vec![1, 1000]);
        assert!(args.runs(Phase::List) && !args.runs(Phase::Create));
        assert!((args.steady_rate - 200.0).abs() < f64::EPSILON);
        Ok(())
    }
}
