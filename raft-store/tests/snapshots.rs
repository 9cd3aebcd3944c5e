//! A follower that falls behind a log purge catches up by snapshot; its watches either continue
//! gap-free (history retained in the snapshot) or end with the compacted error.

mod common;

use std::time::Duration;

use common::{client, TestCluster};
use etcd_client::{GetOptions, WatchOptions};

fn small_snapshots(c: &mut raft_store::StoreConfig) {
    c.snapshot_after_entries = 50;
    c.keep_entries_after_snapshot = 10;
}

/// Snapshots the leader and purges its whole log, so a lagging follower can only catch up by snapshot.
async fn snapshot_and_purge(cluster: &TestCluster, leader: u64) {
    let raft = cluster.store(leader).raft();
    let applied = raft.metrics().borrow().last_applied.map(|l| l.index).expect("leader applied entries");
    raft.trigger().snapshot().await.expect("trigger snapshot");
    raft.wait(Some(Duration::from_secs(20)))
        .metrics(|m| m.snapshot.map(|s| s.index) >= Some(applied), "snapshot covers applied log")
        .await
        .expect("snapshot built");
    raft.trigger().purge_log(applied).await.expect("trigger purge");
    raft.wait(Some(Duration::from_secs(20)))
        .metrics(|m| m.purged.map(|p| p.index) >= Some(applied), "log purged")
        .await
        .expect("log purged");
}

async fn wait_applied(cluster: &TestCluster, id: u64, revision: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cluster.store(id).revision() < revision {
        assert!(tokio::time::Instant::now() < deadline, "replica {id} did not reach revision {revision}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_follower_installs_snapshot_and_watch_continues_gap_free() {
    let mut cluster = TestCluster::start(3, small_snapshots).await;
    let leader = cluster.leader().await;
    let lagging = cluster.follower_of(leader);
    let mut c = client(&cluster.endpoint(leader)).await;
    let first = c.put("s/0", "v", None).await.expect("put").header().expect("h").revision();

    let mut w = client(&cluster.endpoint(lagging)).await;
    let mut stream =
        w.watch("s/", Some(WatchOptions::new().with_prefix().with_start_revision(first))).await.expect("watch");

    cluster.partition(lagging).await;
    let mut last = first;
    for i in 1..300 {
        last = c.put(format!("s/{i}"), "v", None).await.expect("put").header().expect("h").revision();
    }
    // The leader has snapshotted and purged the entries the lagging follower needs.
    snapshot_and_purge(&cluster, leader).await;
    cluster.heal(lagging).await;
    wait_applied(&cluster, lagging, last).await;
    let snap = cluster.store(lagging).raft().metrics().borrow().snapshot;
    assert!(snap.is_some(), "follower caught up through a snapshot");

    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen.last().copied().unwrap_or(0) < last {
            let resp = stream.message().await.expect("stream").expect("open");
            assert!(!resp.canceled(), "watch must continue: history is retained");
            for e in resp.events() {
                seen.push(e.kv().expect("kv").mod_revision());
            }
        }
    })
    .await
    .expect("watch caught up");
    let expected: Vec<i64> = (first..=last).collect();
    assert_eq!(seen, expected);

    let mut f = client(&cluster.endpoint(lagging)).await;
    let r = f.get("s/", Some(GetOptions::new().with_prefix().with_count_only())).await.expect("get");
    assert_eq!(r.count(), 300);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_past_compaction_ends_watch_with_compacted_error() {
    // No automatic snapshots: the only snapshot the follower can get is the one taken after the
    // compaction (an older one would let it continue gap-free, which is correct but not this test).
    let mut cluster = TestCluster::start(3, |c| c.snapshot_after_entries = 1_000_000).await;
    let leader = cluster.leader().await;
    let lagging = cluster.follower_of(leader);
    let mut c = client(&cluster.endpoint(leader)).await;
    let first = c.put("c/0", "v", None).await.expect("put").header().expect("h").revision();
    wait_applied(&cluster, lagging, first).await;

    let mut w = client(&cluster.endpoint(lagging)).await;
    let mut stream = w.watch("c/", Some(WatchOptions::new().with_prefix())).await.expect("watch");
    let created = stream.message().await.expect("stream").expect("created");
    assert!(created.created());

    cluster.partition(lagging).await;
    let mut last = first;
    for i in 1..200 {
        last = c.put(format!("c/{i}"), "v", None).await.expect("put").header().expect("h").revision();
    }
    c.compact(last - 5, None).await.expect("compact");
    snapshot_and_purge(&cluster, leader).await;
    cluster.heal(lagging).await;

    let resp = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let resp = stream.message().await.expect("stream").expect("open");
            if resp.canceled() {
                return resp;
            }
            let revs: Vec<i64> = resp.events().iter().filter_map(|e| e.kv().map(|kv| kv.mod_revision())).collect();
            assert!(
                revs.is_empty(),
                "no events may be delivered across the gap (first {first}, last {last}): got {revs:?}"
            );
        }
    })
    .await
    .expect("watch ended");
    assert_eq!(resp.compact_revision(), last - 5);

    // Starting a watch below the compact revision fails the same way.
    let mut s2 = w.watch("c/", Some(WatchOptions::new().with_prefix().with_start_revision(2))).await.expect("watch");
    let mut ended = None;
    while ended.is_none() {
        let r = s2.message().await.expect("stream").expect("open");
        if r.canceled() {
            ended = Some(r.compact_revision());
        }
    }
    assert_eq!(ended, Some(last - 5));
    cluster.shutdown().await;
}
