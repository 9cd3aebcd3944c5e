//! Writes whose callers are dropped halfway (a request whose client went away) must not hold up
//! later writes through the same replica: the write queue (`write_batcher`) has a fixed number of
//! batch slots, and a slot that went with a dropped caller would stall every write after it.

mod common;

use std::time::Duration;

use common::TestCluster;
use raft_store::mvcc::model::{PutRequest, RequestOp, TxnRequest};

fn put(key: &str) -> TxnRequest {
    TxnRequest::ops(vec![RequestOp::Put(PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() })])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_dropped_while_the_leader_is_unreachable_do_not_stall_later_writes() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower_of(leader);
    // The leader keeps replicating over the streams it opened, but the follower cannot reach it to
    // forward a write: each write below stays in flight until it is dropped.
    cluster.partition(leader).await;
    for i in 0..4 {
        let pending =
            tokio::time::timeout(Duration::from_millis(100), cluster.store(follower).txn(put(&format!("/q/{i}"))));
        assert!(pending.await.is_err(), "write {i} cannot finish while the leader is unreachable");
    }
    cluster.heal(leader).await;
    for i in 0..3 {
        let done = tokio::time::timeout(Duration::from_secs(15), cluster.store(follower).txn(put(&format!("/r/{i}"))))
            .await
            .unwrap_or_else(|_| panic!("write {i} after healing is stuck behind the dropped ones"));
        done.expect("write after healing");
    }
    cluster.shutdown().await;
}
