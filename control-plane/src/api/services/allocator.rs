//! Service writes with their reservations, through the replicated store: every create, update and
//! delete of a Service is one transaction that also creates the reservation keys of the values it
//! starts holding (compare `create_revision == 0`) and deletes those of the values it stops holding
//! (only while they still name it). Raft applies transactions one at a time on every replica, so two
//! replicas can never reserve the same value, whoever leads, and a Service never exists without its
//! reservations nor a reservation without its Service.
//!
//! A picked value that turns out to be taken fails the transaction; the failure branch reads which
//! keys were taken, and the write is retried with other values (after a few such collisions the
//! pool's reservations are read in full, so the next pick is from the free ones). A requested value
//! that is taken is a 422.
//!
//! Owns the transaction driver; the decisions are `allocation`'s. Must not depend on the HTTP layer.

use std::collections::BTreeSet;

use raft_store::mvcc::model::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyRange, PutRequest, RangeRequest, RequestOp,
    ResponseOp, TxnRequest, TxnResponse,
};
use raft_store::Store;
use serde_json::Value;

use super::allocation::{held, plan_write, taken_cause, AllocError, Chooser, Pool, Resource, WritePlan};
use super::metrics::AllocatorMetrics;
use super::ranges::ServiceRanges;
use super::reservations::{self, Owner};
use crate::api::objects::meta_str;
use crate::api::status::ApiError;
use crate::api::storage::{encode, set_resource_version};

/// Transactions tried before a write gives up with a 409.
const MAX_ATTEMPTS: usize = 24;
/// Collisions in a pool after which its reservations are read in full.
const SCAN_AFTER_COLLISIONS: usize = 3;

/// Allocates from one replica's ranges.
pub struct ServiceAllocator {
    ranges: ServiceRanges,
    metrics: Option<AllocatorMetrics>,
}

impl Default for ServiceAllocator {
    fn default() -> Self {
        Self::new(ServiceRanges::default(), AllocatorMetrics::unregistered().ok())
    }
}

fn single(key: &str) -> KeyRange {
    KeyRange::single(key.as_bytes().to_vec())
}

fn compare(key: &str, target: CompareTarget) -> Compare {
    Compare { range: single(key), result: CompareResult::Equal, target }
}

fn read_key(key: &str) -> RequestOp {
    RequestOp::Range(RangeRequest { range: single(key), ..Default::default() })
}

/// Deletes the reservation of `resource` if it still names `owner` (a nested transaction, so a
/// reservation someone else holds is left alone without failing the write).
fn release_op(resource: Resource, owner: &[u8]) -> RequestOp {
    let key = reservations::key(resource);
    RequestOp::Txn(TxnRequest {
        compare: vec![compare(&key, CompareTarget::Value(owner.to_vec()))],
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest { range: single(&key), prev_kv: false })],
        failure: vec![],
    })
}

/// The key-value a failure-branch read found, if any.
fn found(resp: Option<&ResponseOp>) -> Option<&raft_store::mvcc::model::KeyValue> {
    match resp {
        Some(ResponseOp::Range(r)) => r.kvs.first(),
        _ => None,
    }
}

/// Which nested releases (from response `first` on) deleted their key.
fn releases_done(resp: &TxnResponse, first: usize) -> Vec<bool> {
    resp.responses[first.min(resp.responses.len())..]
        .iter()
        .map(|r| matches!(r, ResponseOp::Txn(t) if t.succeeded))
        .collect()
}

impl ServiceAllocator {
    pub fn new(ranges: ServiceRanges, metrics: Option<AllocatorMetrics>) -> Self {
        Self { ranges, metrics }
    }

    pub fn ranges(&self) -> &ServiceRanges {
        &self.ranges
    }

    pub fn metrics(&self) -> Option<&AllocatorMetrics> {
        self.metrics.as_ref()
    }

    fn refused(&self, e: AllocError, name: &str) -> ApiError {
        if let Some(m) = &self.metrics {
            m.refused(if matches!(e, AllocError::Full(_)) { "full" } else { "invalid" });
        }
        e.into_api_error(name)
    }

    /// One planning attempt: `new` with its values filled in, and what to reserve and release.
    fn plan(
        &self,
        old: Option<&Value>,
        new: &Value,
        taken: &BTreeSet<Resource>,
        ours: &BTreeSet<Resource>,
    ) -> Result<(Value, WritePlan), AllocError> {
        let mut obj = new.clone();
        let mut chooser = Chooser::new(&self.ranges, taken, rand::rng());
        let mut plan = plan_write(&self.ranges, old, &mut obj, &mut chooser)?;
        // Reservations found to name this very Service already (restored by repair) are kept as they are.
        plan.reserve.retain(|c| !ours.contains(&c.resource));
        Ok((obj, plan))
    }

    /// Every reserved value of `pool`, read linearizably.
    async fn scan(&self, store: &Store, pool: Pool) -> Result<Vec<Resource>, ApiError> {
        let req = RangeRequest {
            range: KeyRange::prefix(reservations::prefix(pool).as_bytes().to_vec()),
            keys_only: true,
            ..Default::default()
        };
        let (resp, _) = store.range(req, false).await?;
        Ok(resp.kvs.iter().filter_map(|kv| reservations::parse_key(&kv.key)).collect())
    }

