//! The replicated state machine over RocksDB, implementing openraft's `RaftStateMachine`.
//!
//! Each log entry (one command, or a batch of transactions each getting its own revision) is applied
//! as one atomic write batch that also records `last_applied`, so after a crash the state machine
//! resumes exactly after the last entry it applied and never goes backwards.
//! Applied writes are not fsynced on their own: the Raft log (synced) can replay them, and every later
//! synced write (log append, vote, purge) makes them durable too because all column families share one
//! WAL. Before a snapshot lets openraft purge the log, the WAL is synced explicitly.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{AnyError, EntryPayload, ErrorSubject, ErrorVerb, StorageIOError};
use rocksdb::{WriteOptions, DB};
use serde::{Deserialize, Serialize};

use super::db::{cf, CF_SM_META};
use super::snapshot_file::{install_batch, write_snapshot};
use crate::error::{RequestError, StoreError};
use crate::lease::tracker::LeaseTracker;
use crate::metrics::StoreMetrics;
use crate::mvcc::current_cache::CurrentCache;
use crate::mvcc::reader::{decode, ReadView};
use crate::mvcc::writer::{ApplyOutcome, CurrentChanges, Writer};
use crate::types::{
    ClientUrls, Command, CommandResponse, CommandResult, Entry, LogId, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig,
};
use crate::watch::hub::WatchHub;

const META_LAST_APPLIED: &[u8] = b"last_applied";
const META_MEMBERSHIP: &[u8] = b"membership";
pub const META_CLIENT_URLS: &[u8] = b"client_urls";

const SNAPSHOT_FILE: &str = "current.snap";
const SNAPSHOT_META_FILE: &str = "current.meta";

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), ErrorVerb::Write, AnyError::error(e.to_string())).into()
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshotMeta {
    meta: SnapshotMeta,
}

/// Shared pieces the state machine announces its changes to.
#[derive(Clone)]
pub struct StateMachineShared {
    pub db: Arc<DB>,
    pub hub: Arc<WatchHub>,
    pub leases: Arc<LeaseTracker>,
    pub snapshot_dir: PathBuf,
}

pub struct RocksStateMachine {
    shared: StateMachineShared,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    metrics: Arc<StoreMetrics>,
    /// Current values of recently written keys, as in the database.
    cache: CurrentCache,
}

impl RocksStateMachine {
    pub fn open(shared: StateMachineShared) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&shared.snapshot_dir)
            .map_err(|source| StoreError::Io { path: shared.snapshot_dir.clone(), source })?;
        let view = ReadView::live(&shared.db);
        let last_applied = match view.get(CF_SM_META, META_LAST_APPLIED)? {
            Some(v) => decode("last_applied", &v)?,
            None => None,
        };
        let membership = match view.get(CF_SM_META, META_MEMBERSHIP)? {
            Some(v) => decode("membership", &v)?,
            None => StoredMembership::default(),
        };
        shared.leases.reload(&view.leases()?, Instant::now());
        Ok(Self { shared, last_applied, membership, metrics: Arc::default(), cache: CurrentCache::default() })
    }

    /// Counts built and installed snapshots in `metrics`.
    pub fn with_metrics(self, metrics: Arc<StoreMetrics>) -> Self {
        Self { metrics, ..self }
    }

    fn apply_entry(&mut self, entry: &Entry) -> Result<CommandResponse, StoreError> {
        let db = self.shared.db.clone();
        let cache = std::mem::take(&mut self.cache);
        let applied = self.apply_entry_with(&db, &cache, entry);
        self.cache = cache;
        let (response, current) = applied?;
        // Only now is the entry in the database, so only now may the cache say so.
        self.cache.record(current);
        Ok(response)
    }

    /// Applies `entry`; also returns the current state it left each key it wrote in.
    fn apply_entry_with(
        &mut self,
        db: &DB,
        cache: &CurrentCache,
        entry: &Entry,
    ) -> Result<(CommandResponse, CurrentChanges), StoreError> {
        let mut writer = Writer::new(ReadView::live(db))?.with_cache(cache);
        let mut result = CommandResult::Done;
        match &entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Membership(m) => {
                self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                writer.put_meta(META_MEMBERSHIP, encode(&self.membership));
            }
            EntryPayload::Normal(Command::Batch(cmds)) => {
                let mut responses = Vec::with_capacity(cmds.len());
                for cmd in cmds {
                    let result = match cmd {
                        Command::Txn(_) => apply_or_reject(db, &mut writer, cmd)?,
                        other => CommandResult::Rejected(RequestError::Invalid {
                            reason: format!("only transactions can be batched, got {}", other.kind()),
                        }),
                    };
                    let revision = writer.end_command();
                    responses.push(CommandResponse { revision, result });
                }
                result = CommandResult::Batch(responses);
            }
            EntryPayload::Normal(cmd) => result = apply_or_reject(db, &mut writer, cmd)?,
        }
        writer.put_meta(META_LAST_APPLIED, encode(&Some(entry.log_id)));
        let (batch, mut outcome) = writer.finish();
        db.write(batch)?;
        self.last_applied = Some(entry.log_id);
        let revision = outcome.revision;
        let current = std::mem::take(&mut outcome.current);
        self.announce(outcome);
        Ok((CommandResponse { revision, result }, current))
    }

    fn announce(&self, outcome: ApplyOutcome) {
        let now = Instant::now();
        for rec in &outcome.leases_granted {
            self.shared.leases.granted(rec, now);
        }
        for id in &outcome.leases_revoked {
            self.shared.leases.revoked(*id);
        }
        for revision in outcome.revisions {
            self.shared.hub.publish(revision);
        }
    }

    fn snapshot_paths(&self) -> (PathBuf, PathBuf) {
        (self.shared.snapshot_dir.join(SNAPSHOT_FILE), self.shared.snapshot_dir.join(SNAPSHOT_META_FILE))
    }
}

