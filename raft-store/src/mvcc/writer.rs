//! Applying committed commands to the key space: transactions, compaction, lease grant and revoke.
//! Everything one log entry changes (one command, or a batch of transactions) goes into one RocksDB
//! write batch, so a crash leaves the key space either before or after the entry. Deterministic: the
//! outcome depends only on the stored state and the commands, never on time or randomness, so every
//! replica computes the same result.

use std::collections::{BTreeMap, BTreeSet};

use rocksdb::WriteBatch;

use super::current_cache::CurrentCache;
use super::encoding::{
    decode_index_key, index_key, lease_key, lease_keys_key, rev_key, LeaseRecord, RevRecord, LIVE, TOMBSTONE,
};
use super::model::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event, EventKind, KeyRange,
    KeyValue, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, RevisionEvents, TxnRequest,
    TxnResponse,
};
use super::reader::{finish_range, ReadView, META_COMPACT_REVISION, META_REVISION};
use crate::error::{RequestError, StoreError};
use crate::storage::db::{cf, CF_INDEX, CF_KV, CF_LEASE, CF_LEASE_KEYS, CF_REV, CF_SM_META};

/// The current state an entry left each key it wrote in (`None`: deleted).
pub type CurrentChanges = BTreeMap<Vec<u8>, Option<KeyValue>>;

/// What applying one log entry changed, for the watch hub and the lease tracker.
#[derive(Debug, Default)]
pub struct ApplyOutcome {
    /// The store revision after the entry.
    pub revision: i64,
    /// The new revisions with their events, in order (one per command that changed keys).
    pub revisions: Vec<RevisionEvents>,
    pub leases_granted: Vec<LeaseRecord>,
    pub leases_revoked: Vec<i64>,
    /// Set when the entry compacted history.
    pub compacted_to: Option<i64>,
    /// The current state the entry left each key it wrote in, for the `CurrentCache`.
    pub current: CurrentChanges,
}

/// One RocksDB write, staged so that a rejected command can be taken back (`rollback`).
enum Op {
    Put { cf: &'static str, key: Vec<u8>, value: Vec<u8> },
    Delete { cf: &'static str, key: Vec<u8> },
}

/// What an overlay entry held before a command changed it (`None`: it had no entry).
enum Undo {
    Kv(Vec<u8>, Option<Option<KeyValue>>),
    Lease(i64, Option<Option<LeaseRecord>>),
}

/// A position in the writer to roll a rejected command back to.
pub struct Savepoint {
    ops: usize,
    undo: usize,
    events: usize,
    granted: usize,
    revoked: usize,
    sub: u32,
    compacted_to: Option<i64>,
}

/// Accumulates the writes of one log entry (one command, or a batch of commands each with its own
/// revision) on top of the live database. Later commands see the writes of earlier ones.
pub struct Writer<'a> {
    view: ReadView<'a>,
    /// Current values known without a database read (see `CurrentCache`).
    cache: Option<&'a CurrentCache>,
    ops: Vec<Op>,
    /// Store revision in the database, before this entry.
    start_revision: i64,
    /// Store revision before the current command.
    base_revision: i64,
    /// Number of changes made so far in the current command's revision.
    sub: u32,
    overlay: BTreeMap<Vec<u8>, Option<KeyValue>>,
    lease_overlay: BTreeMap<i64, Option<LeaseRecord>>,
    undo: Vec<Undo>,
    /// Events of the current command.
    events: Vec<Event>,
    outcome: ApplyOutcome,
}

fn key_str(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("bincode encoding of in-memory values cannot fail")
}

impl<'a> Writer<'a> {
    pub fn new(view: ReadView<'a>) -> Result<Self, StoreError> {
        let base_revision = view.revision()?;
        Ok(Self {
            view,
            cache: None,
            ops: Vec::new(),
            start_revision: base_revision,
            base_revision,
            sub: 0,
            overlay: BTreeMap::new(),
            lease_overlay: BTreeMap::new(),
            undo: Vec::new(),
            events: Vec::new(),
            outcome: ApplyOutcome { revision: base_revision, ..Default::default() },
        })
    }

