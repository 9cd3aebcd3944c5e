//! Key-space tests on a real (temporary) RocksDB: transactions, past-revision reads, compaction,
//! leases and history, with no Raft involved.

use std::cell::RefCell;

use super::current_cache::CurrentCache;
use super::model::*;
use super::reader::ReadView;
use super::writer::{ApplyOutcome, Writer};
use crate::error::{RequestError, StoreError};
use crate::storage::db::open_db;

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::sync::Arc<rocksdb::DB>,
    /// Used as the state machine uses it (write-through after each applied entry), unless `None`.
    cache: Option<RefCell<CurrentCache>>,
}

impl Fixture {
    /// A key space applied to as the state machine does, with a `CurrentCache`.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_db(&dir.path().join("db")).expect("open");
        Self { _dir: dir, db, cache: Some(RefCell::default()) }
    }

    /// Every current value read from the database.
    fn uncached() -> Self {
        Self { cache: None, ..Self::new() }
    }

    fn apply(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<(), StoreError>) -> Result<i64, StoreError> {
        self.apply_outcome(f).map(|o| o.revision)
    }

    fn apply_outcome(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<(), StoreError>,
    ) -> Result<ApplyOutcome, StoreError> {
        let cache = self.cache.as_ref().map(|c| c.borrow());
        let mut w = Writer::new(ReadView::live(&self.db))?;
        if let Some(c) = cache.as_deref() {
            w = w.with_cache(c);
        }
        f(&mut w)?;
        let (batch, mut outcome) = w.finish();
        self.db.write(batch)?;
        drop(cache);
        if let Some(c) = &self.cache {
            c.borrow_mut().record(std::mem::take(&mut outcome.current));
        }
        Ok(outcome)
    }

    fn put(&self, k: &str, v: &str) -> i64 {
        self.apply(|w| {
            w.txn(&TxnRequest::ops(vec![RequestOp::Put(PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })]))
            .map(|_| ())
        })
        .expect("put")
    }

    fn delete(&self, k: &str) -> i64 {
        self.apply(|w| {
            w.txn(&TxnRequest::ops(vec![RequestOp::DeleteRange(DeleteRangeRequest {
                range: KeyRange::single(k),
                prev_kv: false,
            })]))
            .map(|_| ())
        })
        .expect("delete")
    }

    fn get_at(&self, range: KeyRange, revision: i64) -> Result<RangeResponse, StoreError> {
        ReadView::live(&self.db).range(&RangeRequest { range, revision, ..Default::default() })
    }
}

#[test]
fn revisions_versions_and_past_reads() {
    let f = Fixture::new();
    // An empty store is at revision 1, so the first write gets 2 (as in etcd).
    assert_eq!(ReadView::live(&f.db).revision().expect("rev"), 1);
    assert_eq!(f.put("a", "1"), 2);
    assert_eq!(f.put("b", "1"), 3);
    assert_eq!(f.put("a", "2"), 4);
    assert_eq!(f.delete("b"), 5);
    assert_eq!(f.put("b", "new"), 6);
    let now = f.get_at(KeyRange::prefix(""), 0).expect("now");
    assert_eq!(now.count, 2);
    let a = &now.kvs[0];
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 4, 2));
    let b = &now.kvs[1];
    assert_eq!((b.create_revision, b.version), (6, 1), "recreated key starts a new generation");
    let at3 = f.get_at(KeyRange::prefix(""), 3).expect("at 3");
    let vals: Vec<_> = at3.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
    assert_eq!(vals, vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"1".to_vec())]);
    assert_eq!(f.get_at(KeyRange::single("b"), 5).expect("at 5").count, 0, "deleted at 5");
    assert!(matches!(
        f.get_at(KeyRange::single("a"), 99),
        Err(StoreError::Request(RequestError::FutureRevision { .. }))
    ));
}