/// Applies one (non-batch) command. A rejected command leaves nothing behind: its writes are rolled
/// back and only its result records the reason. Storage failures are returned as errors.
fn apply_or_reject(db: &DB, writer: &mut Writer<'_>, cmd: &Command) -> Result<CommandResult, StoreError> {
    let savepoint = writer.savepoint();
    let applied = match cmd {
        Command::Txn(t) => writer.txn(t).map(CommandResult::Txn),
        Command::Compact { revision } => writer.compact(*revision).map(|_| CommandResult::Done),
        Command::LeaseGrant { id, ttl } => {
            writer.lease_grant(*id, *ttl).map(|r| CommandResult::LeaseGranted { id: r.id, ttl: r.ttl })
        }
        Command::LeaseRevoke { id } => writer.lease_revoke(*id).map(|_| CommandResult::Done),
        Command::SetClientUrls { node_id, urls } => {
            let mut all: ClientUrls = match ReadView::live(db).get(CF_SM_META, META_CLIENT_URLS)? {
                Some(v) => decode("client_urls", &v)?,
                None => ClientUrls::new(),
            };
            all.insert(*node_id, urls.clone());
            writer.put_meta(META_CLIENT_URLS, encode(&all));
            Ok(CommandResult::Done)
        }
        Command::Batch(_) => Err(RequestError::Invalid { reason: "batches cannot be nested".into() }.into()),
    };
    match applied {
        Ok(r) => Ok(r),
        Err(StoreError::Request(e)) => {
            writer.rollback(savepoint);
            Ok(CommandResult::Rejected(e))
        }
        Err(other) => Err(other),
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("bincode encoding of in-memory values cannot fail")
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync directory).
fn write_file_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Builds snapshots from a RocksDB point-in-time view while the state machine keeps applying.
pub struct SnapshotBuilder {
    shared: StateMachineShared,
    metrics: Arc<StoreMetrics>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let shared = self.shared.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || -> Result<Snapshot, StorageError> {
            let db = &shared.db;
            // Everything the snapshot covers must survive power loss before openraft purges the log.
            db.flush_wal(true).map_err(snap_err)?;
            let snap = db.snapshot();
            let view = ReadView::at_snapshot(db, &snap);
            let last_applied: Option<LogId> = match view.get(CF_SM_META, META_LAST_APPLIED).map_err(snap_err)? {
                Some(v) => decode("last_applied", &v).map_err(snap_err)?,
                None => None,
            };
            let membership: StoredMembership = match view.get(CF_SM_META, META_MEMBERSHIP).map_err(snap_err)? {
                Some(v) => decode("membership", &v).map_err(snap_err)?,
                None => StoredMembership::default(),
            };
            let data = write_snapshot(db, &snap).map_err(snap_err)?;
            let snapshot_id = match last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, rand::random::<u32>()),
                None => format!("empty-{}", rand::random::<u32>()),
            };
            let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
            write_file_atomic(&shared.snapshot_dir.join(SNAPSHOT_FILE), &data).map_err(snap_err)?;
            let meta_bytes = serde_json::to_vec(&StoredSnapshotMeta { meta: meta.clone() }).map_err(snap_err)?;
            write_file_atomic(&shared.snapshot_dir.join(SNAPSHOT_META_FILE), &meta_bytes).map_err(snap_err)?;
            metrics.snapshot_built();
            Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
        })
        .await
        .map_err(snap_err)?
    }
}

impl RaftStateMachine<TypeConfig> for RocksStateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            if let Some(applied) = self.last_applied {
                if entry.log_id.index <= applied.index {
                    return Err(sm_err(
                        ErrorVerb::Write,
                        format!("entry {} would move last_applied {} backwards", entry.log_id, applied),
                    ));
                }
            }
            out.push(
                self.apply_entry(&entry)
                    .map_err(|e| StorageIOError::apply(entry.log_id, AnyError::error(e.to_string())))?,
            );
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone(), metrics: self.metrics.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let db = self.shared.db.clone();
        let mut batch = install_batch(&db, &data).map_err(snap_err)?;
        batch.put_cf(cf(&db, CF_SM_META), META_LAST_APPLIED, encode(&meta.last_log_id));
        batch.put_cf(cf(&db, CF_SM_META), META_MEMBERSHIP, encode(&meta.last_membership));
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts).map_err(snap_err)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.cache.clear();
        let (snap_path, meta_path) = self.snapshot_paths();
        write_file_atomic(&snap_path, &data).map_err(snap_err)?;
        let meta_bytes = serde_json::to_vec(&StoredSnapshotMeta { meta: meta.clone() }).map_err(snap_err)?;
        write_file_atomic(&meta_path, &meta_bytes).map_err(snap_err)?;
        let view = ReadView::live(&db);
        self.shared.leases.reload(&view.leases().map_err(snap_err)?, Instant::now());
        self.shared.hub.reset(view.revision().map_err(snap_err)?);
        self.metrics.snapshot_installed();
        tracing::info!(snapshot = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let (snap_path, meta_path) = self.snapshot_paths();
        let meta_bytes = match std::fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snap_err(e)),
        };
        let stored: StoredSnapshotMeta = serde_json::from_slice(&meta_bytes).map_err(snap_err)?;
        let data = std::fs::read(&snap_path).map_err(snap_err)?;
        Ok(Some(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}
