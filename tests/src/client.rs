//! Bounded etcd-v3 client helpers shared by the end-to-end tests.
//!
//! This module owns [`ClientError`] and the helpers that put a deadline on every
//! client interaction: connecting to one endpoint, running one request, and
//! collecting the watch events of a prefix across replica failures.

use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, EventType, WatchOptions};

/// Errors of bounded client calls.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The store answered with an error.
    #[error("{what} failed")]
    Etcd {
        /// The request.
        what: String,
        /// Cause.
        #[source]
        source: etcd_client::Error,
    },
    /// The store did not answer in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The request.
        what: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// A watch was cancelled by the server.
    #[error("watch on {prefix:?} cancelled by the server (compact revision {compact_revision}): {reason}")]
    WatchCancelled {
        /// Watched prefix.
        prefix: String,
        /// Compact revision reported, if any.
        compact_revision: i64,
        /// Server-given reason.
        reason: String,
    },
    /// Collecting watch events did not reach the target revision in time.
    #[error(
        "watch on {prefix:?} reached revision {reached} of {target} before the deadline; last error: {last_error}"
    )]
    WatchIncomplete {
        /// Watched prefix.
        prefix: String,
        /// Highest revision seen.
        reached: i64,
        /// Revision that was awaited.
        target: i64,
        /// Last error that forced a reconnect.
        last_error: String,
    },
}

impl ClientError {
    /// The gRPC status behind this error, if the server answered with one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Etcd { source: etcd_client::Error::GRpcStatus(status), .. } => Some(status),
            _ => None,
        }
    }
}

/// Runs `fut` with a deadline, naming the request `what` in errors.
pub async fn bounded<T>(
    what: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ClientError::Etcd { what: what.to_string(), source }),
        Err(_) => Err(ClientError::Timeout { what: what.to_string(), after: timeout }),
    }
}

/// Connects to exactly one endpoint, bounding the connection attempt by
/// `timeout`. Requests carry no deadline of their own: wrap them in
/// [`bounded`]. Requests are marked "require leader", as etcd's clients do.
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Client, ClientError> {
    let options = ConnectOptions::new().with_connect_timeout(timeout).with_require_leader(true);
    bounded(&format!("connect to {endpoint}"), timeout, Client::connect([endpoint], Some(options))).await
}

/// One event seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    /// Modification revision of the event.
    pub revision: i64,
    /// Key, lossily decoded as UTF-8.
    pub key: String,
    /// Value (empty for deletes), lossily decoded as UTF-8.
    pub value: String,
    /// True for a delete.
    pub is_delete: bool,
}

/// Watches `prefix` from `start_revision` until an event at revision
/// `>= until_revision` arrives, reconnecting round-robin over `endpoints`
/// (resuming at last seen + 1) whenever a stream fails or stays silent for
/// `idle`. Fails if `deadline` passes first.
pub async fn collect_events(
    endpoints: &[String],
    prefix: &str,
    start_revision: i64,
    until_revision: i64,
    idle: Duration,
    deadline: Duration,
) -> Result<Vec<WatchedEvent>, ClientError> {
    let started = Instant::now();
    let mut events: Vec<WatchedEvent> = Vec::new();
    let mut next = start_revision;
    let mut last_error = String::from("none");
    let mut attempt = 0usize;
    while started.elapsed() < deadline {
        let endpoint = &endpoints[attempt % endpoints.len()];
        attempt += 1;
        let result = watch_once(
            endpoint,
            prefix,
            next,
            until_revision,
            idle,
            deadline.saturating_sub(started.elapsed()),
            &mut events,
        )
        .await;
        if let Some(last) = events.last() {
            next = last.revision + 1;
        }
        match result {
            Ok(()) => return Ok(events),
            Err(e @ ClientError::WatchCancelled { .. }) if e.is_compaction() => return Err(e),
            Err(e) => last_error = format!("{endpoint}: {e}"),
        }
        if events.last().is_some_and(|e| e.revision >= until_revision) {
            return Ok(events);
        }
    }
    Err(ClientError::WatchIncomplete {
        prefix: prefix.to_string(),
        reached: events.last().map_or(0, |e| e.revision),
        target: until_revision,
        last_error,
    })
}

impl ClientError {
    fn is_compaction(&self) -> bool {
        matches!(self, ClientError::WatchCancelled { compact_revision, .. } if *compact_revision > 0)
    }
}

async fn watch_once(
    endpoint: &str,
    prefix: &str,
    from: i64,
    until: i64,
    idle: Duration,
    remaining: Duration,
    out: &mut Vec<WatchedEvent>,
) -> Result<(), ClientError> {
    let step = idle.min(remaining).max(Duration::from_millis(10));
    let mut client = connect(endpoint, step).await?;
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let mut stream =
        bounded(&format!("watch {prefix:?} from {from}"), step, client.watch(prefix, Some(options))).await?;
    let started = Instant::now();
    while started.elapsed() < remaining {
        let msg = bounded("watch message", step, stream.message()).await?;
        let Some(resp) = msg else {
            return Err(ClientError::Etcd {
                what: "watch stream".to_string(),
                source: etcd_client::Error::WatchError("stream ended".to_string()),
            });
        };
        if resp.canceled() {
            return Err(ClientError::WatchCancelled {
                prefix: prefix.to_string(),
                compact_revision: resp.compact_revision(),
                reason: resp.cancel_reason().to_string(),
            });
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            out.push(WatchedEvent {
                revision: kv.mod_revision(),
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: String::from_utf8_lossy(kv.value()).into_owned(),
                is_delete: ev.event_type() == EventType::Delete,
            });
        }
        if out.last().is_some_and(|e| e.revision >= until) {
            return Ok(());
        }
    }
    Err(ClientError::Timeout { what: format!("watch {prefix:?} up to revision {until}"), after: remaining })
}
