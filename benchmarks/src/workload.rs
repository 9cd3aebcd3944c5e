//! The load generator: puts and linearizable reads over the etcd v3 API.
//!
//! # Model
//!
//! A *client* is an independent tokio task issuing requests back to back
//! (closed loop: the next request starts when the previous one returned).
//! Keys are drawn uniformly from `/bench/0` .. `/bench/<keys-1>`; puts write a
//! fixed random value of `value_size` bytes (like etcd's own `benchmark put`),
//! reads are `Range` requests for one key with the default linearizable
//! consistency (`serializable = false`). A read that finds no key counts as an
//! error, so the key space must be preloaded ([`LoadGenerator::preload`]).
//!
//! # Connections
//!
//! etcd's `tools/benchmark` separates `--clients` (concurrent requesters) from
//! `--conns` (gRPC connections), spreads connections over the endpoints
//! round-robin and clients over connections round-robin; its published runs
//! multiplex about ten clients per HTTP/2 connection. We do the same, with
//! one connection per endpoint per `clients_per_conn` (default 16) clients:
//! client `j` talks to endpoint `j % 3`, and the clients of one endpoint are
//! spread round-robin over that endpoint's connections (see
//! [`ConnectionPlan`]). 1 client uses 1 connection, 16 clients 3, 64 clients
//! 6, 256 clients 18. Both systems are driven with exactly the same plan.
//!
//! # Measurement
//!
//! Every row runs for `warmup + duration`. Only requests that start after the
//! warm-up and complete before the end are counted (ops and latency); failed
//! or timed-out requests in that window are counted as errors. Throughput is
//! successful ops divided by `duration`.

use std::fmt;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use etcd_client::{Client, ConnectOptions, KvClient, Txn, TxnOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::cpu::total_cpu_time;
use crate::latency::{LatencyError, LatencyRecorder, LatencySummary};

/// Attempts per request during the preload before giving up.
const PRELOAD_ATTEMPTS: u32 = 5;
/// Pause after a failed request, so a dead endpoint does not spin the CPU.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// Deadline for establishing one gRPC connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// `Put` of a `value_size`-byte value to a random key.
    Put,
    /// Linearizable `Range` of one random existing key.
    Range,
}

impl Workload {
    /// Label used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Range => "range (linearizable)",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Put => "put",
            Self::Range => "range",
        })
    }
}

/// Errors of the load generator.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// No endpoint to talk to.
    #[error("no endpoints given")]
    NoEndpoints,
    /// A gRPC connection could not be set up.
    #[error("failed to connect to {endpoint}")]
    Connect {
        /// Endpoint URL.
        endpoint: String,
        /// Underlying error.
        #[source]
        source: etcd_client::Error,
    },
    /// A gRPC connection did not come up in time.
    #[error("connecting to {endpoint} timed out after {CONNECT_TIMEOUT:?}")]
    ConnectTimeout {
        /// Endpoint URL.
        endpoint: String,
    },
    /// Histogram error.
    #[error("latency histogram error")]
    Latency(#[from] LatencyError),
    /// A client task panicked or was cancelled.
    #[error("client task failed")]
    Join(#[from] tokio::task::JoinError),
    /// A key could not be written during the preload.
    #[error("preload of {keys} failed after {attempts} attempts (try --preload-batch 1): {last}")]
    Preload {
        /// Key range.
        keys: String,
        /// Attempts made.
        attempts: u32,
        /// Last error.
        last: String,
    },
}

/// Load parameters shared by all rows.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Key space size.
    pub keys: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Clients per gRPC connection (per endpoint).
    pub clients_per_conn: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Unmeasured warm-up per row.
    pub warmup: Duration,
    /// Measured time per row.
    pub duration: Duration,
}

/// How clients map onto connections and connections onto endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// Endpoint index of each connection.
    pub conn_endpoint: Vec<usize>,
    /// Connection index of each client.
    pub client_conn: Vec<usize>,
}

impl ConnectionPlan {
    /// Client `j` goes to endpoint `j % endpoints`; each endpoint gets
    /// `ceil(its clients / per_conn)` connections, used round-robin.
    pub fn new(clients: usize, endpoints: usize, per_conn: usize) -> Self {
        let endpoints = endpoints.max(1);
        let per_conn = per_conn.max(1);
        let mut conn_base = Vec::with_capacity(endpoints);
        let mut conns_of = Vec::with_capacity(endpoints);
        let mut conn_endpoint = Vec::new();
        for e in 0..endpoints {
            let on_endpoint = clients / endpoints + usize::from(e < clients % endpoints);
            let conns = on_endpoint.div_ceil(per_conn);
            conn_base.push(conn_endpoint.len());
            conns_of.push(conns);
            conn_endpoint.extend(std::iter::repeat_n(e, conns));
        }
        let client_conn = (0..clients)
            .map(|j| {
                let e = j % endpoints;
                conn_base[e] + (j / endpoints) % conns_of[e]
            })
            .collect();
        Self { conn_endpoint, client_conn }
    }