    /// Stores Service `new` at `key` with its reservations: a create when `old` is `None`, else a
    /// replace of `old` as read at revision `old.1`. Returns the stored object (with the values
    /// filled in and its resourceVersion), or `None` when the key already exists (create) or moved
    /// on (replace).
    pub async fn write(
        &self,
        store: &Store,
        key: &str,
        old: Option<(&Value, i64)>,
        new: Value,
    ) -> Result<Option<Value>, ApiError> {
        let name = meta_str(&new, "name").to_string();
        let owner = Owner::of(&new).encode();
        let old_owner = old.map(|(o, _)| Owner::of(o).encode()).unwrap_or_default();
        let mut taken: BTreeSet<Resource> = BTreeSet::new();
        let mut ours: BTreeSet<Resource> = BTreeSet::new();
        let mut collisions = [0usize; 2];
        let mut scanned: BTreeSet<Pool> = BTreeSet::new();
        for _ in 0..MAX_ATTEMPTS {
            let (obj, plan) =
                self.plan(old.map(|(o, _)| o), &new, &taken, &ours).map_err(|e| self.refused(e, &name))?;
            let condition = match old {
                None => CompareTarget::Create(0),
                Some((_, rev)) => CompareTarget::Mod(rev),
            };
            let mut txn = TxnRequest {
                compare: vec![compare(key, condition)],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: encode(&obj),
                    ..Default::default()
                })],
                failure: vec![read_key(key)],
            };
            for claim in &plan.reserve {
                let k = reservations::key(claim.resource);
                txn.compare.push(compare(&k, CompareTarget::Create(0)));
                txn.success.push(RequestOp::Put(PutRequest {
                    key: k.clone().into_bytes(),
                    value: owner.clone(),
                    ..Default::default()
                }));
                txn.failure.push(read_key(&k));
            }
            let releases_from = txn.success.len();
            txn.success.extend(plan.release.iter().map(|r| release_op(*r, &old_owner)));
            let (resp, revision) = store.txn(txn).await?;
            if resp.succeeded {
                if let Some(m) = &self.metrics {
                    m.committed(&WritePlan {
                        reserve: plan.reserve.clone(),
                        release: plan
                            .release
                            .iter()
                            .zip(releases_done(&resp, releases_from))
                            .filter(|(_, done)| *done)
                            .map(|(r, _)| *r)
                            .collect(),
                    });
                }
                let mut out = obj;
                set_resource_version(&mut out, revision);
                return Ok(Some(out));
            }
            let current = found(resp.responses.first());
            match (old, current) {
                (None, Some(_)) => return Ok(None),
                (Some(_), None) => return Ok(None),
                (Some((_, rev)), Some(kv)) if kv.mod_revision != rev => return Ok(None),
                _ => {}
            }
            for (claim, resp) in plan.reserve.iter().zip(resp.responses.iter().skip(1)) {
                let Some(kv) = found(Some(resp)) else { continue };
                if kv.value == owner {
                    ours.insert(claim.resource);
                    continue;
                }
                if let Some(cause) = taken_cause(claim) {
                    if let Some(m) = &self.metrics {
                        m.refused("taken");
                    }
                    return Err(ApiError::invalid("", "Service", &name, vec![cause]));
                }
                let pool = claim.resource.pool();
                taken.insert(claim.resource);
                if let Some(m) = &self.metrics {
                    m.collision(pool);
                }
                let n = &mut collisions[pool as usize];
                *n += 1;
                if *n >= SCAN_AFTER_COLLISIONS && scanned.insert(pool) {
                    taken.extend(self.scan(store, pool).await?);
                }
            }
        }
        Err(ApiError::conflict("", "services", &name, "too many concurrent allocations, try again"))
    }

    /// Deletes Service `current` (read at `revision`) from `key` with the reservations it holds.
    /// Returns the deletion revision, or `None` when the Service moved on or vanished.
    pub async fn delete(
        &self,
        store: &Store,
        key: &str,
        current: &Value,
        revision: i64,
    ) -> Result<Option<i64>, ApiError> {
        let owner = Owner::of(current).encode();
        let held: Vec<Resource> = held(current).into_iter().collect();
        let mut success = vec![RequestOp::DeleteRange(DeleteRangeRequest { range: single(key), prev_kv: false })];
        success.extend(held.iter().map(|r| release_op(*r, &owner)));
        let txn = TxnRequest { compare: vec![compare(key, CompareTarget::Mod(revision))], success, failure: vec![] };
        let (resp, deleted_at) = store.txn(txn).await?;
        if !resp.succeeded {
            return Ok(None);
        }
        if let Some(m) = &self.metrics {
            for (r, done) in held.iter().zip(releases_done(&resp, 1)) {
                if done {
                    m.released(r.pool());
                }
            }
        }
        match resp.responses.first() {
            Some(ResponseOp::DeleteRange(d)) if d.deleted == 1 => Ok(Some(deleted_at)),
            _ => Ok(None),
        }
    }

    /// What a `dryRun` write of `new` over `old` would store: values filled in as a real write would,
    /// and a 422 for a requested value that is taken, with nothing written.
    pub async fn preview(&self, store: &Store, old: Option<&Value>, new: Value) -> Result<Value, ApiError> {
        let name = meta_str(&new, "name").to_string();
        let owner = Owner::of(&new).encode();
        let mut taken = BTreeSet::new();
        let mut last = new.clone();
        for _ in 0..8 {
            let (obj, plan) = self.plan(old, &new, &taken, &BTreeSet::new()).map_err(|e| self.refused(e, &name))?;
            let mut retry = false;
            for claim in &plan.reserve {
                let req = RangeRequest { range: single(&reservations::key(claim.resource)), ..Default::default() };
                let (resp, _) = store.range(req, false).await?;
                let Some(kv) = resp.kvs.first() else { continue };
                if kv.value == owner {
                    continue;
                }
                if let Some(cause) = taken_cause(claim) {
                    return Err(ApiError::invalid("", "Service", &name, vec![cause]));
                }
                taken.insert(claim.resource);
                retry = true;
            }
            last = obj;
            if !retry {
                break;
            }
        }
        Ok(last)
    }
}
