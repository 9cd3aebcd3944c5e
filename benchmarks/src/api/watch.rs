//! Watch delay: how long after a create's 2xx response each watcher sees the ADDED event.
//!
//! The run reads the namespace's ConfigMap resource version, opens N watches from it
//! (`?watch=1&resourceVersion=<rv>&allowWatchBookmarks=true`, one HTTP/1.1 connection each, spread
//! over the servers) and waits for all their response headers. One writer then creates ConfigMaps
//! at a modest fixed rate and notes the instant each create's response arrived; every watcher notes
//! the instant it parsed each ADDED event. All instants come from the one monotonic clock of this
//! process, so the delay is simply `received - responded`. A watcher can see an event before the
//! writer has read the response; such events count as `early` with delay 0. The delay from sending
//! the create request is reported as well (it includes the create's own latency).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde::Deserialize;
use tokio::task::JoinSet;

use super::client::{ClientError, Connector, WatchStream};
use super::objects::{collection_path, ObjectKind};
use super::report::WatchRow;
use crate::latency::{LatencyError, LatencyRecorder};

/// Watch connections dialled at once while opening the watchers.
const OPEN_CONCURRENCY: usize = 32;
/// How long watchers may lag behind the writer's last create.
const DRAIN_GRACE: Duration = Duration::from_secs(15);