    /// Number of connections.
    pub fn connections(&self) -> usize {
        self.conn_endpoint.len()
    }
}

/// Result of one (workload, clients) row.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    /// Workload.
    pub workload: Workload,
    /// Concurrent clients.
    pub clients: usize,
    /// gRPC connections used.
    pub connections: usize,
    /// Successful ops in the measured window.
    pub ops: u64,
    /// Failed or timed-out ops in the measured window.
    pub errors: u64,
    /// First error message seen, if any.
    pub first_error: Option<String>,
    /// Measured window in seconds.
    pub duration_secs: f64,
    /// Successful ops per second.
    pub ops_per_sec: f64,
    /// Latency of successful ops.
    pub latency: LatencySummary,
    /// CPU time (user + system) the servers used during the measured window, all members
    /// together (`None` if a member's `/proc/<pid>/stat` could not be read). Divided by `ops`,
    /// it is the cost of one operation, which varies less from run to run than the throughput
    /// on a shared 2-core machine.
    pub server_cpu_secs: Option<f64>,
}

impl LevelResult {
    /// Server CPU time per successful op, in microseconds.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        self.server_cpu_secs.filter(|_| self.ops > 0).map(|secs| secs * 1e6 / self.ops as f64)
    }
}

/// Result of the preload.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PreloadResult {
    /// Keys written.
    pub keys: u64,
    /// Concurrent writers.
    pub clients: usize,
    /// Puts per request (1 = plain puts, more = one txn per batch).
    pub batch: u64,
    /// Wall time in seconds.
    pub secs: f64,
}

/// Drives one cluster.
#[derive(Debug, Clone)]
pub struct LoadGenerator {
    endpoints: Vec<String>,
    config: LoadConfig,
    value: Vec<u8>,
}

/// Per-task outcome.
struct TaskResult {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    latency: LatencyRecorder,
}

impl LoadGenerator {
    /// A generator for the given client URLs.
    pub fn new(endpoints: Vec<String>, config: LoadConfig) -> Result<Self, WorkloadError> {
        if endpoints.is_empty() {
            return Err(WorkloadError::NoEndpoints);
        }
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let value = (0..config.value_size).map(|_| rng.sample(rand::distr::Alphanumeric)).collect();
        Ok(Self { endpoints, config, value })
    }

    /// Writes every key of the key space once, with `clients` concurrent
    /// writers. With `batch > 1` each request is a `Txn` of `batch` puts of
    /// consecutive keys (fewer round trips; both systems accept up to 128
    /// ops per txn by default); with `batch == 1` plain puts. Every request is
    /// retried a few times before the preload fails.
    pub async fn preload(&self, clients: usize, batch: u64) -> Result<PreloadResult, WorkloadError> {
        let batch = batch.max(1);
        let batches = self.config.keys.div_ceil(batch);
        let clients = clients.clamp(1, usize::try_from(batches).unwrap_or(usize::MAX));
        let plan = ConnectionPlan::new(clients, self.endpoints.len(), self.config.clients_per_conn);
        let conns = self.connect(&plan).await?;
        let started = Instant::now();
        let mut set = JoinSet::new();
        for (task, conn) in plan.client_conn.iter().enumerate() {
            let mut kv = conns[*conn].clone();
            let value = self.value.clone();
            let keys = self.config.keys;
            let timeout = self.config.request_timeout;
            let stride = clients as u64;
            set.spawn(async move {
                let mut b = task as u64;
                while b < batches {
                    let first = b * batch;
                    let last = (first + batch).min(keys);
                    write_with_retries(&mut kv, first..last, &value, timeout).await?;
                    b += stride;
                }
                Ok::<(), WorkloadError>(())
            });
        }
        while let Some(joined) = set.join_next().await {
            joined??;
        }
        Ok(PreloadResult { keys: self.config.keys, clients, batch, secs: started.elapsed().as_secs_f64() })
    }

