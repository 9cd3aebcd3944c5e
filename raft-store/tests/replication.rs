//! In-process 3-replica tests: election, replication, writes and linearizable reads through every
//! replica, watch order across a leader change, learner add / promote / voter removal, and a lone
//! replica that is its own quorum.

mod common;

use std::time::Duration;

use common::{client, TestCluster};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};

/// The mod revisions a watch delivers, in order, until it has delivered `last`.
async fn revisions_until(stream: &mut etcd_client::WatchStream, last: i64, within: Duration) -> Vec<i64> {
    let mut seen = Vec::new();
    tokio::time::timeout(within, async {
        while seen.last().copied().unwrap_or(0) < last {
            let resp = stream.message().await.expect("watch stream").expect("watch open");
            for e in resp.events() {
                seen.push(e.kv().expect("kv").mod_revision());
            }
        }
    })
    .await
    .expect("watcher caught up");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elects_one_leader_and_replicates_through_every_replica() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    assert!((1..=3).contains(&leader));

    // Writes through every replica (followers forward to the leader) ...
    for id in 1..=3u64 {
        let mut c = client(&cluster.endpoint(id)).await;
        for i in 0..10 {
            let resp = c.put(format!("k/{id}/{i}"), format!("v{i}"), None).await.expect("put");
            assert!(resp.header().expect("header").revision() > 0);
        }
    }
    // ... and linearizable reads through every replica see all of them immediately.
    for id in 1..=3u64 {
        let mut c = client(&cluster.endpoint(id)).await;
        let r = c.get("k/", Some(GetOptions::new().with_prefix())).await.expect("get");
        assert_eq!(r.count(), 30, "replica {id} sees every write");
        assert_eq!(r.header().expect("header").revision(), 31, "30 writes after the initial revision 1");
    }
    // Read-your-write on a follower right after a write through another follower.
    let followers: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    let mut a = client(&cluster.endpoint(followers[0])).await;
    let mut b = client(&cluster.endpoint(followers[1])).await;
    for i in 0..20 {
        a.put("ryw", format!("{i}"), None).await.expect("put");
        let got = b.get("ryw", None).await.expect("get");
        assert_eq!(got.kvs()[0].value_str().expect("utf8"), format!("{i}"), "stale linearizable read");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_swap_and_history() {
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.leader().await;
    let mut c = client(&cluster.endpoint(2)).await;
    let r1 = c.put("cas", "a", None).await.expect("put").header().expect("h").revision();
    let txn = Txn::new()
        .when([Compare::mod_revision("cas", CompareOp::Equal, r1)])
        .and_then([TxnOp::put("cas", "b", None)])
        .or_else([TxnOp::get("cas", None)]);
    assert!(c.txn(txn.clone()).await.expect("txn").succeeded(), "first CAS wins");
    let second = c.txn(txn).await.expect("txn");
    assert!(!second.succeeded(), "second CAS from the same revision loses");
    // The old value is still readable at its revision.
    let old = c.get("cas", Some(GetOptions::new().with_revision(r1))).await.expect("get at rev");
    assert_eq!(old.kvs()[0].value(), b"a");
    let now = c.get("cas", None).await.expect("get");
    assert_eq!(now.kvs()[0].value(), b"b");
    assert_eq!(now.kvs()[0].version(), 2);
    assert_eq!(now.kvs()[0].create_revision(), r1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_stays_ordered_and_gap_free_across_a_leader_change() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let watch_on = cluster.follower_of(leader);
    let mut w = client(&cluster.endpoint(watch_on)).await;
    let mut stream =
        w.watch("w/", Some(WatchOptions::new().with_prefix().with_start_revision(1))).await.expect("watch");

    let writer_on = (1..=3).find(|i| *i != leader && *i != watch_on).expect("another follower");
    let mut c = client(&cluster.endpoint(writer_on)).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(c.put(format!("w/{i}"), "x", None).await.expect("put").header().expect("h").revision());
    }
    let old = cluster.stop(leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    for i in 20..40 {
        acked.push(
            c.put(format!("w/{i}"), "x", None).await.expect("put after failover").header().expect("h").revision(),
        );
    }
    cluster.restart(old).await;
    for i in 40..50 {
        acked.push(c.put(format!("w/{i}"), "x", None).await.expect("put").header().expect("h").revision());
    }

    let seen = revisions_until(&mut stream, *acked.last().expect("acked"), Duration::from_secs(20)).await;
    assert_eq!(seen, acked, "every acknowledged revision exactly once, in order");
    cluster.shutdown().await;
}

/// Many concurrent clients on every replica: their transactions share log entries (batches), yet
/// each acknowledged put has a revision of its own, every revision from 2 up is used exactly once,
/// compare-and-swaps on shared counters never lose an update, and a watcher sees it all in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_entries_but_keep_one_revision_each() {
    const CLIENTS_PER_REPLICA: u64 = 16;
    const PUTS_PER_CLIENT: u64 = 20;
    const INCREMENTS_PER_CLIENT: u64 = 5;
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.leader().await;
    let mut w = client(&cluster.endpoint(1)).await;
    let mut stream =
        w.watch("c/", Some(WatchOptions::new().with_prefix().with_start_revision(1))).await.expect("watch");

    let mut tasks = Vec::new();
    for replica in 1..=3u64 {
        for n in 0..CLIENTS_PER_REPLICA {
            let endpoint = cluster.endpoint(replica);
            tasks.push(tokio::spawn(async move {
                let mut c = client(&endpoint).await;
                let mut revisions = Vec::new();
                for i in 0..PUTS_PER_CLIENT {
                    let key = format!("c/put/{replica}/{n}/{i}");
                    revisions.push(c.put(key, "v", None).await.expect("put").header().expect("h").revision());
                }
                // Increment a counter shared by this replica's clients with compare-and-swap retries.
                let counter = format!("c/counter/{replica}");
                let mut done = 0;
                while done < INCREMENTS_PER_CLIENT {
                    let cur = c.get(counter.as_str(), None).await.expect("get");
                    let (value, mod_rev) = match cur.kvs().first() {
                        Some(kv) => (kv.value_str().expect("utf8").parse::<u64>().expect("number"), kv.mod_revision()),
                        None => (0, 0),
                    };
                    let txn = Txn::new()
                        .when([Compare::mod_revision(counter.as_str(), CompareOp::Equal, mod_rev)])
                        .and_then([TxnOp::put(counter.as_str(), (value + 1).to_string(), None)]);
                    let resp = c.txn(txn).await.expect("txn");
                    if resp.succeeded() {
                        revisions.push(resp.header().expect("h").revision());
                        done += 1;
                    }
                }
                revisions
            }));
        }
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("client task"));
    }
    acked.sort_unstable();
    let writes = 3 * CLIENTS_PER_REPLICA * (PUTS_PER_CLIENT + INCREMENTS_PER_CLIENT);
    let expected: Vec<i64> = (2..2 + writes as i64).collect();
    assert_eq!(acked, expected, "each acknowledged write has its own revision, none skipped");
    let mut c = client(&cluster.endpoint(2)).await;
    for replica in 1..=3u64 {
        let got = c.get(format!("c/counter/{replica}"), None).await.expect("get");
        let value: u64 = got.kvs()[0].value_str().expect("utf8").parse().expect("number");
        assert_eq!(value, CLIENTS_PER_REPLICA * INCREMENTS_PER_CLIENT, "no increment of replica {replica} lost");
    }

    let seen = revisions_until(&mut stream, *acked.last().expect("acked"), Duration::from_secs(30)).await;
    assert_eq!(seen, expected, "the watcher sees every revision once, in order");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn learner_is_added_promoted_and_a_voter_removed() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let mut c = client(&cluster.endpoint(leader)).await;
    for i in 0..50 {
        c.put(format!("m/{i}"), "v", None).await.expect("put");
    }
    let addr = cluster.launch_joiner(4).await;
    cluster.store(leader).add_learner(4, addr).await.expect("add learner");
    let members = cluster.store(leader).members().expect("members");
    assert!(members.iter().any(|m| m.id == 4 && m.is_learner), "{members:?}");
    cluster.store(leader).promote(4).await.expect("promote");
    let members = cluster.store(leader).members().expect("members");
    assert_eq!(members.iter().filter(|m| !m.is_learner).count(), 4, "{members:?}");

    // The new voter serves linearizable reads with everything written before it joined.
    let mut c4 = client(&cluster.endpoint(4)).await;
    let r = c4.get("m/", Some(GetOptions::new().with_prefix().with_count_only())).await.expect("get");
    assert_eq!(r.count(), 50);

    // Remove a voter that is not the leader; the rest keep working.
    let victim = cluster.follower_of(leader);
    cluster.store(leader).remove_member(victim).await.expect("remove");
    let members = cluster.store(leader).members().expect("members");
    assert!(!members.iter().any(|m| m.id == victim), "{members:?}");
    assert_eq!(members.len(), 3);
    cluster.stop(victim).await;
    c4.put("after-removal", "ok", None).await.expect("write after removal");
    let got = c.get("after-removal", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"ok");
    cluster.shutdown().await;
}

/// A lone replica is its own quorum, so its writes commit only once the report of its own log flush
/// reaches openraft (the leader no longer waits for that flush inline; see
/// `third_party/openraft/GANTRY-PATCH.md`). Every acknowledged write must also survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_replica_commits_through_its_own_log_flush() {
    let mut cluster = TestCluster::start(1, |_| {}).await;
    assert_eq!(cluster.leader().await, 1);
    let mut c = client(&cluster.endpoint(1)).await;
    for i in 0..50i64 {
        let resp = c.put(format!("solo/{i:02}"), format!("v{i}"), None).await.expect("put");
        assert_eq!(resp.header().expect("header").revision(), i + 2, "one revision per write after revision 1");
    }

    let old = cluster.stop(1).await;
    cluster.restart(old).await;
    assert_eq!(cluster.leader().await, 1);
    let mut c = client(&cluster.endpoint(1)).await;
    let r = c.get("solo/", Some(GetOptions::new().with_prefix())).await.expect("get");
    assert_eq!(r.count(), 50, "every acknowledged write survives the restart");
    assert_eq!(r.kvs()[49].value_str().expect("utf8"), "v49");
    let resp = c.put("solo/after", "x", None).await.expect("put after restart");
    assert_eq!(resp.header().expect("header").revision(), 52);
    cluster.shutdown().await;
}
