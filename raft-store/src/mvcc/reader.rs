//! Reads of the key space from RocksDB, either live or from a RocksDB snapshot (a consistent view that
//! watch catch-up and snapshot building use while writes go on). Owns range semantics (limit, count,
//! sort, filters, past revisions) and history scans; it never writes.

use rocksdb::{Direction, IteratorMode, ReadOptions, SnapshotWithThreadMode, DB};
use serde::de::DeserializeOwned;

use super::encoding::{
    decode_index_key, decode_rev_key, index_key, index_prefix, lease_key, rev_key, LeaseRecord, RevRecord, TOMBSTONE,
};
use super::model::{Event, KeyRange, KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget};
use crate::error::{RequestError, StoreError};
use crate::storage::db::{cf, CF_INDEX, CF_KV, CF_LEASE, CF_LEASE_KEYS, CF_REV, CF_SM_META};

pub const META_REVISION: &[u8] = b"revision";
pub const META_COMPACT_REVISION: &[u8] = b"compact_revision";
pub const INITIAL_REVISION: i64 = 1;

/// A read view: the live database, or a snapshot of it.
pub struct ReadView<'a> {
    db: &'a DB,
    snapshot: Option<&'a SnapshotWithThreadMode<'a, DB>>,
}

pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    bincode::deserialize(bytes).map_err(|e| StoreError::corrupt(what, e))
}

impl<'a> ReadView<'a> {
    pub fn live(db: &'a DB) -> Self {
        Self { db, snapshot: None }
    }

    pub fn at_snapshot(db: &'a DB, snapshot: &'a SnapshotWithThreadMode<'a, DB>) -> Self {
        Self { db, snapshot: Some(snapshot) }
    }

