//! The watch hub: the single point where applied revisions are announced to watchers on this replica.
//!
//! The state machine writes a revision to RocksDB first and publishes it here second, under the hub's
//! lock; a watcher subscribes under the same lock and learns the last published revision at that
//! instant. So everything up to that revision can be read from RocksDB and everything after it arrives
//! on the channel: no gaps, no duplicates. When a snapshot replaces the state, the hub tells every
//! watcher to re-check from storage (`Reset`).

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::mvcc::model::RevisionEvents;

/// How many revisions a slow watcher may fall behind before it falls back to reading history from disk.
const CHANNEL_CAPACITY: usize = 4096;

#[derive(Clone, Debug)]
pub enum HubMessage {
    Revision(Arc<RevisionEvents>),
    /// The state was replaced by a snapshot: continue from storage or fail as compacted.
    Reset,
}

#[derive(Debug)]
struct HubState {
    revision: i64,
}

#[derive(Debug)]
pub struct WatchHub {
    state: Mutex<HubState>,
    tx: broadcast::Sender<HubMessage>,
}

impl WatchHub {
    pub fn new(revision: i64) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { state: Mutex::new(HubState { revision }), tx }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last revision published (every event up to it is readable from storage).
    pub fn revision(&self) -> i64 {
        self.lock().revision
    }

    /// Announces a revision that is already written to storage.
    pub fn publish(&self, events: RevisionEvents) {
        let mut st = self.lock();
        st.revision = events.revision;
        let _ = self.tx.send(HubMessage::Revision(Arc::new(events)));
    }

    /// The state machine was replaced by a snapshot at `revision`.
    pub fn reset(&self, revision: i64) {
        let mut st = self.lock();
        st.revision = revision;
        let _ = self.tx.send(HubMessage::Reset);
    }

    /// Subscribes to revisions after the returned one.
    pub fn subscribe(&self) -> (i64, broadcast::Receiver<HubMessage>) {
        let st = self.lock();
        (st.revision, self.tx.subscribe())
    }
}