    /// Looks keys' current values up in `cache` before the database. The cache must hold nothing
    /// the database does not.
    pub fn with_cache(self, cache: &'a CurrentCache) -> Self {
        Self { cache: Some(cache), ..self }
    }

    /// The revision a change made now gets.
    fn next_revision(&self) -> i64 {
        self.base_revision + 1
    }

    /// Ends the current command: if it changed keys, that is a new revision. Returns the store
    /// revision after the command.
    pub fn end_command(&mut self) -> i64 {
        if self.sub > 0 {
            self.base_revision += 1;
            self.sub = 0;
            let events = std::mem::take(&mut self.events);
            self.outcome.revisions.push(RevisionEvents { revision: self.base_revision, events });
        }
        self.base_revision
    }

    /// Marks the start of a command that may be rejected half-way.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            ops: self.ops.len(),
            undo: self.undo.len(),
            events: self.events.len(),
            granted: self.outcome.leases_granted.len(),
            revoked: self.outcome.leases_revoked.len(),
            sub: self.sub,
            compacted_to: self.outcome.compacted_to,
        }
    }

    /// Takes back everything written since `sp`, which must belong to the current command.
    pub fn rollback(&mut self, sp: Savepoint) {
        self.ops.truncate(sp.ops);
        while self.undo.len() > sp.undo {
            match self.undo.pop() {
                Some(Undo::Kv(key, Some(prev))) => {
                    self.overlay.insert(key, prev);
                }
                Some(Undo::Kv(key, None)) => {
                    self.overlay.remove(&key);
                }
                Some(Undo::Lease(id, Some(prev))) => {
                    self.lease_overlay.insert(id, prev);
                }
                Some(Undo::Lease(id, None)) => {
                    self.lease_overlay.remove(&id);
                }
                None => break,
            }
        }
        self.events.truncate(sp.events);
        self.outcome.leases_granted.truncate(sp.granted);
        self.outcome.leases_revoked.truncate(sp.revoked);
        self.sub = sp.sub;
        self.outcome.compacted_to = sp.compacted_to;
    }

    /// Hands back the batch (with the new revision recorded) and what changed.
    pub fn finish(mut self) -> (WriteBatch, ApplyOutcome) {
        self.end_command();
        if self.base_revision != self.start_revision {
            self.put_meta(META_REVISION, enc(&self.base_revision));
        }
        self.outcome.revision = self.base_revision;
        self.outcome.current = std::mem::take(&mut self.overlay);
        let db = self.view.db();
        let mut batch = WriteBatch::default();
        for op in self.ops {
            match op {
                Op::Put { cf: name, key, value } => batch.put_cf(cf(db, name), key, value),
                Op::Delete { cf: name, key } => batch.delete_cf(cf(db, name), key),
            }
        }
        (batch, self.outcome)
    }

    fn put_op(&mut self, cf: &'static str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put { cf, key: key.into(), value: value.into() });
    }

    fn delete_op(&mut self, cf: &'static str, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete { cf, key: key.into() });
    }

    fn set_overlay(&mut self, key: Vec<u8>, value: Option<KeyValue>) {
        let prev = self.overlay.insert(key.clone(), value);
        self.undo.push(Undo::Kv(key, prev));
    }

    fn set_lease_overlay(&mut self, id: i64, value: Option<LeaseRecord>) {
        let prev = self.lease_overlay.insert(id, value);
        self.undo.push(Undo::Lease(id, prev));
    }

    /// Puts a raw metadata record into the same batch.
    pub fn put_meta(&mut self, key: &[u8], value: Vec<u8>) {
        self.put_op(CF_SM_META, key, value);
    }

    fn current(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.cache.and_then(|c| c.get(key)) {
            return Ok(v.clone());
        }
        self.view.current(key)
    }

    fn current_in(&self, range: &KeyRange) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        if self.overlay.is_empty() {
            self.view.current_range(range, |kv| {
                out.push(kv);
                Ok(true)
            })?;
            return Ok(out);
        }
        let mut merged: BTreeMap<Vec<u8>, KeyValue> = BTreeMap::new();
        self.view.current_range(range, |kv| {
            merged.insert(kv.key.clone(), kv);
            Ok(true)
        })?;
        for (k, v) in &self.overlay {
            if range.contains(k) {
                match v {
                    Some(kv) => merged.insert(k.clone(), kv.clone()),
                    None => merged.remove(k),
                };
            }
        }
        out.extend(merged.into_values());
        Ok(out)
    }

    fn lease(&self, id: i64) -> Result<Option<LeaseRecord>, StoreError> {
        match self.lease_overlay.get(&id) {
            Some(v) => Ok(v.clone()),
            None => self.view.lease(id),
        }
    }

    // ---- transactions -------------------------------------------------------------------------------

    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, StoreError> {
        validate_txn(req)?;
        self.txn_inner(req)
    }

    fn txn_inner(&mut self, req: &TxnRequest) -> Result<TxnResponse, StoreError> {
        let mut succeeded = true;
        for c in &req.compare {
            if !self.compare(c)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &req.success } else { &req.failure };
        self.check_ops(ops)?;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range(r)?),
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_range(d)?),
                RequestOp::Txn(t) => ResponseOp::Txn(self.txn_inner(t)?),
            });
        }
        Ok(TxnResponse { succeeded, responses })
    }

    /// Checks that nothing in `ops` can fail half-way, so a failing transaction changes nothing.
    fn check_ops(&self, ops: &[RequestOp]) -> Result<(), StoreError> {
        for op in ops {
            match op {
                RequestOp::Put(p) => {
                    if p.lease != 0 && !p.ignore_lease && self.lease(p.lease)?.is_none() {
                        return Err(RequestError::LeaseNotFound { id: p.lease }.into());
                    }
                    if (p.ignore_value || p.ignore_lease) && self.current(&p.key)?.is_none() {
                        return Err(RequestError::KeyNotFound { key: key_str(&p.key) }.into());
                    }
                }
                RequestOp::Range(r) => self.check_range_revision(r.revision)?,
                RequestOp::DeleteRange(_) | RequestOp::Txn(_) => {}
            }
        }
        Ok(())
    }

    fn check_range_revision(&self, revision: i64) -> Result<(), StoreError> {
        if revision > self.base_revision {
            return Err(RequestError::FutureRevision { requested: revision, current: self.base_revision }.into());
        }
        if revision > 0 {
            let compact = self.view.compact_revision()?;
            if revision < compact {
                return Err(RequestError::Compacted { requested: revision, compact_revision: compact }.into());
            }
        }
        Ok(())
    }

    fn compare(&self, c: &Compare) -> Result<bool, StoreError> {
        let kvs = if c.range.is_single() {
            self.current(&c.range.key)?.into_iter().collect()
        } else {
            self.current_in(&c.range)?
        };
        if kvs.is_empty() {
            // etcd: a missing key compares as all-zero fields, but never equal on value.
            if matches!(c.target, CompareTarget::Value(_)) {
                return Ok(false);
            }
            return Ok(compare_kv(c, &KeyValue::default()));
        }
        Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
    }

    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, StoreError> {
        // The current state is the database plus the overlay. The database still holds the state
        // before this entry, so past revisions up to that one are read from it directly.
        if r.revision == 0 || (r.revision == self.base_revision && self.sub == 0) {
            return Ok(finish_range(r, self.current_in(&r.range)?));
        }
        if r.revision <= self.start_revision {
            return self.view.range(r);
        }
        // Only reachable when a batch holds a range at a revision written earlier in the same batch,
        // which the proposer never batches (`Command::batchable`).
        Err(RequestError::Invalid {
            reason: format!("range at revision {} cannot be served within the entry that wrote it", r.revision),
        }
        .into())
    }

    fn record(&mut self, kind: EventKind, kv: KeyValue, prev: Option<KeyValue>) {
        let rev = self.next_revision();
        let sub = self.sub;
        self.sub += 1;
        let key = kv.key.clone();
        match kind {
            EventKind::Put => {
                self.put_op(CF_KV, key.clone(), enc(&kv));
                self.put_op(CF_INDEX, index_key(&key, rev, sub), [LIVE]);
            }
            EventKind::Delete => {
                self.delete_op(CF_KV, key.clone());
                self.put_op(CF_INDEX, index_key(&key, rev, sub), [TOMBSTONE]);
            }
        }
        self.put_op(CF_REV, rev_key(rev, sub), enc(&RevRecord { kind, kv: kv.clone() }));
        // Lease attachment follows the key.
        let old_lease = prev.as_ref().map(|p| p.lease).unwrap_or(0);
        let new_lease = if kind == EventKind::Put { kv.lease } else { 0 };
        if old_lease != new_lease {
            if old_lease != 0 {
                self.delete_op(CF_LEASE_KEYS, lease_keys_key(old_lease, &key));
            }
            if new_lease != 0 {
                self.put_op(CF_LEASE_KEYS, lease_keys_key(new_lease, &key), []);
            }
        }
        self.set_overlay(key, if kind == EventKind::Put { Some(kv.clone()) } else { None });
        self.events.push(Event { kind, kv, prev_kv: prev });
    }

    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, StoreError> {
        let prev = self.current(&p.key)?;
        let rev = self.next_revision();
        let value = match (&prev, p.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => p.value.clone(),
        };
        let lease = match (&prev, p.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => p.lease,
        };
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map(|k| k.create_revision).unwrap_or(rev),
            mod_revision: rev,
            version: prev.as_ref().map(|k| k.version).unwrap_or(0) + 1,
            value,
            lease,
        };
        self.record(EventKind::Put, kv, prev.clone());
        Ok(PutResponse { prev_kv: if p.prev_kv { prev } else { None } })
    }

    fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, StoreError> {
        let existing = self.current_in(&d.range)?;
        let rev = self.next_revision();
        let deleted = existing.len() as i64;
        let mut prev_kvs = Vec::new();
        for prev in existing {
            let tomb = KeyValue { key: prev.key.clone(), mod_revision: rev, ..Default::default() };
            if d.prev_kv {
                prev_kvs.push(prev.clone());
            }
            self.record(EventKind::Delete, tomb, Some(prev));
        }
        Ok(DeleteRangeResponse { deleted, prev_kvs })
    }

    // ---- leases ---------------------------------------------------------------------------------------

    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseRecord, StoreError> {
        if id <= 0 {
            return Err(RequestError::Invalid { reason: format!("lease id must be positive, got {id}") }.into());
        }
        if self.lease(id)?.is_some() {
            return Err(RequestError::LeaseExists { id }.into());
        }
        let rec = LeaseRecord { id, ttl };
        self.put_op(CF_LEASE, lease_key(id), enc(&rec));
        self.set_lease_overlay(id, Some(rec.clone()));
        self.outcome.leases_granted.push(rec.clone());
        Ok(rec)
    }

    /// Revokes a lease and deletes every key attached to it, in one new revision.
    pub fn lease_revoke(&mut self, id: i64) -> Result<(), StoreError> {
        if self.lease(id)?.is_none() {
            return Err(RequestError::LeaseNotFound { id }.into());
        }
        let keys = self.view.lease_keys(id)?;
        let rev = self.next_revision();
        for key in keys {
            if let Some(prev) = self.current(&key)? {
                if prev.lease == id {
                    let tomb = KeyValue { key: key.clone(), mod_revision: rev, ..Default::default() };
                    self.record(EventKind::Delete, tomb, Some(prev));
                }
            }
        }
        self.delete_op(CF_LEASE, lease_key(id));
        self.set_lease_overlay(id, None);
        self.outcome.leases_revoked.push(id);
        Ok(())
    }

    // ---- compaction -----------------------------------------------------------------------------------

    /// Drops history below `revision`: reads at `revision` or later keep working, watches from earlier
    /// revisions fail with `Compacted`.
    pub fn compact(&mut self, revision: i64) -> Result<(), StoreError> {
        let current = self.base_revision;
        let compacted = self.view.compact_revision()?;
        if revision <= compacted {
            return Err(RequestError::Compacted { requested: revision, compact_revision: compacted }.into());
        }
        if revision > current {
            return Err(RequestError::FutureRevision { requested: revision, current }.into());
        }
        let mut doomed: Vec<(Vec<u8>, i64, u32)> = Vec::new();
        // Per user key, entries below `revision` go, except the newest live one at or below it.
        let mut group: Option<Vec<u8>> = None;
        let mut below: Vec<(i64, u32, bool)> = Vec::new();
        let flush = |user: &[u8], below: &mut Vec<(i64, u32, bool)>, doomed: &mut Vec<(Vec<u8>, i64, u32)>| {
            let keep_last_live = below.last().map(|&(r, _, live)| live && r <= revision).unwrap_or(false);
            let n = below.len();
            for (i, &(r, s, _)) in below.iter().enumerate() {
                if r < revision && !(keep_last_live && i == n - 1) {
                    doomed.push((user.to_vec(), r, s));
                }
            }
            below.clear();
        };
        self.view.scan(CF_INDEX, &[], None, |k, v| {
            let (user, r, s) = decode_index_key(k).ok_or_else(|| StoreError::corrupt("index", "bad key"))?;
            if group.as_deref() != Some(user.as_slice()) {
                if let Some(g) = group.take() {
                    flush(&g, &mut below, &mut doomed);
                }
                group = Some(user);
            }
            if r <= revision {
                below.push((r, s, v.first() != Some(&TOMBSTONE)));
            }
            Ok(true)
        })?;
        if let Some(g) = group.take() {
            flush(&g, &mut below, &mut doomed);
        }
        for (user, r, s) in doomed {
            self.delete_op(CF_INDEX, index_key(&user, r, s));
            self.delete_op(CF_REV, rev_key(r, s));
        }
        self.put_op(CF_SM_META, META_COMPACT_REVISION, enc(&revision));
        self.outcome.compacted_to = Some(revision);
        Ok(())
    }
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => !ord.is_eq(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
    }
}

