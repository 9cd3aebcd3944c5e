//! The cache against a real single-replica store: it follows writes, serves consistent snapshots, and
//! replays history without gaps or duplicates.

use std::collections::BTreeMap;
use std::time::Duration;

use raft_store::{Store, StoreConfig};
use serde_json::{json, Value};

use super::EventType;
use crate::api::resources::{self, ResourceDef};
use crate::api::storage::ObjectStore;

async fn single_replica(dir: &std::path::Path) -> Store {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut config = StoreConfig::new(1, dir, BTreeMap::from([(1, format!("127.0.0.1:{port}"))]));
    config.heartbeat_interval = Duration::from_millis(50);
    config.election_timeout_min = Duration::from_millis(150);
    config.election_timeout_max = Duration::from_millis(300);
    let store = Store::open(config).await.expect("open store");
    store.wait_for_leader(Duration::from_secs(10)).await.expect("leader");
    store
}

fn configmaps() -> &'static ResourceDef {
    resources::find("", "v1", "configmaps").expect("configmaps")
}

fn cm(ns: &str, name: &str, value: &str) -> Value {
    json!({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":name,"namespace":ns,"labels":{"v":value}},
        "data":{"v":value}})
}

async fn put(objects: &ObjectStore, ns: &str, name: &str, value: &str) -> i64 {
    let def = configmaps();
    let current = objects.get(def, Some(ns), name, false).await.expect("get");
    let stored = match current {
        None => objects.create(def, Some(ns), name, cm(ns, name, value)).await.expect("create"),
        Some(c) => {
            let rv: i64 = c["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("number");
            objects.replace_if(def, Some(ns), name, rv, cm(ns, name, value)).await.expect("replace").expect("swapped")
        }
    };
    stored["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("number")
}

#[tokio::test]
async fn the_cache_follows_writes_and_serves_consistent_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = single_replica(dir.path()).await;
    let objects = ObjectStore::new(store.clone());
    put(&objects, "a", "before", "1").await;
    let cache = objects.cache(configmaps()).await.expect("cache");
    assert_eq!(cache.list(Some("a")).0.len(), 1, "the initial list loads existing objects");
    put(&objects, "a", "one", "1").await;
    put(&objects, "b", "two", "1").await;
    let rv = put(&objects, "a", "one", "2").await;
    let target = objects.consistent_revision().await.expect("read index");
    assert!(target >= rv);
    cache.wait_for(target, Duration::from_secs(5)).await.expect("cache catches up");
    let (in_a, revision) = cache.list(Some("a"));
    assert!(revision >= rv);
    let names: Vec<String> = in_a.iter().map(|o| o.value().expect("json")["metadata"]["name"].to_string()).collect();
    assert_eq!(names, vec!["\"before\"", "\"one\""]);
    let one = cache.get(&configmaps().key(Some("a"), "one")).expect("cached");
    assert_eq!(one.revision, rv);
    assert_eq!(one.value().expect("json")["data"]["v"], "2");
    assert_eq!(cache.list(None).0.len(), 3);
    let err = cache.wait_for(target + 1000, Duration::from_millis(50)).await.expect_err("future revision");
    assert_eq!(err.code, 504);
    store.shutdown().await;
}

#[tokio::test]
async fn subscriptions_replay_history_then_follow_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = single_replica(dir.path()).await;
    let objects = ObjectStore::new(store.clone());
    let def = configmaps();
    let cache = objects.cache(def).await.expect("cache");
    let first = put(&objects, "a", "x", "1").await;
    let second = put(&objects, "a", "x", "2").await;
    let deleted = objects.delete_if(def, Some("a"), "x", second).await.expect("delete").expect("deleted");
    cache.wait_for(deleted, Duration::from_secs(5)).await.expect("caught up");

    let mut sub = cache.subscribe_from(first).expect("history reaches back");
    let replayed: Vec<(i64, EventType)> = sub.history.iter().map(|e| (e.revision, e.event_type)).collect();
    assert_eq!(replayed, vec![(first, EventType::Added), (second, EventType::Modified), (deleted, EventType::Deleted)]);
    let gone = sub.history[2].object.value().expect("json");
    assert_eq!(gone["metadata"]["resourceVersion"], deleted.to_string(), "a deletion carries its own revision");
    assert_eq!(gone["data"]["v"], "2", "and the last state");
    let later = put(&objects, "a", "y", "1").await;
    let live = tokio::time::timeout(Duration::from_secs(5), sub.events.recv()).await.expect("in time").expect("event");
    assert_eq!((live.revision, live.event_type), (later, EventType::Added), "the next live event follows the history");
    assert!(cache.subscribe_from(1).is_none(), "revisions before the cache started are not in its history");

    let snap = cache.snapshot_and_subscribe(Some("a"));
    assert_eq!(snap.objects.len(), 1);
    assert!(snap.revision >= later);
    store.shutdown().await;
}
