//! Request-rate workloads: closed-loop creates and gets, and open-loop creates at a steady rate.
//!
//! Closed loop: each of N clients owns one keep-alive connection (dialled before the row starts)
//! and sends its next request when the previous one returned. A row runs `warmup + duration`; only
//! requests that start after the warm-up count. Throughput counts those that also finish before the
//! end; the latency histogram also takes the ones that finish late, so a stall at the end of a row
//! shows up as latency instead of vanishing. Non-2xx answers and timeouts are errors (a short pause
//! follows each, so a failing server does not spin the CPU).
//!
//! Open loop: request `i` is due at `start + i / rate` whatever happened before, and its latency is
//! measured from that due time, so server stalls show up as latency instead of silently lowering the
//! offered load (no coordinated omission). Requests run on a pool of connections that grows when
//! all are busy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use rand::Rng as _;
use tokio::task::JoinSet;

use super::client::{ApiConnection, ClientError, Connector};
use super::objects::{collection_path, object_path, ObjectKind};
use super::report::RequestRow;
use crate::latency::{LatencyError, LatencyRecorder};

/// Pause after a failed request.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// Connections dialled before the open-loop row starts.
const OPEN_LOOP_INITIAL_CONNECTIONS: usize = 16;

/// Errors that abort a row.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A client could not connect before the row started.
    #[error("failed to open the connections of a {clients}-client row")]
    Connect {
        /// Row size.
        clients: usize,
        /// Underlying error.
        #[source]
        source: ClientError,
    },
    /// Histogram failure.
    #[error(transparent)]
    Latency(#[from] LatencyError),
    /// A client task panicked.
    #[error("a load client task failed")]
    Join(#[from] tokio::task::JoinError),
    /// Nothing to read for a get row.
    #[error("no existing objects to get")]
    NothingToGet,
}

/// What each request of a row does.
#[derive(Debug, Clone)]
pub enum Operation {
    /// POST a new object named `<prefix>-<client>-<seq>`.
    Create {
        /// Kind created.
        kind: ObjectKind,
        /// Name prefix, unique per row.
        prefix: String,
    },
    /// GET a uniformly random one of these objects.
    Get {
        /// Kind read.
        kind: ObjectKind,
        /// Existing object names.
        names: Arc<Vec<String>>,
    },
}

impl Operation {
    fn request(&self, namespace: &str, client: usize, seq: u64) -> (Method, String, Bytes, Option<String>) {
        match self {
            Self::Create { kind, prefix } => {
                let name = format!("{prefix}-{client}-{seq}");
                (Method::POST, collection_path(namespace, *kind), kind.body(namespace, &name), Some(name))
            }
            Self::Get { kind, names } => {
                let name = &names[rand::rng().random_range(0..names.len())];
                (Method::GET, object_path(namespace, *kind, name), Bytes::new(), None)
            }
        }
    }
}

/// A closed-loop row's result plus the names it created (for later gets).
#[derive(Debug)]
pub struct ClosedLoopOutcome {
    /// The row.
    pub row: RequestRow,
    /// Objects created (all successful creates, warm-up included).
    pub created: Vec<String>,
}

struct ClientOutcome {
    latency: LatencyRecorder,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    created: Vec<String>,
}

/// Runs `clients` closed-loop clients of `operation` in `namespace`.
pub async fn closed_loop(
    connector: &Arc<Connector>,
    namespace: &str,
    label: &str,
    operation: &Operation,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<ClosedLoopOutcome, LoadError> {
    if let Operation::Get { names, .. } = operation {
        if names.is_empty() {
            return Err(LoadError::NothingToGet);
        }
    }
    let mut connections = Vec::with_capacity(clients);
    let mut dials = JoinSet::new();
    for client in 0..clients {
        let mut conn = connector.connection(client);
        dials.spawn(async move { conn.connect().await.map(|()| (client, conn)) });
    }
    while let Some(dialled) = dials.join_next().await {
        connections.push(dialled?.map_err(|source| LoadError::Connect { clients, source })?);
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = JoinSet::new();
    for (client, conn) in connections {
        let (operation, namespace) = (operation.clone(), namespace.to_string());
        tasks.spawn(async move { run_client(conn, &operation, &namespace, client, measure_from, end).await });
    }
    let mut latency = LatencyRecorder::new()?;
    let (mut ops, mut errors, mut first_error, mut created) = (0, 0, None, Vec::new());
    while let Some(outcome) = tasks.join_next().await {
        let outcome = outcome??;
        latency.merge(&outcome.latency)?;
        ops += outcome.ops;
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
        created.extend(outcome.created);
    }
    Ok(ClosedLoopOutcome { row: row(label, Some(clients), &latency, ops, errors, first_error, duration), created })
}

async fn run_client(
    mut conn: ApiConnection,
    operation: &Operation,
    namespace: &str,
    client: usize,
    measure_from: Instant,
    end: Instant,
) -> Result<ClientOutcome, LoadError> {
    let mut out =
        ClientOutcome { latency: LatencyRecorder::new()?, ops: 0, errors: 0, first_error: None, created: Vec::new() };
    for seq in 0.. {
        let started = Instant::now();
        if started >= end {
            break;
        }
        let (method, path, body, name) = operation.request(namespace, client, seq);
        let result = conn.send(method, &path, body).await;
        let done = Instant::now();
        let measured = started >= measure_from;
        match result {
            Ok(_) => {
                out.created.extend(name);
                if measured {
                    out.latency.record(done - started);
                    out.ops += u64::from(done <= end);
                }
            }
            Err(e) => {
                if measured {
                    out.errors += 1;
                    out.first_error.get_or_insert_with(|| e.to_string());
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    Ok(out)
}

/// Creates `kind` objects at `rate` per second for `duration`, open loop.
pub async fn open_loop_creates(
    connector: &Arc<Connector>,
    namespace: &str,
    label: &str,
    kind: ObjectKind,
    rate: f64,
    duration: Duration,
) -> Result<RequestRow, LoadError> {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let pool: Arc<Mutex<Vec<ApiConnection>>> = Arc::new(Mutex::new(Vec::new()));
    for i in 0..OPEN_LOOP_INITIAL_CONNECTIONS {
        let mut conn = connector.connection(i);
        conn.connect().await.map_err(|source| LoadError::Connect { clients: OPEN_LOOP_INITIAL_CONNECTIONS, source })?;
        lock(&pool).push(conn);
    }
    let mut dialled = OPEN_LOOP_INITIAL_CONNECTIONS;
    let start = Instant::now() + Duration::from_millis(10);
    let mut tasks = JoinSet::new();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let conn = lock(&pool).pop();
        let conn = conn.unwrap_or_else(|| {
            dialled += 1;
            connector.connection(dialled)
        });
        let (pool, namespace) = (pool.clone(), namespace.to_string());
        tasks.spawn(async move {
            let mut conn = conn;
            let name = format!("steady-{i}");
            let result =
                conn.send(Method::POST, &collection_path(&namespace, kind), kind.body(&namespace, &name)).await;
            let latency = due.elapsed();
            lock(&pool).push(conn);
            result.map(|_| latency)
        });
    }
    let mut latency = LatencyRecorder::new()?;
    let (mut errors, mut first_error) = (0, None);
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok(l) => latency.record(l),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    Ok(row(label, None, &latency, latency.count(), errors, first_error, duration))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking task cannot leave a connection list half-updated: recover the guard.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Builds a row from a merged histogram and the `ops` completed within `duration`.
pub fn row(
    label: &str,
    clients: Option<usize>,
    latency: &LatencyRecorder,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    duration: Duration,
) -> RequestRow {
    let secs = duration.as_secs_f64();
    RequestRow {
        workload: label.to_string(),
        clients,
        ops,
        errors,
        first_error,
        duration_secs: secs,
        ops_per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        latency: latency.summary(),
    }
}