    /// Runs one row: `clients` closed-loop clients for warm-up + duration.
    /// Runs one row; `servers` are the pids whose CPU time the measured window is charged with.
    pub async fn run(&self, workload: Workload, clients: usize, servers: &[u32]) -> Result<LevelResult, WorkloadError> {
        let plan = ConnectionPlan::new(clients, self.endpoints.len(), self.config.clients_per_conn);
        let conns = self.connect(&plan).await?;
        let measure_start = Instant::now() + self.config.warmup;
        let end = measure_start + self.config.duration;
        let mut set = JoinSet::new();
        for (task, conn) in plan.client_conn.iter().enumerate() {
            let kv = conns[*conn].clone();
            let ctx = TaskContext {
                workload,
                keys: self.config.keys,
                value: self.value.clone(),
                timeout: self.config.request_timeout,
                measure_start,
                end,
                seed: seed_for(workload, clients, task),
            };
            set.spawn(client_task(kv, ctx));
        }
        tokio::time::sleep_until(measure_start.into()).await;
        let cpu_start = total_cpu_time(servers);
        tokio::time::sleep_until(end.into()).await;
        let cpu_end = total_cpu_time(servers);
        let mut latency = LatencyRecorder::new()?;
        let (mut ops, mut errors, mut first_error) = (0u64, 0u64, None);
        while let Some(joined) = set.join_next().await {
            let r = joined??;
            ops += r.ops;
            errors += r.errors;
            if first_error.is_none() {
                first_error = r.first_error;
            }
            latency.merge(&r.latency)?;
        }
        let secs = self.config.duration.as_secs_f64();
        Ok(LevelResult {
            workload,
            clients,
            connections: plan.connections(),
            ops,
            errors,
            first_error,
            duration_secs: secs,
            ops_per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
            latency: latency.summary(),
            server_cpu_secs: cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a).as_secs_f64()),
        })
    }

    /// Opens one gRPC connection per plan entry.
    async fn connect(&self, plan: &ConnectionPlan) -> Result<Vec<KvClient>, WorkloadError> {
        let mut out = Vec::with_capacity(plan.connections());
        for &e in &plan.conn_endpoint {
            let endpoint = &self.endpoints[e];
            let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
            let client = tokio::time::timeout(CONNECT_TIMEOUT, Client::connect([endpoint], Some(options)))
                .await
                .map_err(|_| WorkloadError::ConnectTimeout { endpoint: endpoint.clone() })?
                .map_err(|source| WorkloadError::Connect { endpoint: endpoint.clone(), source })?;
            out.push(client.kv_client());
        }
        Ok(out)
    }
}

/// Everything a client task needs besides its connection.
struct TaskContext {
    workload: Workload,
    keys: u64,
    value: Vec<u8>,
    timeout: Duration,
    measure_start: Instant,
    end: Instant,
    seed: u64,
}