/// Errors that abort a watch row.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The starting resource version could not be read.
    #[error("failed to read the configmap list's resourceVersion")]
    ResourceVersion(#[source] ClientError),
    /// A watch could not be opened.
    #[error("failed to open watcher {index} of {watchers}")]
    Open {
        /// Watcher index.
        index: usize,
        /// Total watchers.
        watchers: usize,
        /// Underlying error.
        #[source]
        source: ClientError,
    },
    /// Histogram failure.
    #[error(transparent)]
    Latency(#[from] LatencyError),
    /// A task panicked.
    #[error("a watch task failed")]
    Join(#[from] tokio::task::JoinError),
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    object: EventObject,
}

#[derive(Deserialize)]
struct EventObject {
    #[serde(default)]
    metadata: EventMeta,
}

#[derive(Default, Deserialize)]
struct EventMeta {
    #[serde(default)]
    name: String,
}

/// Set by the writer when it is done.
#[derive(Debug, Clone, Copy)]
struct Finish {
    /// Watchers give up at this instant.
    deadline: Instant,
    /// Creates that succeeded: the events each watcher should see.
    created: usize,
}

struct WatcherOutcome {
    seen: Vec<(String, Instant)>,
    error: Option<String>,
}

/// Runs one watch-delay row with `watchers` watchers and `rate` creates per second for `duration`.
pub async fn watch_delay(
    connector: &Arc<Connector>,
    namespace: &str,
    watchers: usize,
    rate: f64,
    duration: Duration,
) -> Result<WatchRow, WatchError> {
    let kind = ObjectKind::ConfigMap;
    let prefix = format!("watch-{watchers}-");
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as usize;

    let mut writer = connector.connection(0);
    let list = format!("{}?limit=1", collection_path(namespace, kind));
    let rv = writer.get_json(&list).await.map_err(WatchError::ResourceVersion)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let path = format!("{}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true", collection_path(namespace, kind));

    let streams = open_all(connector, &path, watchers).await?;
    // Watchers stop after the last expected event or at the deadline; the writer sets both when done.
    let (deadline_tx, deadline_rx) = tokio::sync::watch::channel(None::<Finish>);
    let mut tasks = JoinSet::new();
    for stream in streams {
        let (prefix, deadline) = (prefix.clone(), deadline_rx.clone());
        tasks.spawn(read_events(stream, prefix, total, deadline));
    }

    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    // Name -> (request sent, 2xx response read).
    let mut responded: HashMap<String, (Instant, Instant)> = HashMap::with_capacity(total);
    let (mut create_errors, mut first_error) = (0, None);
    for i in 0..total {
        tokio::time::sleep_until((start + interval.mul_f64(i as f64)).into()).await;
        let name = format!("{prefix}{i}");
        let sent = Instant::now();
        match writer.send(Method::POST, &collection_path(namespace, kind), kind.body(namespace, &name)).await {
            Ok(_) => {
                responded.insert(name, (sent, Instant::now()));
            }
            Err(e) => {
                create_errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    deadline_tx.send_replace(Some(Finish { deadline: Instant::now() + DRAIN_GRACE, created: responded.len() }));

    let mut delay = LatencyRecorder::new()?;
    let mut since_request = LatencyRecorder::new()?;
    let (mut received, mut early, mut broken) = (0u64, 0u64, 0u64);
    while let Some(outcome) = tasks.join_next().await {
        let outcome = outcome?;
        if let Some(e) = outcome.error {
            broken += 1;
            first_error.get_or_insert(e);
        }
        for (name, at) in outcome.seen {
            let Some((sent, answered)) = responded.get(&name) else { continue };
            received += 1;
            since_request.record(at.saturating_duration_since(*sent));
            match at.checked_duration_since(*answered) {
                Some(d) => delay.record(d),
                None => {
                    early += 1;
                    delay.record(Duration::ZERO);
                }
            }
        }
    }
    let created = responded.len() as u64;
    Ok(WatchRow {
        watchers,
        created,
        create_errors,
        expected_events: created * watchers as u64,
        received_events: received,
        broken_watchers: broken,
        early_events: early,
        delay: delay.summary(),
        since_request: since_request.summary(),
        first_error,
    })
}

async fn open_all(connector: &Arc<Connector>, path: &str, watchers: usize) -> Result<Vec<WatchStream>, WatchError> {
    let mut streams = Vec::with_capacity(watchers);
    let mut opening = JoinSet::new();
    let mut next = 0;
    while streams.len() < watchers {
        while next < watchers && opening.len() < OPEN_CONCURRENCY {
            let (connector, path, index) = (connector.clone(), path.to_string(), next);
            opening.spawn(async move { (index, WatchStream::open(&connector, index, &path).await) });
            next += 1;
        }
        if let Some(opened) = opening.join_next().await {
            let (index, result) = opened?;
            streams.push(result.map_err(|source| WatchError::Open { index, watchers, source })?);
        }
    }
    Ok(streams)
}

async fn read_events(
    mut stream: WatchStream,
    prefix: String,
    expected: usize,
    mut finish: tokio::sync::watch::Receiver<Option<Finish>>,
) -> WatcherOutcome {
    let mut out = WatcherOutcome { seen: Vec::with_capacity(expected), error: None };
    let mut expected = expected;
    loop {
        let finished = *finish.borrow_and_update();
        if let Some(f) = finished {
            expected = f.created;
            if out.seen.len() >= expected {
                return out;
            }
        }
        let line = match finished {
            None => tokio::select! {
                line = stream.next_line() => line,
                _ = finish.changed() => continue,
            },
            Some(f) => match tokio::time::timeout_at(f.deadline.into(), stream.next_line()).await {
                Ok(line) => line,
                Err(_) => {
                    out.error =
                        Some(format!("watcher saw {} of {expected} events before the deadline", out.seen.len()));
                    return out;
                }
            },
        };
        let line: Bytes = match line {
            Ok(Some(line)) => line,
            Ok(None) => {
                out.error = Some(format!("watch ended after {} of {expected} events", out.seen.len()));
                return out;
            }
            Err(e) => {
                out.error = Some(format!("watch stream failed: {e}"));
                return out;
            }
        };
        let at = Instant::now();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(event) if event.kind == "ADDED" && event.object.metadata.name.starts_with(&prefix) => {
                out.seen.push((event.object.metadata.name, at));
                if out.seen.len() >= expected {
                    return out;
                }
            }
            Ok(event) if event.kind == "ERROR" => {
                out.error = Some(format!("watch error event: {}", String::from_utf8_lossy(&line)));
                return out;
            }
            Ok(_) => {}
            Err(e) => {
                out.error = Some(format!("undecodable watch event ({e}): {}", String::from_utf8_lossy(&line)));
                return out;
            }
        }
    }
}
