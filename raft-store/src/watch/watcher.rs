//! One watch: events of a key range from a start revision, in revision order, each revision exactly
//! once. It reads retained history from storage until it reaches the hub's live edge, then follows the
//! hub; if it falls behind the live channel (or the state is replaced by a snapshot) it goes back to
//! storage from where it stopped. A start revision below the compact revision fails with `Compacted`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rocksdb::DB;
use tokio::sync::broadcast;

use super::hub::{HubMessage, WatchHub};
use crate::error::{RequestError, StoreError};
use crate::mvcc::model::{Event, EventKind, KeyRange};
use crate::mvcc::reader::ReadView;

/// Revisions read from storage per catch-up step, so a far-behind watcher never loads all history.
const CATCH_UP_REVISIONS: usize = 512;

/// What to watch.
#[derive(Clone, Debug, Default)]
pub struct WatchSpec {
    pub range: KeyRange,
    /// First revision to deliver; 0 means "from now on".
    pub start_revision: i64,
    pub prev_kv: bool,
    pub filter_put: bool,
    pub filter_delete: bool,
}

/// Events of one or more consecutive revisions.
#[derive(Clone, Debug)]
pub struct WatchBatch {
    pub events: Vec<Event>,
    /// Every revision up to this one has been delivered.
    pub revision: i64,
}

pub struct Watcher {
    db: Arc<DB>,
    hub: Arc<WatchHub>,
    spec: WatchSpec,
    next_rev: i64,
    rx: Option<broadcast::Receiver<HubMessage>>,
    /// Live edge at subscription time: storage holds every revision up to it.
    edge: i64,
    /// `next_rev - 1`, readable while `next` is pending (for progress notifications).
    progress: Arc<AtomicI64>,
    /// Return empty batches when revisions pass without matching events.
    empty_batches: bool,
}

impl Watcher {
    pub fn new(db: Arc<DB>, hub: Arc<WatchHub>, spec: WatchSpec) -> Self {
        // "From now on" starts after every revision a client of this replica may already have been
        // told of, even one not applied here yet (see `WatchHub::fence`).
        let next_rev = if spec.start_revision > 0 { spec.start_revision } else { hub.fence() + 1 };
        let progress = Arc::new(AtomicI64::new(next_rev - 1));
        Self { db, hub, spec, next_rev, rx: None, edge: 0, progress, empty_batches: false }
    }

    /// Makes `next` also return (empty) batches for revisions without matching events, so a consumer
    /// such as a cache learns promptly how far it is current.
    pub fn with_empty_batches(mut self) -> Self {
        self.empty_batches = true;
        self
    }

    /// Shared view of the last revision this watcher has fully delivered.
    pub fn progress(&self) -> Arc<AtomicI64> {
        self.progress.clone()
    }

    fn advance(&mut self, next_rev: i64) {
        self.next_rev = next_rev;
        self.progress.store(next_rev - 1, Ordering::Release);
    }

    /// Every revision below this one has been delivered (or had no matching events).
    pub fn next_revision(&self) -> i64 {
        self.next_rev
    }

    fn keep(&self, e: &Event) -> bool {
        self.spec.range.contains(&e.kv.key)
            && !(self.spec.filter_put && e.kind == EventKind::Put)
            && !(self.spec.filter_delete && e.kind == EventKind::Delete)
    }

    fn shape(&self, mut e: Event) -> Event {
        if !self.spec.prev_kv {
            e.prev_kv = None;
        }
        e
    }

    /// Waits for the next revisions with matching events.
    pub async fn next(&mut self) -> Result<WatchBatch, StoreError> {
        loop {
            let Some(rx) = self.rx.as_mut() else {
                let (edge, rx) = self.hub.subscribe();
                self.edge = edge;
                self.rx = Some(rx);
                continue;
            };
            if self.next_rev <= self.edge {
                if let Some(batch) = self.catch_up().await? {
                    return Ok(batch);
                }
                continue;
            }
            match rx.recv().await {
                Ok(HubMessage::Revision(rev)) => {
                    if rev.revision < self.next_rev {
                        continue;
                    }
                    if rev.revision > self.next_rev {
                        // Missed something (a reset raced us): read it from storage.
                        self.rx = None;
                        continue;
                    }
                    self.advance(rev.revision + 1);
                    let events: Vec<Event> =
                        rev.events.iter().filter(|e| self.keep(e)).cloned().map(|e| self.shape(e)).collect();
                    if !events.is_empty() || self.empty_batches {
                        return Ok(WatchBatch { events, revision: rev.revision });
                    }
                }
                Ok(HubMessage::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => self.rx = None,
                Err(broadcast::error::RecvError::Closed) => return Err(StoreError::ShuttingDown),
            }
        }
    }

    /// Reads the next chunk of history from storage, up to the live edge.
    async fn catch_up(&mut self) -> Result<Option<WatchBatch>, StoreError> {
        let db = self.db.clone();
        let range = self.spec.range.clone();
        let (from, to, prev) = (self.next_rev, self.edge, self.spec.prev_kv);
        let (last, events) = tokio::task::spawn_blocking(move || -> Result<(i64, Vec<Event>), StoreError> {
            let snap = db.snapshot();
            let view = ReadView::at_snapshot(&db, &snap);
            let compact = view.compact_revision()?;
            if from < compact {
                return Err(RequestError::Compacted { requested: from, compact_revision: compact }.into());
            }
            let mut events = Vec::new();
            let last = view.history(&range, from, to, prev, CATCH_UP_REVISIONS, |_, e| events.push(e))?;
            Ok((last, events))
        })
        .await
        .map_err(|e| StoreError::Raft(format!("watch catch-up task failed: {e}")))??;
        self.advance(last + 1);
        let events: Vec<Event> = events.into_iter().filter(|e| self.keep(e)).map(|e| self.shape(e)).collect();
        if events.is_empty() && !self.empty_batches {
            return Ok(None);
        }
        Ok(Some(WatchBatch { events, revision: last }))
    }
}