    pub fn db(&self) -> &'a DB {
        self.db
    }

    fn opts(&self) -> ReadOptions {
        let mut o = ReadOptions::default();
        if let Some(s) = self.snapshot {
            o.set_snapshot(s);
        }
        o
    }

    pub fn get(&self, cf_name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf_opt(cf(self.db, cf_name), key, &self.opts())?)
    }

    /// Iterates `cf_name` forward from `from` while keys are below `to` (if given).
    pub fn scan(
        &self,
        cf_name: &str,
        from: &[u8],
        to: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut opts = self.opts();
        if let Some(to) = to {
            opts.set_iterate_upper_bound(to.to_vec());
        }
        let iter = self.db.iterator_cf_opt(cf(self.db, cf_name), opts, IteratorMode::From(from, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    pub fn meta_i64(&self, key: &[u8]) -> Result<i64, StoreError> {
        match self.get(CF_SM_META, key)? {
            Some(v) => decode("sm_meta", &v),
            None => Ok(0),
        }
    }

    /// The revision of the last write applied. Like etcd, an empty store is at revision 1, so the
    /// first write gets revision 2 and no response ever carries revision 0 (which Kubernetes reads as
    /// "any version").
    pub fn revision(&self) -> Result<i64, StoreError> {
        match self.get(CF_SM_META, META_REVISION)? {
            Some(v) => decode("sm_meta", &v),
            None => Ok(INITIAL_REVISION),
        }
    }

    pub fn compact_revision(&self) -> Result<i64, StoreError> {
        self.meta_i64(META_COMPACT_REVISION)
    }

    pub fn current(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        match self.get(CF_KV, key)? {
            Some(v) => Ok(Some(decode("kv", &v)?)),
            None => Ok(None),
        }
    }

    /// Current key-values in `range`, in key order.
    pub fn current_range(
        &self,
        range: &KeyRange,
        mut visit: impl FnMut(KeyValue) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        if range.is_single() {
            if let Some(kv) = self.current(&range.key)? {
                visit(kv)?;
            }
            return Ok(());
        }
        let upper = range.upper_bound();
        self.scan(CF_KV, &range.key, upper.as_deref(), |_, v| visit(decode("kv", v)?))
    }

    /// Key-values in `range` as of `revision` (which must be retained).
    pub fn range_at(
        &self,
        range: &KeyRange,
        revision: i64,
        mut visit: impl FnMut(KeyValue) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let from = index_prefix(&range.key);
        let upper = range.upper_bound().map(|u| index_prefix(&u));
        // Walk the index; for each user key remember the newest entry at or below `revision`.
        let mut group: Option<Vec<u8>> = None;
        let mut best: Option<(i64, u32, bool)> = None;
        let mut pending: Vec<(i64, u32)> = Vec::new();
        self.scan(CF_INDEX, &from, upper.as_deref(), |k, v| {
            let (user, rev, sub) = decode_index_key(k).ok_or_else(|| StoreError::corrupt("index", "bad key"))?;
            if group.as_deref() != Some(user.as_slice()) {
                if let Some((r, s, live)) = best.take() {
                    if live {
                        pending.push((r, s));
                    }
                }
                group = Some(user);
            }
            if rev <= revision {
                best = Some((rev, sub, v.first() != Some(&TOMBSTONE)));
            }
            Ok(true)
        })?;
        if let Some((r, s, true)) = best {
            pending.push((r, s));
        }
        for (r, s) in pending {
            let rec = self.rev_record(r, s)?.ok_or_else(|| StoreError::corrupt("rev", format!("missing {r}.{s}")))?;
            if !visit(rec.kv)? {
                break;
            }
        }
        Ok(())
    }

    pub fn rev_record(&self, revision: i64, sub: u32) -> Result<Option<RevRecord>, StoreError> {
        match self.get(CF_REV, &rev_key(revision, sub))? {
            Some(v) => Ok(Some(decode("rev", &v)?)),
            None => Ok(None),
        }
    }

    /// The value `key` had just before `revision` (none if absent or compacted away).
    pub fn previous(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, StoreError> {
        let prefix = index_prefix(key);
        let seek = index_key(key, revision - 1, u32::MAX);
        let mut iter =
            self.db.iterator_cf_opt(cf(self.db, CF_INDEX), self.opts(), IteratorMode::From(&seek, Direction::Reverse));
        match iter.next() {
            Some(item) => {
                let (k, v) = item?;
                if !k.starts_with(&prefix) || v.first() == Some(&TOMBSTONE) {
                    return Ok(None);
                }
                let (_, r, s) = decode_index_key(&k).ok_or_else(|| StoreError::corrupt("index", "bad key"))?;
                Ok(self.rev_record(r, s)?.map(|rec| rec.kv))
            }
            None => Ok(None),
        }
    }

    /// Events with revisions in `[from, to]` whose key is in `range`, grouped by revision.
    /// Stops after `max_revisions` revisions; returns the last revision scanned.
    pub fn history(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        with_prev: bool,
        max_revisions: usize,
        mut visit: impl FnMut(i64, Event),
    ) -> Result<i64, StoreError> {
        let start = rev_key(from.max(1), 0);
        let end = rev_key(to + 1, 0);
        let mut last_rev = from - 1;
        let mut revisions = 0usize;
        let mut stopped = false;
        let mut found: Vec<(i64, RevRecord)> = Vec::new();
        self.scan(CF_REV, &start, Some(&end), |k, v| {
            let (rev, _) = decode_rev_key(k).ok_or_else(|| StoreError::corrupt("rev", "bad key"))?;
            if rev != last_rev {
                if revisions == max_revisions {
                    stopped = true;
                    return Ok(false);
                }
                revisions += 1;
                last_rev = rev;
            }
            let rec: RevRecord = decode("rev", v)?;
            if range.contains(&rec.kv.key) {
                found.push((rev, rec));
            }
            Ok(true)
        })?;
        for (rev, rec) in found {
            let prev_kv = if with_prev { self.previous(&rec.kv.key, rev)? } else { None };
            visit(rev, Event { kind: rec.kind, kv: rec.kv, prev_kv });
        }
        Ok(if stopped { last_rev } else { to })
    }

    pub fn lease(&self, id: i64) -> Result<Option<LeaseRecord>, StoreError> {
        match self.get(CF_LEASE, &lease_key(id))? {
            Some(v) => Ok(Some(decode("lease", &v)?)),
            None => Ok(None),
        }
    }

    pub fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        let mut out = Vec::new();
        self.scan(CF_LEASE, &[], None, |_, v| {
            out.push(decode("lease", v)?);
            Ok(true)
        })?;
        Ok(out)
    }

    pub fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = lease_key(id);
        let upper = lease_key(id.wrapping_add(1));
        let mut out = Vec::new();
        let upper_opt = if id == -1 { None } else { Some(&upper[..]) };
        self.scan(CF_LEASE_KEYS, &prefix, upper_opt, |k, _| {
            if !k.starts_with(&prefix) {
                return Ok(false);
            }
            out.push(k[8..].to_vec());
            Ok(true)
        })?;
        Ok(out)
    }

    /// A range read with etcd's semantics.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let current = self.revision()?;
        let mut kvs = Vec::new();
        if req.revision > 0 && req.revision < current {
            let compact = self.compact_revision()?;
            if req.revision < compact {
                return Err(RequestError::Compacted { requested: req.revision, compact_revision: compact }.into());
            }
            self.range_at(&req.range, req.revision, |kv| {
                kvs.push(kv);
                Ok(true)
            })?;
        } else if req.revision > current {
            return Err(RequestError::FutureRevision { requested: req.revision, current }.into());
        } else {
            self.current_range(&req.range, |kv| {
                kvs.push(kv);
                Ok(true)
            })?;
        }
        Ok(finish_range(req, kvs))
    }
}

/// Applies filters, sorting, limit and the keys-only/count-only projections to the keys of a range.
pub fn finish_range(req: &RangeRequest, mut kvs: Vec<KeyValue>) -> RangeResponse {
    let count = kvs.len() as i64;
    kvs.retain(|kv| {
        (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
            && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
    });
    let order = match (req.sort_order, req.sort_target) {
        // Keys come out of the store ascending already.
        (SortOrder::None, _) | (SortOrder::Ascend, SortTarget::Key) => None,
        (SortOrder::Ascend, t) => Some((t, false)),
        (SortOrder::Descend, t) => Some((t, true)),
    };
    if let Some((target, descend)) = order {
        kvs.sort_by(|a, b| {
            let o = match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            if descend {
                o.reverse()
            } else {
                o
            }
        });
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() as i64 > req.limit {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.count_only {
        kvs.clear();
    } else if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    RangeResponse { kvs, more, count }
}