async fn client_task(mut kv: KvClient, ctx: TaskContext) -> Result<TaskResult, WorkloadError> {
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let mut result = TaskResult { ops: 0, errors: 0, first_error: None, latency: LatencyRecorder::new()? };
    // Bounded: every iteration takes at most `timeout` (+ backoff), and the
    // loop stops issuing requests at `end`.
    while Instant::now() < ctx.end {
        let key = key_name(rng.random_range(0..ctx.keys));
        let started = Instant::now();
        let outcome = one_request(&mut kv, ctx.workload, key, &ctx.value, ctx.timeout).await;
        let finished = Instant::now();
        let counted = started >= ctx.measure_start && finished <= ctx.end;
        match outcome {
            Ok(()) if counted => {
                result.ops += 1;
                result.latency.record(finished - started);
            }
            Ok(()) => {}
            Err(message) => {
                if counted {
                    result.errors += 1;
                    result.first_error.get_or_insert(message);
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    Ok(result)
}

async fn one_request(
    kv: &mut KvClient,
    workload: Workload,
    key: String,
    value: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    match workload {
        Workload::Put => tokio::time::timeout(timeout, kv.put(key, value.to_vec(), None))
            .await
            .map_err(|_| format!("put timed out after {timeout:?}"))?
            .map(|_| ())
            .map_err(|e| format!("put: {e}")),
        Workload::Range => {
            let resp = tokio::time::timeout(timeout, kv.get(key.as_str(), None))
                .await
                .map_err(|_| format!("range timed out after {timeout:?}"))?
                .map_err(|e| format!("range: {e}"))?;
            if resp.kvs().is_empty() {
                return Err(format!("range: key {key} not found (preload missing?)"));
            }
            Ok(())
        }
    }
}

/// Writes keys `range` (one put, or one txn of puts), with retries.
async fn write_with_retries(
    kv: &mut KvClient,
    range: std::ops::Range<u64>,
    value: &[u8],
    timeout: Duration,
) -> Result<(), WorkloadError> {
    let mut last = String::new();
    for attempt in 1..=PRELOAD_ATTEMPTS {
        let outcome = if range.end - range.start == 1 {
            one_request(kv, Workload::Put, key_name(range.start), value, timeout).await
        } else {
            let ops: Vec<TxnOp> = range.clone().map(|n| TxnOp::put(key_name(n), value.to_vec(), None)).collect();
            match tokio::time::timeout(timeout, kv.txn(Txn::new().and_then(ops))).await {
                Err(_) => Err(format!("txn timed out after {timeout:?}")),
                Ok(Err(e)) => Err(format!("txn: {e}")),
                Ok(Ok(resp)) if !resp.succeeded() => Err("txn: not succeeded".to_string()),
                Ok(Ok(_)) => Ok(()),
            }
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(ERROR_BACKOFF * attempt).await;
    }
    Err(WorkloadError::Preload {
        keys: format!("{}..{}", key_name(range.start), key_name(range.end)),
        attempts: PRELOAD_ATTEMPTS,
        last,
    })
}

/// `/bench/<n>`.
pub fn key_name(n: u64) -> String {
    format!("/bench/{n}")
}

/// Deterministic per-task seed, distinct per (workload, clients, task).
fn seed_for(workload: Workload, clients: usize, task: usize) -> u64 {
    let w = match workload {
        Workload::Put => 1u64,
        Workload::Range => 2u64,
    };
    (w << 56) ^ ((clients as u64) << 24) ^ task as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_conn_counts(plan: &ConnectionPlan) -> Vec<usize> {
        let mut counts = vec![0; plan.connections()];
        for &c in &plan.client_conn {
            counts[c] += 1;
        }
        counts
    }

    #[test]
    fn single_client_uses_one_connection() {
        let plan = ConnectionPlan::new(1, 3, 16);
        assert_eq!(plan.conn_endpoint, vec![0]);
        assert_eq!(plan.client_conn, vec![0]);
    }

    #[test]
    fn connections_per_level() {
        for (clients, conns) in [(1, 1), (2, 2), (16, 3), (64, 6), (256, 18)] {
            let plan = ConnectionPlan::new(clients, 3, 16);
            assert_eq!(plan.connections(), conns, "clients {clients}");
            assert_eq!(plan.client_conn.len(), clients);
            let counts = per_conn_counts(&plan);
            assert!(counts.iter().all(|&c| (1..=16).contains(&c)), "{counts:?}");
        }
    }

    #[test]
    fn clients_are_spread_over_endpoints() {
        let plan = ConnectionPlan::new(64, 3, 16);
        let mut per_endpoint = [0usize; 3];
        for &c in &plan.client_conn {
            per_endpoint[plan.conn_endpoint[c]] += 1;
        }
        assert_eq!(per_endpoint, [22, 21, 21]);
        // Client j talks to endpoint j % 3.
        for (j, &c) in plan.client_conn.iter().enumerate() {
            assert_eq!(plan.conn_endpoint[c], j % 3);
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        assert_eq!(ConnectionPlan::new(0, 3, 16).connections(), 0);
        assert_eq!(ConnectionPlan::new(5, 0, 0).connections(), 5);
    }

    #[test]
    fn keys_and_seeds() {
        assert_eq!(key_name(42), "/bench/42");
        assert_ne!(seed_for(Workload::Put, 16, 3), seed_for(Workload::Range, 16, 3));
        assert_ne!(seed_for(Workload::Put, 16, 3), seed_for(Workload::Put, 64, 3));
    }

    #[test]
    fn cpu_per_op_divides_the_window_by_the_ops() {
        let mut row = LevelResult {
            workload: Workload::Put,
            clients: 1,
            connections: 1,
            ops: 4000,
            errors: 0,
            first_error: None,
            duration_secs: 1.0,
            ops_per_sec: 4000.0,
            latency: LatencySummary { count: 4000, mean_ms: 1.0, p50_ms: 1.0, p99_ms: 1.0, max_ms: 1.0 },
            server_cpu_secs: Some(0.6),
        };
        assert_eq!(row.cpu_us_per_op().map(|c| c.round()), Some(150.0));
        row.ops = 0;
        assert_eq!(row.cpu_us_per_op(), None, "no ops: no cost per op");
        row.server_cpu_secs = None;
        assert_eq!(row.cpu_us_per_op(), None);
    }
}
