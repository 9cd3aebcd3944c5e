//! `?watch=true`: a chunked stream of JSON lines (`{"type":"ADDED","object":{...}}`) from the store's
//! gap-free watch, filtered by label and field selectors, with optional initial state, bookmarks,
//! `timeoutSeconds`, and a 410 `ERROR` event when the requested revision is compacted.
//!
//! Must not depend on hyper or TLS: the stream is a channel of byte chunks.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::handlers::{include_object, wants_table, Filter, Handlers, ResourceRequest};
use super::objects;
use super::resources::ResourceDef;
use super::status::ApiError;
use super::storage::ListRead;
use super::table::{table_for, IncludeObject};
use raft_store::mvcc::model::EventKind;
use raft_store::{RequestError, StoreError};

/// The body of a watch response: chunks until the watch ends.
pub type WatchStream = futures::stream::BoxStream<'static, Bytes>;

/// How often an idle watch that allows bookmarks gets one.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

pub(super) struct Encoder {
    pub(super) def: &'static ResourceDef,
    pub(super) table: bool,
    pub(super) include: IncludeObject,
}

impl Encoder {
    pub(super) fn event(&self, kind: &str, obj: Value) -> Bytes {
        let object = if self.table && kind != "ERROR" && kind != "BOOKMARK" {
            let rv = objects::meta_str(&obj, "resourceVersion").to_string();
            table_for(self.def.group, self.def.resource, &[obj], self.include, &rv, None, chrono::Utc::now())
        } else {
            obj
        };
        let mut line = serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    pub(super) fn bookmark(&self, revision: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": revision.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        self.event("BOOKMARK", json!({ "kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta }))
    }

    fn error(&self, e: &ApiError) -> Bytes {
        self.event("ERROR", e.to_status())
    }
}

/// What a watch request asks for.
pub(super) struct WatchParams {
    pub(super) filter: Filter,
    pub(super) namespace: Option<String>,
    pub(super) bookmarks: bool,
    pub(super) send_initial: bool,
    pub(super) timeout: Duration,
    /// The `resourceVersion` parameter, as given.
    pub(super) rv: String,
    pub(super) encoder: Encoder,
}

