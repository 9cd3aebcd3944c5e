//! LIST workloads: preload a namespace with pods, then time full and paged LISTs of it.
//!
//! The preload grows the namespace to each size in turn (`pod-0` .. `pod-<n-1>`) with concurrent
//! writers; a create answered `409 AlreadyExists` after a retry counts as done. Each LIST row is
//! sampled back to back by one client for `duration` (at least [`MIN_SAMPLES`] samples). The latency
//! of a full LIST is the time to its last byte; the first answer's item count is checked. The paged
//! traversal follows `metadata.continue` with `limit=<page>` until the end and checks the total;
//! both the whole traversal and every single page are reported.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::task::JoinSet;

use super::client::{ApiConnection, ClientError, Connector};
use super::load::row;
use super::objects::{collection_path, ObjectKind};
use super::report::RequestRow;
use crate::latency::{LatencyError, LatencyRecorder};

/// Fewest samples per LIST row, however long they take.
pub const MIN_SAMPLES: usize = 5;
/// Attempts per preload create.
const PRELOAD_ATTEMPTS: u32 = 5;

/// Errors of the LIST workloads.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A preload create failed for good.
    #[error("preloading pod {name} failed")]
    Preload {
        /// Pod name.
        name: String,
        /// Last failure.
        #[source]
        source: ClientError,
    },
    /// A LIST failed.
    #[error("list of {size} pods failed")]
    List {
        /// Expected item count.
        size: usize,
        /// Underlying error.
        #[source]
        source: ClientError,
    },
    /// A LIST answer is not the JSON list expected.
    #[error("list of {size} pods: {reason}")]
    BadAnswer {
        /// Expected item count.
        size: usize,
        /// What is wrong.
        reason: String,
    },
    /// Histogram failure.
    #[error(transparent)]
    Latency(#[from] LatencyError),
    /// A preload task panicked.
    #[error("a preload task failed")]
    Join(#[from] tokio::task::JoinError),
}

/// Creates `pod-<from>` .. `pod-<to-1>` in `namespace` with `writers` concurrent clients.
pub async fn preload_pods(
    connector: &Arc<Connector>,
    namespace: &str,
    from: usize,
    to: usize,
    writers: usize,
) -> Result<Duration, ListError> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(from));
    let mut tasks: JoinSet<Result<(), ListError>> = JoinSet::new();
    for w in 0..writers.clamp(1, to.saturating_sub(from).max(1)) {
        let (mut conn, next, namespace) = (connector.connection(w), next.clone(), namespace.to_string());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return Ok(());
                }
                create_with_retries(&mut conn, &namespace, &format!("pod-{i}")).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

async fn create_with_retries(conn: &mut ApiConnection, namespace: &str, name: &str) -> Result<(), ListError> {
    let kind = ObjectKind::Pod;
    let mut attempt = 1;
    loop {
        match conn.send(Method::POST, &collection_path(namespace, kind), kind.body(namespace, name)).await {
            Ok(_) => return Ok(()),
            // An earlier attempt that timed out may have been applied after all.
            Err(e) if attempt > 1 && e.status() == Some(StatusCode::CONFLICT) => return Ok(()),
            Err(source) if attempt >= PRELOAD_ATTEMPTS => {
                return Err(ListError::Preload { name: name.to_string(), source })
            }
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Full LISTs of a namespace holding `size` pods, sampled for `duration`.
pub async fn full_list(
    connector: &Arc<Connector>,
    namespace: &str,
    size: usize,
    duration: Duration,
) -> Result<RequestRow, ListError> {
    let mut conn = connector.connection(0);
    let path = collection_path(namespace, ObjectKind::Pod);
    let mut latency = LatencyRecorder::new()?;
    let started = Instant::now();
    while latency.count() < MIN_SAMPLES as u64 || started.elapsed() < duration {
        let t = Instant::now();
        let body =
            conn.send(Method::GET, &path, Bytes::new()).await.map_err(|source| ListError::List { size, source })?;
        latency.record(t.elapsed());
        if latency.count() == 1 {
            let (items, _) = parse_page(&body, size)?;
            if items != size {
                return Err(ListError::BadAnswer { size, reason: format!("answer has {items} items") });
            }
        }
    }
    let elapsed = started.elapsed();
    Ok(row(&format!("list {size} pods (full)"), Some(1), &latency, latency.count(), 0, None, elapsed))
}

/// Paged LIST traversals (`limit=page`); returns the whole-traversal row and the per-page row.
pub async fn paged_list(
    connector: &Arc<Connector>,
    namespace: &str,
    size: usize,
    page: usize,
    duration: Duration,
) -> Result<(RequestRow, RequestRow), ListError> {
    let mut conn = connector.connection(0);
    let base = collection_path(namespace, ObjectKind::Pod);
    let mut traversals = LatencyRecorder::new()?;
    let mut pages = LatencyRecorder::new()?;
    let started = Instant::now();
    while traversals.count() < MIN_SAMPLES as u64 || started.elapsed() < duration {
        let t = Instant::now();
        let (mut total, mut token) = (0, String::new());
        loop {
            let mut path = format!("{base}?limit={page}");
            if !token.is_empty() {
                path.push_str("&continue=");
                path.push_str(&percent_encode(&token));
            }
            let p = Instant::now();
            let body =
                conn.send(Method::GET, &path, Bytes::new()).await.map_err(|source| ListError::List { size, source })?;
            pages.record(p.elapsed());
            let (items, next) = parse_page(&body, size)?;
            total += items;
            if next.is_empty() {
                break;
            }
            token = next;
        }
        traversals.record(t.elapsed());
        if total != size {
            return Err(ListError::BadAnswer { size, reason: format!("pages hold {total} items in all") });
        }
    }
    let elapsed = started.elapsed();
    Ok((
        row(
            &format!("list {size} pods (limit={page}, all pages)"),
            Some(1),
            &traversals,
            traversals.count(),
            0,
            None,
            elapsed,
        ),
        row(&format!("list {size} pods (limit={page}, per page)"), Some(1), &pages, pages.count(), 0, None, elapsed),
    ))
}

/// Item count and `metadata.continue` of a list answer.
fn parse_page(body: &[u8], size: usize) -> Result<(usize, String), ListError> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(default, rename = "continue")]
        continue_token: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Page {
        metadata: Meta,
        items: Vec<serde::de::IgnoredAny>,
    }
    let page: Page = serde_json::from_slice(body)
        .map_err(|e| ListError::BadAnswer { size, reason: format!("answer is not a list: {e}") })?;
    Ok((page.items.len(), page.metadata.continue_token.unwrap_or_default()))
}

/// Percent-encodes a query value (continue tokens are base64 and may hold `+`, `/`, `=`).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_tokens() -> Result<(), ListError> {
        let body = br#"{"kind":"PodList","metadata":{"continue":"eyJ2Ijo1fQ=="},"items":[{"a":1},{"b":[2]}]}"#;
        assert_eq!(parse_page(body, 2)?, (2, "eyJ2Ijo1fQ==".into()));
        assert_eq!(parse_page(br#"{"metadata":{},"items":[]}"#, 0)?, (0, String::new()));
        assert!(parse_page(b"[]", 0).is_err());
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        Ok(())
    }
}
