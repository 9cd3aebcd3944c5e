//! Watches served from the watch cache: the initial state from a cache snapshot, resumes from the
//! cache's recent history, and live events from its broadcast. Each event's JSON was serialized once
//! by the cache; a watcher only wraps it (or re-types it when its selectors see a move in or out).
//!
//! Must not depend on hyper or TLS.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::cache::{watch_line, CachedEvent, CachedObject, ResourceCache};
use super::handlers::{Filter, Handlers};
use super::status::ApiError;
use super::watch::{Encoder, WatchParams, WatchStream, BOOKMARK_INTERVAL};

/// How long a watch waits for the cache to reach a requested or consistent revision.
const CACHE_WAIT: Duration = Duration::from_secs(3);

/// Starts a watch from the cache, or hands the parameters back when the cache cannot serve it (its
/// history does not reach back to the requested resourceVersion).
pub(super) async fn start(
    handlers: &Handlers,
    params: WatchParams,
) -> Result<Result<WatchStream, WatchParams>, ApiError> {
    let def = params.encoder.def;
    let cache = match handlers.objects.cache(def).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(resource = %def.qualified(), error = %e.message, "watch cache unavailable");
            return Ok(Err(params));
        }
    };
    let mut initial = Vec::new();
    let (sub, start_revision) = if params.wants_initial_state() {
        if params.rv.is_empty() {
            let target = handlers.objects.consistent_revision().await?;
            cache.wait_for(target, CACHE_WAIT).await?;
        } else if params.rv != "0" {
            cache.wait_for(params.start_after_rv()? - 1, CACHE_WAIT).await?;
        }
        let sub = cache.snapshot_and_subscribe(params.namespace.as_deref());
        for obj in &sub.objects {
            if params.filter.matches(&obj.selectable) {
                initial.push(object_line(&params.encoder, "ADDED", obj)?);
            }
        }
        if params.send_initial && params.bookmarks {
            initial.push(params.encoder.bookmark(sub.revision, true));
        }
        let start = sub.revision + 1;
        (sub, start)
    } else {
        let start = params.start_after_rv()?;
        match cache.subscribe_from(start) {
            Some(sub) => (sub, start),
            None => return Ok(Err(params)),
        }
    };
    let stream = CacheWatch {
        cache,
        filter: params.filter,
        encoder: params.encoder,
        prefix: namespace_prefix(def, params.namespace.as_deref()),
        initial: initial.into(),
        history: sub.history.into(),
        events: sub.events,
        last_sent: start_revision - 1,
        start_revision,
        bookmarks: params.bookmarks,
        ticker: tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL),
        deadline: tokio::time::Instant::now() + params.timeout,
        closed: Box::pin(handlers.objects.store().closed()),
    };
    // The response body pulls straight from the cache's broadcast: no task or channel per watcher
    // between the event and the connection's write.
    Ok(Ok(futures::stream::unfold(stream, |mut s| async move { s.next_chunk().await.map(|b| (b, s)) }).boxed()))
}

fn namespace_prefix(def: &super::resources::ResourceDef, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if def.namespaced => def.namespace_prefix(ns),
        _ => def.key_prefix(),
    }
}

fn object_line(encoder: &Encoder, event_type: &str, obj: &CachedObject) -> Result<Bytes, ApiError> {
    if encoder.table {
        Ok(encoder.event(event_type, obj.value()?))
    } else {
        Ok(watch_line(event_type, &obj.json))
    }
}

struct CacheWatch {
    cache: Arc<ResourceCache>,
    filter: Filter,
    encoder: Encoder,
    /// Key prefix of the watched namespace (or the whole resource).
    prefix: String,
    /// Initial-state lines still to send.
    initial: VecDeque<Bytes>,
    /// Past events still to replay before the live ones.
    history: VecDeque<Arc<CachedEvent>>,
    events: broadcast::Receiver<Arc<CachedEvent>>,
    last_sent: i64,
    start_revision: i64,
    bookmarks: bool,
    ticker: tokio::time::Interval,
    deadline: tokio::time::Instant,
    closed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl CacheWatch {
    /// The next chunk of the response body; `None` ends the watch.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(line) = self.initial.pop_front() {
            return Some(line);
        }
        loop {
            let event = match self.history.pop_front() {
                Some(e) => e,
                None => tokio::select! {
                    _ = &mut self.closed => return None,
                    _ = tokio::time::sleep_until(self.deadline) => return None,
                    _ = self.ticker.tick(), if self.bookmarks => {
                        // Everything up to the cache's revision was published before we read it, so
                        // an empty queue means this watcher has seen all of it.
                        let revision = self.cache.revision();
                        if self.events.is_empty() && revision >= self.last_sent {
                            self.last_sent = revision;
                            return Some(self.encoder.bookmark(revision, false));
                        }
                        continue;
                    }
                    received = self.events.recv() => match received {
                        Ok(e) => e,
                        // Fell too far behind, or the cache was rebuilt: the client resumes from
                        // the last resourceVersion it saw.
                        Err(_) => return None,
                    },
                },
            };
            if event.revision < self.start_revision || !event.object.key.starts_with(&self.prefix) {
                continue;
            }
            if let Some(line) = self.line(&event) {
                self.last_sent = event.revision;
                return Some(line);
            }
        }
    }

    fn line(&self, event: &CachedEvent) -> Option<Bytes> {
        let (event_type, natural) = event.for_selection(|v| self.filter.matches(v))?;
        if self.encoder.table {
            return object_line(&self.encoder, event_type.as_str(), &event.object).ok();
        }
        if event_type == event.event_type {
            Some(natural.clone())
        } else {
            Some(watch_line(event_type.as_str(), &event.object.json))
        }
    }
}
