//! A follower acknowledges an etcd client's write once the leader has applied it, before it has
//! applied the write itself (`WriteAck::Leader`). Its clients must still read their own writes
//! there: a serializable read waits for the acknowledged revision, and a watch "from now" starts
//! after it. The follower here is held back from applying by cutting the leader's messages to it
//! (its own requests to the leader still go through).

mod common;

use std::time::Duration;

use common::{client, TestCluster};
use etcd_client::{EventType, GetOptions, WatchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_has_not_applied_an_acknowledged_write_still_shows_it_to_its_clients() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower_of(leader);
    let mut c = client(&cluster.endpoint(follower)).await;
    c.put("/ack/k", "old", None).await.expect("first put");

    cluster.partition(follower).await;
    let before = cluster.store(follower).revision();
    let put = c.put("/ack/k", "new", None).await.expect("put through the cut-off follower");
    let acked = put.header().expect("header").revision();
    assert!(acked > before, "the put got a new revision");
    assert_eq!(
        cluster.store(follower).revision(),
        before,
        "the follower acknowledged the write without applying it (it cannot hear the leader)"
    );

    // A serializable read on the follower must not answer from before the write.
    let mut reader = c.clone();
    let mut read = tokio::spawn(async move {
        reader.get("/ack/k", Some(GetOptions::new().with_serializable())).await.expect("serializable get")
    });
    // A watch from now on must not report the acknowledged write as new.
    let mut events = c.watch("/ack/", Some(WatchOptions::new().with_prefix())).await.expect("watch");
    // (Without the fence it answers at once, with the old value.)
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut read).await.is_err(),
        "the serializable read waits for the acknowledged revision"
    );

    cluster.heal(follower).await;
    let got = read.await.expect("read task");
    assert_eq!(got.kvs()[0].value(), b"new", "the client reads its own write on the follower");
    assert!(got.header().expect("header").revision() >= acked);

    c.put("/ack/later", "x", None).await.expect("put after healing");
    let first = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .expect("a watch event in time")
            .expect("watch stream")
            .expect("watch open");
        if let Some(e) = msg.events().first() {
            break e.clone();
        }
    };
    assert_eq!(first.event_type(), EventType::Put);
    let kv = first.kv().expect("kv");
    assert_eq!(kv.key(), b"/ack/later", "the watch started after the acknowledged write");
    assert!(kv.mod_revision() > acked);
    cluster.shutdown().await;
}