#[test]
fn failed_transactions_change_nothing() {
    let f = Fixture::new();
    f.put("k", "v");
    // A put with an unknown lease fails as a whole, even after an earlier op in the same txn.
    let err = f
        .apply(|w| {
            w.txn(&TxnRequest::ops(vec![
                RequestOp::Put(PutRequest { key: "x".into(), value: "1".into(), ..Default::default() }),
                RequestOp::Put(PutRequest { key: "y".into(), value: "1".into(), lease: 77, ..Default::default() }),
            ]))
            .map(|_| ())
        })
        .expect_err("unknown lease");
    assert!(matches!(err, StoreError::Request(RequestError::LeaseNotFound { id: 77 })));
    assert_eq!(ReadView::live(&f.db).revision().expect("rev"), 2, "the failed txn took no revision");
    let dup = f
        .apply(|w| {
            let p = RequestOp::Put(PutRequest { key: "d".into(), ..Default::default() });
            w.txn(&TxnRequest::ops(vec![p.clone(), p])).map(|_| ())
        })
        .expect_err("duplicate");
    assert!(matches!(dup, StoreError::Request(RequestError::DuplicateKey { .. })));
}

#[test]
fn compares_and_ranges_inside_a_txn_see_earlier_writes() {
    let f = Fixture::new();
    f.put("k", "v1");
    let mut resp = None;
    f.apply(|w| {
        let t = TxnRequest {
            compare: vec![Compare {
                range: KeyRange::single("k"),
                result: CompareResult::Equal,
                target: CompareTarget::Value(b"v1".to_vec()),
            }],
            success: vec![
                RequestOp::Put(PutRequest { key: "k".into(), value: "v2".into(), ..Default::default() }),
                RequestOp::Range(RangeRequest { range: KeyRange::single("k"), ..Default::default() }),
            ],
            failure: vec![],
        };
        resp = Some(w.txn(&t)?);
        Ok(())
    })
    .expect("txn");
    let resp = resp.expect("response");
    assert!(resp.succeeded);
    match &resp.responses[1] {
        ResponseOp::Range(r) => assert_eq!(r.kvs[0].value, b"v2"),
        other => panic!("unexpected {other:?}"),
    }
    // A missing key compares as version 0 but never equal on value.
    let mut missing = None;
    f.apply(|w| {
        let t = TxnRequest {
            compare: vec![Compare {
                range: KeyRange::single("nope"),
                result: CompareResult::Equal,
                target: CompareTarget::Version(0),
            }],
            success: vec![],
            failure: vec![],
        };
        missing = Some(w.txn(&t)?.succeeded);
        Ok(())
    })
    .expect("txn");
    assert_eq!(missing, Some(true));
}

#[test]
fn compaction_keeps_reads_at_and_after_the_compact_revision() {
    let f = Fixture::new();
    f.put("a", "1"); // 2
    f.put("a", "2"); // 3
    f.put("b", "1"); // 4
    f.delete("b"); // 5
    f.put("a", "3"); // 6
    f.apply(|w| w.compact(5)).expect("compact");
    let at5 = f.get_at(KeyRange::prefix(""), 5).expect("read at compact revision");
    assert_eq!(at5.kvs.len(), 1);
    assert_eq!(at5.kvs[0].value, b"2");
    assert!(matches!(
        f.get_at(KeyRange::single("a"), 4),
        Err(StoreError::Request(RequestError::Compacted { compact_revision: 5, .. }))
    ));
    // History from the compact revision on is intact.
    let mut revs = Vec::new();
    ReadView::live(&f.db)
        .history(&KeyRange::prefix(""), 5, 6, true, 100, |r, e| revs.push((r, e.kind, e.prev_kv.is_some())))
        .expect("history");
    assert_eq!(revs, vec![(5, EventKind::Delete, false), (6, EventKind::Put, true)]);
    assert!(f.apply(|w| w.compact(4)).is_err(), "compacting backwards is rejected");
}

