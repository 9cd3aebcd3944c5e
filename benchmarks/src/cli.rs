//! Command-line flags of `store-bench` and the parsers behind them.
//!
//! The flag structure lives in the library (not in the binary) so that the
//! parsing rules are unit-tested together with the rest of the pure logic.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::workload::Workload;

/// Largest accepted concurrency level (bounds the number of spawned tasks).
pub const MAX_CLIENTS: usize = 4096;

/// Errors from parsing a comma-separated client list such as `1,16,64,256`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientListError {
    /// No client count was given.
    #[error("client list is empty")]
    Empty,
    /// One element is not a positive integer.
    #[error("invalid client count {0:?}: expected a positive integer")]
    Invalid(String),
    /// One element is above [`MAX_CLIENTS`].
    #[error("client count {count} exceeds the maximum of {max}")]
    TooLarge {
        /// The rejected count.
        count: usize,
        /// The allowed maximum.
        max: usize,
    },
}

/// Errors from parsing a duration such as `10`, `2.5s`, `500ms` or `1m`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not a non-negative number with an optional unit.
    #[error("invalid duration {0:?}: expected e.g. 10, 2.5s, 500ms or 1m")]
    Invalid(String),
    /// The duration exceeds one hour.
    #[error("duration {0:?} is longer than one hour")]
    TooLong(String),
}

/// Concurrency levels to run, in the order given (duplicates removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientList(pub Vec<usize>);

impl FromStr for ClientList {
    type Err = ClientListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_client_list(s).map(ClientList)
    }
}

impl fmt::Display for ClientList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses `1,16,64,256` into `[1, 16, 64, 256]`.
///
/// Whitespace around elements is ignored, duplicates are dropped (first
/// occurrence wins), zero, empty elements and values above [`MAX_CLIENTS`]
/// are rejected.
pub fn parse_client_list(s: &str) -> Result<Vec<usize>, ClientListError> {
    if s.trim().is_empty() {
        return Err(ClientListError::Empty);
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let count: usize = part.parse().map_err(|_| ClientListError::Invalid(part.to_string()))?;
        if count == 0 {
            return Err(ClientListError::Invalid(part.to_string()));
        }
        if count > MAX_CLIENTS {
            return Err(ClientListError::TooLarge { count, max: MAX_CLIENTS });
        }
        if !out.contains(&count) {
            out.push(count);
        }
    }
    Ok(out)
}

/// Parses a duration: a plain number means seconds; `ms`, `s` and `m` units
/// are accepted. At most one hour, so every phase stays bounded.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let text = s.trim();
    let invalid = || DurationError::Invalid(s.to_string());
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| invalid())?;
    if !value.is_finite() || value < 0.0 {
        return Err(invalid());
    }
    let secs = value * scale;
    if secs > 3600.0 {
        return Err(DurationError::TooLong(s.to_string()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Which system(s) to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SystemChoice {
    /// Only the Gantry store.
    Gantry,
    /// Only etcd.
    Etcd,
    /// Gantry first, then etcd.
    Both,
}

impl SystemChoice {
    /// Whether the Gantry store is benchmarked.
    pub fn includes_gantry(self) -> bool {
        matches!(self, Self::Gantry | Self::Both)
    }

    /// Whether etcd is benchmarked.
    pub fn includes_etcd(self) -> bool {
        matches!(self, Self::Etcd | Self::Both)
    }
}

/// Which members the load generator connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetChoice {
    /// Every member, clients spread round-robin (client 1 goes to the first member).
    All,
    /// Only the member that leads when the rows start.
    Leader,
    /// Only one member that does not lead when the rows start.
    Follower,
}

impl fmt::Display for TargetChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::All => "every member",
            Self::Leader => "the leader only",
            Self::Follower => "one follower only",
        })
    }
}

/// Compare the Gantry replicated store with etcd (3 members each, loopback).
#[derive(Debug, Clone, Parser)]
#[command(name = "store-bench", version, about)]
pub struct Args {
    /// Which system(s) to benchmark.
    #[arg(long, value_enum, default_value = "both")]
    pub system: SystemChoice,

    /// Which members the clients talk to (etcd's benchmark tool has `--target-leader`).
    #[arg(long, value_enum, default_value = "all")]
    pub target: TargetChoice,

    /// Comma-separated concurrency levels (independent client tasks).
    #[arg(long, default_value = "1,16,64,256")]
    pub clients: ClientList,

    /// Workloads to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "put,range")]
    pub workloads: Vec<Workload>,

    /// Measured time per row (plain number = seconds; also 500ms, 1m).
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub duration: Duration,

