//! Applying batched log entries: each transaction in a batch gets its own revision and result, later
//! ones see earlier ones' writes, a rejected one leaves nothing behind, watchers see one revision per
//! transaction in order, and a restart resumes after the whole entry.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};
use raft_store::lease::tracker::LeaseTracker;
use raft_store::mvcc::model::{
    Compare, CompareResult, CompareTarget, EventKind, KeyRange, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use raft_store::mvcc::reader::ReadView;
use raft_store::storage::db::open_db;
use raft_store::storage::state_machine::{RocksStateMachine, StateMachineShared};
use raft_store::types::{Command, CommandResponse, CommandResult, Entry, LogId};
use raft_store::watch::hub::{HubMessage, WatchHub};
use raft_store::RequestError;

fn put(key: &str, value: &str) -> Command {
    Command::Txn(TxnRequest::ops(vec![RequestOp::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    })]))
}

/// Sets `key` to `to` only if it currently holds `from`.
fn cas(key: &str, from: &str, to: &str) -> Command {
    Command::Txn(TxnRequest {
        compare: vec![Compare {
            range: KeyRange::single(key),
            result: CompareResult::Equal,
            target: CompareTarget::Value(from.as_bytes().to_vec()),
        }],
        success: vec![RequestOp::Put(PutRequest { key: key.into(), value: to.into(), ..Default::default() })],
        failure: vec![],
    })
}

fn entry(index: u64, cmd: Command) -> Entry {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(cmd) }
}

struct Fixture {
    dir: tempfile::TempDir,
    db: Arc<rocksdb::DB>,
    hub: Arc<WatchHub>,
    sm: RocksStateMachine,
}

fn open(dir: tempfile::TempDir) -> Fixture {
    let db = open_db(&dir.path().join("db")).expect("open db");
    let hub = Arc::new(WatchHub::new(ReadView::live(&db).revision().expect("revision")));
    let shared = StateMachineShared {
        db: db.clone(),
        hub: hub.clone(),
        leases: Arc::new(LeaseTracker::default()),
        snapshot_dir: dir.path().join("snapshots"),
    };
    let sm = RocksStateMachine::open(shared).expect("open state machine");
    Fixture { dir, db, hub, sm }
}

fn value(db: &rocksdb::DB, key: &str) -> Option<(Vec<u8>, i64, i64)> {
    let resp =
        ReadView::live(db).range(&RangeRequest { range: KeyRange::single(key), ..Default::default() }).expect("range");
    resp.kvs.first().map(|kv| (kv.value.clone(), kv.mod_revision, kv.version))
}

