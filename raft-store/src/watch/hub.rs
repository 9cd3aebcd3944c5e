//! The watch hub: the single point where applied revisions are announced to watchers on this replica.
//!
//! The state machine writes a revision to RocksDB first and publishes it here second, under the hub's
//! lock; a watcher subscribes under the same lock and learns the last published revision at that
//! instant. So everything up to that revision can be read from RocksDB and everything after it arrives
//! on the channel: no gaps, no duplicates. When a snapshot replaces the state, the hub tells every
//! watcher to re-check from storage (`Reset`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, oneshot};

use crate::mvcc::model::RevisionEvents;

/// How many revisions a slow watcher may fall behind before it falls back to reading history from disk.
const CHANNEL_CAPACITY: usize = 4096;
/// Revisions with waiters beyond which a new wait first drops the waiters that gave up.
const PRUNE_WAITERS_AT: usize = 1024;

#[derive(Clone, Debug)]
pub enum HubMessage {
    Revision(Arc<RevisionEvents>),
    /// The state was replaced by a snapshot: continue from storage or fail as compacted.
    Reset,
}

#[derive(Debug)]
struct HubState {
    revision: i64,
    /// The highest revision acknowledged to a client of this replica before it was applied here
    /// (`WriteAck::Leader`). Reads and new watches of this replica's clients do not start below it.
    acknowledged: i64,
    /// Callers waiting for a revision to be applied here, by that revision. Each is woken once,
    /// when it is reached; a broadcast subscription would wake every waiter on every revision.
    waiters: BTreeMap<i64, Vec<oneshot::Sender<()>>>,
}

impl HubState {
    fn advance(&mut self, revision: i64) {
        self.revision = revision;
        if self.waiters.first_key_value().is_some_and(|(&first, _)| first <= revision) {
            let later = self.waiters.split_off(&(revision + 1));
            for waiter in std::mem::replace(&mut self.waiters, later).into_values().flatten() {
                let _ = waiter.send(());
            }
        }
    }
}

#[derive(Debug)]
pub struct WatchHub {
    state: Mutex<HubState>,
    tx: broadcast::Sender<HubMessage>,
}

impl WatchHub {
    pub fn new(revision: i64) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { state: Mutex::new(HubState { revision, acknowledged: 0, waiters: BTreeMap::new() }), tx }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last revision published (every event up to it is readable from storage).
    pub fn revision(&self) -> i64 {
        self.lock().revision
    }

    /// The revision a client of this replica must at least see: the last published one, or a later
    /// one already acknowledged to a client (`acknowledge`).
    pub fn fence(&self) -> i64 {
        let st = self.lock();
        st.revision.max(st.acknowledged)
    }

    /// Records that `revision` was acknowledged to a client of this replica before being applied
    /// here: `fence` does not go below it from now on.
    pub fn acknowledge(&self, revision: i64) {
        let mut st = self.lock();
        st.acknowledged = st.acknowledged.max(revision);
    }

    /// Announces a revision that is already written to storage.
    pub fn publish(&self, events: RevisionEvents) {
        let mut st = self.lock();
        st.advance(events.revision);
        let _ = self.tx.send(HubMessage::Revision(Arc::new(events)));
    }

    /// The state machine was replaced by a snapshot at `revision`.
    pub fn reset(&self, revision: i64) {
        let mut st = self.lock();
        st.advance(revision);
        let _ = self.tx.send(HubMessage::Reset);
    }

    /// `None` if `revision` is already published; otherwise a receiver that completes once it is
    /// (and fails if the hub goes away first).
    pub fn wait_for(&self, revision: i64) -> Option<oneshot::Receiver<()>> {
        let mut st = self.lock();
        if st.revision >= revision {
            return None;
        }
        if st.waiters.len() >= PRUNE_WAITERS_AT {
            // Waiters that gave up (timed out) on a revision this replica has not reached, such as
            // one that can no longer hear the leader, would otherwise pile up.
            st.waiters.retain(|_, waiting| {
                waiting.retain(|w| !w.is_closed());
                !waiting.is_empty()
            });
        }
        let (tx, rx) = oneshot::channel();
        st.waiters.entry(revision).or_default().push(tx);
        Some(rx)
    }

    /// Subscribes to revisions after the returned one.
    pub fn subscribe(&self) -> (i64, broadcast::Receiver<HubMessage>) {
        let st = self.lock();
        (st.revision, self.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::model::RevisionEvents;

    fn at(revision: i64) -> RevisionEvents {
        RevisionEvents { revision, events: Vec::new() }
    }

    #[test]
    fn a_waiter_is_woken_once_its_revision_is_published_and_not_before() {
        let hub = WatchHub::new(5);
        assert!(hub.wait_for(5).is_none(), "an applied revision needs no wait");
        let mut seven = hub.wait_for(7).expect("7 is not applied yet");
        let mut nine = hub.wait_for(9).expect("9 is not applied yet");
        hub.publish(at(6));
        assert!(seven.try_recv().is_err(), "6 does not satisfy a wait for 7");
        hub.publish(at(8));
        assert_eq!(seven.try_recv(), Ok(()));
        assert!(nine.try_recv().is_err());
        hub.reset(12);
        assert_eq!(nine.try_recv(), Ok(()), "a snapshot past the revision satisfies it too");
        assert!(hub.lock().waiters.is_empty(), "woken waiters are dropped");
    }

    #[test]
    fn the_fence_is_the_later_of_the_applied_and_the_acknowledged_revision() {
        let hub = WatchHub::new(3);
        assert_eq!(hub.fence(), 3);
        hub.acknowledge(6);
        assert_eq!((hub.revision(), hub.fence()), (3, 6), "acknowledged ahead of apply");
        hub.acknowledge(4);
        assert_eq!(hub.fence(), 6, "the fence never goes back");
        hub.publish(at(7));
        assert_eq!(hub.fence(), 7);
    }

    #[test]
    fn waiters_that_gave_up_are_dropped_once_many_revisions_are_waited_for() {
        let hub = WatchHub::new(0);
        for revision in 1..=PRUNE_WAITERS_AT as i64 {
            drop(hub.wait_for(revision));
        }
        assert_eq!(hub.lock().waiters.len(), PRUNE_WAITERS_AT, "no pruning below the threshold");
        let mut kept = hub.wait_for(5_000).expect("not applied");
        assert_eq!(hub.lock().waiters.len(), 1, "only the live waiter is left");
        hub.publish(at(5_000));
        assert_eq!(kept.try_recv(), Ok(()));
    }

    #[test]
    fn a_waiter_learns_when_the_hub_goes_away() {
        let hub = WatchHub::new(1);
        let mut waiter = hub.wait_for(2).expect("2 is not applied yet");
        drop(hub);
        assert!(waiter.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Closed));
    }
}