    /// Unmeasured warm-up before each row.
    #[arg(long, default_value = "2", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Size of the key space (`/bench/0` .. `/bench/<keys-1>`), preloaded before the workloads.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub keys: u64,

    /// Value size in bytes for puts and the preload.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub value_size: u64,

    /// Client tasks sharing one gRPC connection (per endpoint).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub clients_per_conn: u64,

    /// Concurrent client tasks used to preload the key space.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub preload_clients: u64,

    /// Puts per preload request: above 1, each request is one txn of that many puts.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=128))]
    pub preload_batch: u64,

    /// Per-request timeout; a request that exceeds it counts as an error.
    #[arg(long, default_value = "5", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Deadline for a cluster to become ready (every member reports a leader).
    #[arg(long, default_value = "60", value_parser = parse_duration)]
    pub startup_timeout: Duration,

    /// Idle period after startup before sampling the idle RSS.
    #[arg(long, default_value = "5", value_parser = parse_duration)]
    pub idle: Duration,

    /// Grace period between SIGTERM and SIGKILL when stopping members.
    #[arg(long, default_value = "10", value_parser = parse_duration)]
    pub stop_timeout: Duration,

    /// Path of the `gantry-control-plane` binary. Default: `$GANTRY_BIN_DIR/gantry-control-plane`,
    /// else next to the store-bench executable.
    #[arg(long)]
    pub gantry_bin: Option<PathBuf>,

    /// etcd binary (looked up in PATH when it has no slash).
    #[arg(long, default_value = "etcd")]
    pub etcd_bin: PathBuf,

    /// Parent directory for the members' temporary data dirs (default: the system temp dir).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,

    /// Log level given to the servers (etcd `--log-level`, Gantry `RUST_LOG`).
    #[arg(long, default_value = "warn")]
    pub server_log_level: String,

    /// Write the raw numbers as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_default_client_list() {
        assert_eq!(parse_client_list("1,16,64,256"), Ok(vec![1, 16, 64, 256]));
    }

    #[test]
    fn client_list_trims_and_dedups() {
        assert_eq!(parse_client_list(" 4 , 1,4 ,2"), Ok(vec![4, 1, 2]));
        assert_eq!(parse_client_list("8"), Ok(vec![8]));
    }

    #[test]
    fn client_list_rejects_bad_input() {
        assert_eq!(parse_client_list(""), Err(ClientListError::Empty));
        assert_eq!(parse_client_list("  "), Err(ClientListError::Empty));
        assert_eq!(parse_client_list("1,,2"), Err(ClientListError::Invalid(String::new())));
        assert_eq!(parse_client_list("0"), Err(ClientListError::Invalid("0".into())));
        assert_eq!(parse_client_list("-1"), Err(ClientListError::Invalid("-1".into())));
        assert_eq!(parse_client_list("1,x"), Err(ClientListError::Invalid("x".into())));
        assert_eq!(parse_client_list("5000"), Err(ClientListError::TooLarge { count: 5000, max: MAX_CLIENTS }));
    }

    #[test]
    fn client_list_round_trips_through_display() -> Result<(), ClientListError> {
        let list: ClientList = "1,16,64".parse()?;
        assert_eq!(list.to_string(), "1,16,64");
        Ok(())
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(matches!(parse_duration("2h"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse_duration("61m"), Err(DurationError::TooLong(_))));
    }

    #[test]
    fn args_defaults_and_overrides() -> Result<(), clap::Error> {
        let args = Args::try_parse_from(["store-bench"])?;
        assert_eq!(args.system, SystemChoice::Both);
        assert_eq!(args.clients.0, vec![1, 16, 64, 256]);
        assert_eq!(args.workloads, vec![Workload::Put, Workload::Range]);
        assert_eq!(args.duration, Duration::from_secs(10));
        assert_eq!(args.warmup, Duration::from_secs(2));
        assert_eq!(args.keys, 100_000);
        assert_eq!(args.value_size, 256);

        let args = Args::try_parse_from([
            "store-bench",
            "--system",
            "etcd",
            "--clients",
            "2,8",
            "--workloads",
            "range",
            "--duration",
            "3",
        ])?;
        assert_eq!(args.system, SystemChoice::Etcd);
        assert!(args.system.includes_etcd() && !args.system.includes_gantry());
        assert_eq!(args.clients.0, vec![2, 8]);
        assert_eq!(args.workloads, vec![Workload::Range]);
        assert_eq!(args.duration, Duration::from_secs(3));
        Ok(())
    }

    #[test]
    fn args_reject_bad_client_list() {
        let err = Args::try_parse_from(["store-bench", "--clients", "1,0"]);
        assert!(err.is_err());
    }
}