#[test]
fn lease_revoke_deletes_attached_keys_in_one_revision() {
    let f = Fixture::new();
    f.apply(|w| w.lease_grant(5, 10).map(|_| ())).expect("grant");
    f.apply(|w| {
        w.txn(&TxnRequest::ops(vec![
            RequestOp::Put(PutRequest { key: "l1".into(), value: "x".into(), lease: 5, ..Default::default() }),
            RequestOp::Put(PutRequest { key: "l2".into(), value: "x".into(), lease: 5, ..Default::default() }),
        ]))
        .map(|_| ())
    })
    .expect("put");
    f.put("free", "x");
    assert_eq!(ReadView::live(&f.db).lease_keys(5).expect("keys").len(), 2);
    let rev = f.apply(|w| w.lease_revoke(5)).expect("revoke");
    assert_eq!(rev, 4);
    let left = f.get_at(KeyRange::prefix(""), 0).expect("now");
    assert_eq!(left.kvs.len(), 1);
    assert_eq!(left.kvs[0].key, b"free");
    assert!(ReadView::live(&f.db).lease(5).expect("lease").is_none());
}

/// The same mixed history (puts with leases, ignore_value, deletes, rejected and compare-failing
/// transactions, lease revokes, several commands per entry) applied with and without the current
/// value cache leaves the same key space, the same history and the same watch events.
#[test]
fn the_current_value_cache_changes_no_outcome() {
    let cached = Fixture::new();
    let uncached = Fixture::uncached();
    let mut seed = 7u64;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut script: Vec<Vec<TxnRequest>> = Vec::new();
    for _ in 0..300 {
        let mut entry = Vec::new();
        for _ in 0..=next(3) {
            let key = format!("k{}", next(12));
            let value = format!("v{}", next(1000));
            let put = |lease: i64, ignore_value: bool| {
                RequestOp::Put(PutRequest {
                    key: key.clone().into(),
                    value: value.clone().into(),
                    lease,
                    ignore_value,
                    prev_kv: true,
                    ..Default::default()
                })
            };
            let op = match next(6) {
                0 => {
                    RequestOp::DeleteRange(DeleteRangeRequest { range: KeyRange::single(key.as_str()), prev_kv: true })
                }
                1 => put(0, true),
                2 => put(5, false),
                _ => put(0, false),
            };
            let compare = if next(4) == 0 {
                vec![Compare {
                    range: KeyRange::single(key.as_str()),
                    target: CompareTarget::Version(next(3) as i64),
                    result: CompareResult::Equal,
                }]
            } else {
                Vec::new()
            };
            entry.push(TxnRequest { compare, success: vec![op], failure: Vec::new() });
        }
        script.push(entry);
    }
    let mut revoke_at = 0;
    for (i, entry) in script.iter().enumerate() {
        let mut outcomes = Vec::new();
        for f in [&cached, &uncached] {
            if i % 50 == 0 {
                // Lease 5 comes and goes, taking its keys with it.
                let _ = f.apply(|w| w.lease_revoke(5));
                f.apply(|w| w.lease_grant(5, 60).map(|_| ())).expect("grant");
                revoke_at += 1;
            }
            let outcome = f.apply_outcome(|w| {
                for txn in entry {
                    let sp = w.savepoint();
                    match w.txn(txn) {
                        Ok(_) => {}
                        Err(StoreError::Request(_)) => w.rollback(sp),
                        Err(e) => return Err(e),
                    }
                    w.end_command();
                }
                Ok(())
            });
            outcomes.push(outcome.map(|o| (o.revision, format!("{:?}", o.revisions))).expect("apply"));
        }
        assert_eq!(outcomes[0], outcomes[1], "entry {i}: revision and events differ");
    }
    assert!(revoke_at > 1);
    let all = |f: &Fixture| f.get_at(KeyRange::prefix(""), 0).expect("range").kvs;
    assert_eq!(all(&cached), all(&uncached), "the key spaces differ");
    let rev = ReadView::live(&cached.db).revision().expect("rev");
    for r in (2..=rev).step_by(17) {
        assert_eq!(
            cached.get_at(KeyRange::prefix(""), r).expect("past").kvs,
            uncached.get_at(KeyRange::prefix(""), r).expect("past").kvs,
            "history at {r} differs"
        );
    }
    assert!(cached.cache.as_ref().is_some_and(|c| !c.borrow().is_empty()), "the cache was used");
}