/// Starts a watch; the returned receiver yields the response body chunks until the watch ends.
/// Served from the watch cache when it can be; from the store otherwise (a resourceVersion older
/// than the cache's history).
pub async fn start(handlers: &Handlers, req: &ResourceRequest<'_>) -> Result<WatchStream, ApiError> {
    let params = WatchParams::parse(req)?;
    let params = match super::watch_from_cache::start(handlers, params).await? {
        Ok(rx) => return Ok(rx),
        Err(params) => params,
    };
    let rx = start_from_store(handlers, params).await?;
    Ok(futures::StreamExt::boxed(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

impl WatchParams {
    fn parse(req: &ResourceRequest<'_>) -> Result<Self, ApiError> {
        let def = req.target.def;
        let params = Self {
            filter: Filter::from_query(def, req.query)?,
            namespace: req.target.namespace.clone(),
            bookmarks: req.query.bool("allowWatchBookmarks")?,
            send_initial: req.query.bool("sendInitialEvents")?,
            timeout: match req.query.int("timeoutSeconds")? {
                Some(s) if s > 0 => Duration::from_secs(s as u64),
                _ => Duration::from_secs(1800 + rand::random_range(0..1800)),
            },
            rv: req.query.get("resourceVersion").unwrap_or("").to_string(),
            encoder: Encoder { def, table: wants_table(req.accept), include: include_object(req.query)? },
        };
        if params.send_initial && req.query.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(send_initial_needs_not_older_than(def));
        }
        Ok(params)
    }

    /// Whether the watch starts with the current state (legacy empty or "0" resourceVersion, or
    /// `sendInitialEvents`).
    pub(super) fn wants_initial_state(&self) -> bool {
        self.rv.is_empty() || self.rv == "0" || self.send_initial
    }

    /// The revision after the given resourceVersion.
    pub(super) fn start_after_rv(&self) -> Result<i64, ApiError> {
        start_after_rv(&self.rv)
    }
}

fn start_after_rv(rv: &str) -> Result<i64, ApiError> {
    let n: i64 = rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
    Ok(n + 1)
}

fn send_initial_needs_not_older_than(def: &ResourceDef) -> ApiError {
    ApiError::invalid(
        def.group,
        def.kind,
        "",
        vec![super::status::Cause {
            reason: "FieldValueInvalid",
            field: "resourceVersionMatch".into(),
            message: "Invalid value: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into(),
        }],
    )
}

async fn start_from_store(handlers: &Handlers, params: WatchParams) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let WatchParams { filter, namespace: ns, bookmarks, send_initial, timeout, rv, encoder: enc } = params;
    let def = enc.def;
    // Initial state: for an empty or "0" resourceVersion (legacy semantics), or sendInitialEvents.
    let mut initial = Vec::new();
    let start_revision;
    let mut initial_end_bookmark = None;
    if rv.is_empty() || rv == "0" || send_initial {
        let read = ListRead { serializable: rv == "0", ..Default::default() };
        let page = handlers.objects.list(def, ns.as_deref(), &read, |o| filter.matches(o)).await?;
        for obj in page.items {
            initial.push(enc.event("ADDED", obj));
        }
        start_revision = page.revision + 1;
        if send_initial && bookmarks {
            initial_end_bookmark = Some(enc.bookmark(page.revision, true));
        }
    } else {
        start_revision = start_after_rv(&rv)?;
    }
    let mut watcher = handlers.objects.watch(def, ns.as_deref(), start_revision);
    let progress = watcher.progress();
    // The store watcher runs in its own task so that waiting for a bookmark tick never cancels it.
    let (btx, mut brx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            // Stop as soon as the consumer is gone, even while no events arrive.
            let batch = tokio::select! {
                _ = btx.closed() => return,
                b = watcher.next() => b,
            };
            let failed = batch.is_err();
            if btx.send(batch).await.is_err() || failed {
                return;
            }
        }
    });
    let objects = handlers.objects.clone();
    let closed = objects.store().closed();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for chunk in initial.into_iter().chain(initial_end_bookmark) {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        tokio::pin!(closed);
        let mut last_sent = start_revision - 1;
        loop {
            let next = tokio::select! {
                _ = &mut closed => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tokio::time::sleep(BOOKMARK_INTERVAL), if bookmarks => None,
                b = brx.recv() => match b {
                    Some(b) => Some(b),
                    None => return,
                },
            };
            let batch = match next {
                None => {
                    let done = progress.load(std::sync::atomic::Ordering::Acquire);
                    if done >= last_sent && tx.send(enc.bookmark(done, false)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Ok(b)) => b,
                Some(Err(StoreError::Request(RequestError::Compacted { requested, compact_revision }))) => {
                    let e = ApiError::gone(format!("too old resource version: {} ({compact_revision})", requested - 1));
                    let _ = tx.send(enc.error(&e)).await;
                    return;
                }
                Some(Err(e)) => {
                    let _ = tx.send(enc.error(&ApiError::from(e))).await;
                    return;
                }
            };
            for ev in batch.events {
                let chunk = match ev.kind {
                    EventKind::Put => {
                        let Ok(new) = objects.decode(def, &ev.kv) else { continue };
                        let was = ev.prev_kv.as_ref().and_then(|p| objects.decode(def, p).ok());
                        let now_matches = filter.matches(&new);
                        let was_matching = was.as_ref().is_some_and(|w| filter.matches(w));
                        match (was_matching, now_matches) {
                            (true, true) => enc.event("MODIFIED", new),
                            (false, true) => enc.event("ADDED", new),
                            (true, false) => enc.event("DELETED", new),
                            (false, false) => continue,
                        }
                    }
                    EventKind::Delete => {
                        let Some(prev) = ev.prev_kv.as_ref().and_then(|p| objects.decode(def, p).ok()) else {
                            continue;
                        };
                        if !filter.matches(&prev) {
                            continue;
                        }
                        let mut gone = prev;
                        super::storage::set_resource_version(&mut gone, ev.kv.mod_revision);
                        enc.event("DELETED", gone)
                    }
                };
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
            last_sent = batch.revision;
        }
    });
    Ok(rx)
}
