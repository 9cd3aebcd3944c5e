//! The Raft log and vote in RocksDB, implementing openraft's `RaftLogStorage`.
//!
//! Durability rules (openraft's storage contract, and why each write here is synced):
//! - `save_vote` returns only after the vote is fsynced: a replica must never vote twice in a term.
//! - `append` writes the entries (readable at once, as openraft requires) without waiting for the disk,
//!   and reports completion (the `LogFlushed` callback) only after a WAL fsync that covers them. One
//!   syncer thread runs those fsyncs back to back; every append that arrived while one ran is covered
//!   by the next, so many client proposals share one fsync (group commit). Callbacks therefore complete
//!   in append order, and a successful one means every earlier append is durable too. The patched
//!   openraft leader relies on both (readable at once, durable in order): it replicates entries before
//!   its own fsync and counts them for itself only when the callback reports them
//!   (`third_party/openraft/GANTRY-PATCH.md`).
//! - `truncate` and `purge` are single atomic write batches, synced, so a crash never leaves a hole in
//!   the log or a purge marker that disagrees with the entries present.
//!
//! Must not know about the state machine's contents.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::db::{cf, CF_LOG, CF_RAFT_META};
use crate::metrics::StoreMetrics;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The Raft log over a shared RocksDB handle. Cheap to clone (readers share the database).
#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<DB>,
    syncer: Arc<Syncer>,
    metrics: Arc<StoreMetrics>,
}

/// The sync thread and the queue to it. Dropped with the last clone of the store: that closes the
/// queue and waits for the thread to finish, so the thread's database handle is gone before the
/// caller goes on. (A thread still closing the database while the process exits aborted it in
/// RocksDB's static teardown: "pthread lock: Invalid argument".)
struct Syncer {
    /// `Some` until `drop`.
    queue: Option<std::sync::mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// Queues `callback` for the next fsync; hands it back if the thread is gone.
    fn send(&self, callback: LogFlushed<TypeConfig>) -> Result<(), LogFlushed<TypeConfig>> {
        match &self.queue {
            Some(tx) => tx.send(callback).map_err(|std::sync::mpsc::SendError(cb)| cb),
            None => Err(callback),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Fsyncs the WAL for queued appends, as many at a time as have queued up, then acknowledges them.
fn run_syncer(db: Arc<DB>, rx: std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>, metrics: Arc<StoreMetrics>) {
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let started = std::time::Instant::now();
        let result = db.flush_wal(true);
        metrics.observe_wal_fsync(started.elapsed());
        for cb in pending {
            cb.log_io_completed(result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: &(impl std::error::Error + 'static)) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(e)).into()
}

fn synced() -> WriteOptions {
    let mut o = WriteOptions::default();
    o.set_sync(true);
    o
}

impl RocksLogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self::with_metrics(db, Arc::default())
    }

    /// Like `new`, recording fsync latency and the commit index in `metrics`.
    pub fn with_metrics(db: Arc<DB>, metrics: Arc<StoreMetrics>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let sync_db = db.clone();
        let sync_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run_syncer(sync_db, rx, sync_metrics))
            .expect("spawning the log sync thread");
        let syncer = Syncer { queue: Some(tx), thread: Some(thread) };
        Self { db, syncer: Arc::new(syncer), metrics }
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let raw = self
            .db
            .get_cf(cf(&self.db, CF_RAFT_META), key)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, &e))?;
        match raw {
            Some(bytes) => {
                bincode::deserialize(&bytes).map(Some).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, &e))
            }
            None => Ok(None),
        }
    }

    fn encode<T: Serialize>(v: &T, subject: ErrorSubject<u64>) -> Result<Vec<u8>, StorageError> {
        bincode::serialize(v).map_err(|e| io_err(subject, ErrorVerb::Write, &e))
    }

    fn last_entry(&self) -> Result<Option<LogId>, StorageError> {
        let mut iter = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End);
        match iter.next() {
            Some(item) => {
                let (_, v) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
                let entry: Entry =
                    bincode::deserialize(&v).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    /// Writes `batch` with fsync; raft state changes are acknowledged only after this returns.
    async fn write_synced(&self, batch: WriteBatch, subject: ErrorSubject<u64>) -> Result<(), StorageError> {
        let db = self.db.clone();
        let metrics = self.metrics.clone();
        let result = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let written = db.write_opt(batch, &synced());
            metrics.observe_wal_fsync(started.elapsed());
            written
        })
        .await
        .map_err(|e| io_err(subject.clone(), ErrorVerb::Write, &e))?;
        result.map_err(|e| io_err(subject, ErrorVerb::Write, &e))
    }
}

fn bound_start(b: Bound<&u64>) -> u64 {
    match b {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = bound_start(range.start_bound());
        let mut out = Vec::new();
        let start_key = index_key(start);
        let iter = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::From(&start_key, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            let index =
                u64::from_be_bytes(k.as_ref().try_into().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?);
            if !range.contains(&index) {
                break;
            }
            let entry: Entry = bincode::deserialize(&v).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last_log_id = self.last_entry()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT_META), KEY_VOTE, Self::encode(vote, ErrorSubject::Vote)?);
        self.write_synced(batch, ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-learning the commit index from the leader.
        self.metrics.set_commit_index(committed.map(|l| l.index).unwrap_or(0));
        let bytes = Self::encode(&committed, ErrorSubject::Store)?;
        self.db
            .put_cf(cf(&self.db, CF_RAFT_META), KEY_COMMITTED, bytes)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed = self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten();
        self.metrics.set_commit_index(committed.map(|l| l.index).unwrap_or(0));
        Ok(committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = Self::encode(&entry, ErrorSubject::Logs)?;
            batch.put_cf(cf(&self.db, CF_LOG), index_key(entry.log_id.index), bytes);
        }
        // Not synced here: the entries are readable now, durable once the syncer's fsync covers them.
        self.db.write(batch).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
        if let Err(cb) = self.syncer.send(callback) {
            cb.log_io_completed(Err(std::io::Error::other("log sync thread stopped")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Removes log_id.index and everything after it.
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOG), index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(cf(&self.db, CF_LOG), index_key(u64::MAX));
        self.write_synced(batch, ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Removes everything up to and including log_id.index, and records it, atomically.
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT_META), KEY_LAST_PURGED, Self::encode(&log_id, ErrorSubject::Logs)?);
        batch.delete_range_cf(cf(&self.db, CF_LOG), index_key(0), index_key(log_id.index + 1));
        self.write_synced(batch, ErrorSubject::Logs).await
    }
}