fn batch_results(resp: &CommandResponse) -> &[CommandResponse] {
    match &resp.result {
        CommandResult::Batch(r) => r,
        other => panic!("expected batch result, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_applies_in_order_with_one_revision_per_transaction() {
    let mut f = open(tempfile::tempdir().expect("tempdir"));
    let (start, mut rx) = f.hub.subscribe();
    assert_eq!(start, 1);
    let batch = Command::Batch(vec![
        put("a", "1"),      // revision 2
        cas("a", "1", "2"), // sees the put above: revision 3
        cas("a", "1", "x"), // compare fails: no write, no revision
        put("b", "1"),      // revision 4
        Command::Txn(TxnRequest::ops(vec![
            RequestOp::Put(PutRequest { key: "c".into(), value: "1".into(), ..Default::default() }),
            RequestOp::Put(PutRequest { key: "d".into(), lease: 42, ..Default::default() }),
        ])), // unknown lease: rejected after writing "c", which must be rolled back
        put("a", "3"),      // revision 5
        Command::Compact { revision: 1 }, // not batchable: rejected, nothing written
    ]);
    let out = f.sm.apply(vec![entry(1, batch)]).await.expect("apply");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].revision, 5);
    let results = batch_results(&out[0]);
    let revisions: Vec<i64> = results.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, vec![2, 3, 3, 4, 4, 5, 5]);
    let succeeded: Vec<Option<bool>> = results
        .iter()
        .map(|r| match &r.result {
            CommandResult::Txn(t) => Some(t.succeeded),
            _ => None,
        })
        .collect();
    assert_eq!(succeeded, vec![Some(true), Some(true), Some(false), Some(true), None, Some(true), None]);
    assert!(matches!(results[4].result, CommandResult::Rejected(RequestError::LeaseNotFound { id: 42 })));
    assert!(matches!(results[6].result, CommandResult::Rejected(RequestError::Invalid { .. })));

    assert_eq!(value(&f.db, "a"), Some((b"3".to_vec(), 5, 3)));
    assert_eq!(value(&f.db, "b"), Some((b"1".to_vec(), 4, 1)));
    assert_eq!(value(&f.db, "c"), None, "the rejected transaction's earlier write was rolled back");
    assert_eq!(ReadView::live(&f.db).revision().expect("revision"), 5);
    // Past revisions written inside the batch are readable afterwards.
    let at3 = ReadView::live(&f.db)
        .range(&RangeRequest { range: KeyRange::single("a"), revision: 3, ..Default::default() })
        .expect("range at 3");
    assert_eq!(at3.kvs[0].value, b"2");

    // Watchers get one message per revision, in order, with the right events.
    let mut seen = Vec::new();
    while let Ok(msg) = rx.try_recv() {
        match msg {
            HubMessage::Revision(r) => seen.push((
                r.revision,
                r.events.iter().map(|e| (e.kind, String::from_utf8_lossy(&e.kv.key).into_owned())).collect::<Vec<_>>(),
            )),
            HubMessage::Reset => panic!("unexpected reset"),
        }
    }
    let put_of = |k: &str| vec![(EventKind::Put, k.to_string())];
    assert_eq!(seen, vec![(2, put_of("a")), (3, put_of("a")), (4, put_of("b")), (5, put_of("a"))]);
    assert_eq!(f.hub.revision(), 5);
}

#[tokio::test]
async fn restart_resumes_after_a_whole_batch() {
    let mut f = open(tempfile::tempdir().expect("tempdir"));
    f.sm.apply(vec![entry(1, Command::Batch(vec![put("a", "1"), put("a", "2")]))]).await.expect("apply");
    let Fixture { dir, db, sm, .. } = f;
    drop(sm);
    drop(db);
    let mut f = open(dir);
    let (applied, _) = f.sm.applied_state().await.expect("applied state");
    assert_eq!(applied.map(|l| l.index), Some(1));
    assert_eq!(value(&f.db, "a"), Some((b"2".to_vec(), 3, 2)));
    // Re-applying the same entry would move last_applied backwards: refused, nothing written twice.
    assert!(f.sm.apply(vec![entry(1, Command::Batch(vec![put("a", "x")]))]).await.is_err());
    assert_eq!(value(&f.db, "a"), Some((b"2".to_vec(), 3, 2)));
    let out = f.sm.apply(vec![entry(2, Command::Batch(vec![put("b", "1")]))]).await.expect("next entry");
    assert_eq!(batch_results(&out[0])[0].revision, 4);
    drop(f.dir);
}

#[test]
fn only_current_state_transactions_are_batchable() {
    assert!(put("a", "1").batchable());
    assert!(cas("a", "1", "2").batchable());
    let at_revision = Command::Txn(TxnRequest::ops(vec![RequestOp::Range(RangeRequest {
        range: KeyRange::single("a"),
        revision: 7,
        ..Default::default()
    })]));
    assert!(!at_revision.batchable());
    let nested = Command::Txn(TxnRequest::ops(vec![RequestOp::Txn(TxnRequest {
        compare: vec![],
        success: vec![],
        failure: vec![RequestOp::Range(RangeRequest {
            range: KeyRange::single("a"),
            revision: 3,
            ..Default::default()
        })],
    })]));
    assert!(!nested.batchable());
    assert!(!Command::Compact { revision: 3 }.batchable());
    assert!(!Command::LeaseGrant { id: 1, ttl: 5 }.batchable());
}