/// etcd's structural checks: within a branch, a key is put at most once and never both put and
/// deleted; ranges are well formed.
pub fn validate_txn(req: &TxnRequest) -> Result<(), RequestError> {
    for c in &req.compare {
        if c.range.key.is_empty() {
            return Err(RequestError::Invalid { reason: "compare key is empty".into() });
        }
    }
    for ops in [&req.success, &req.failure] {
        let mut puts = BTreeSet::new();
        let mut deletes = Vec::new();
        collect_writes(ops, &mut puts, &mut deletes)?;
        for key in &puts {
            if deletes.iter().any(|d: &KeyRange| d.contains(key)) {
                return Err(RequestError::DuplicateKey { key: key_str(key) });
            }
        }
    }
    Ok(())
}

fn collect_writes(
    ops: &[RequestOp],
    puts: &mut BTreeSet<Vec<u8>>,
    deletes: &mut Vec<KeyRange>,
) -> Result<(), RequestError> {
    for op in ops {
        match op {
            RequestOp::Put(p) => {
                if p.key.is_empty() {
                    return Err(RequestError::Invalid { reason: "key is not provided".into() });
                }
                if !puts.insert(p.key.clone()) {
                    return Err(RequestError::DuplicateKey { key: key_str(&p.key) });
                }
            }
            RequestOp::DeleteRange(d) => {
                if d.range.key.is_empty() {
                    return Err(RequestError::Invalid { reason: "key is not provided".into() });
                }
                deletes.push(d.range.clone());
            }
            RequestOp::Range(r) => {
                if r.range.key.is_empty() {
                    return Err(RequestError::Invalid { reason: "key is not provided".into() });
                }
            }
            RequestOp::Txn(t) => {
                for c in &t.compare {
                    if c.range.key.is_empty() {
                        return Err(RequestError::Invalid { reason: "compare key is empty".into() });
                    }
                }
                // Only one branch of a nested transaction runs, but each must be valid together with ours.
                for branch in [&t.success, &t.failure] {
                    let mut p = puts.clone();
                    let mut d = deletes.clone();
                    collect_writes(branch, &mut p, &mut d)?;
                }
            }
        }
    }
    Ok(())
}
