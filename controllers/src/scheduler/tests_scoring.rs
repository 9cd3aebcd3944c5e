//! Tests of node scoring: emptier nodes win, controller spreading, preferences and deterministic ties.

use std::sync::Arc;

use serde_json::{json, Value};

use super::tests::{bound, node, pod};
use super::{schedule, ClusterSnapshot};

fn replica(name: &str) -> k8s_openapi::api::core::v1::Pod {
    pod(
        name,
        "100m",
        "128Mi",
        json!({ "metadata": { "ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": "rs-uid", "controller": true }] } }),
    )
}

#[test]
fn emptier_node_wins() {
    let nodes = vec![node("a", json!({})), node("b", json!({}))];
    let snapshot = ClusterSnapshot::from_objects(nodes.clone(), vec![bound(pod("busy", "3", "6Gi", json!({})), "a")]);
    assert_eq!(schedule(&pod("p", "500m", "512Mi", json!({})), &snapshot), Ok("b".to_string()));
    let flipped = ClusterSnapshot::from_objects(nodes, vec![bound(pod("busy", "3", "6Gi", json!({})), "b")]);
    assert_eq!(schedule(&pod("p", "500m", "512Mi", json!({})), &flipped), Ok("a".to_string()));
}

#[test]
fn ties_go_to_the_smallest_node_name() {
    let snapshot = ClusterSnapshot::from_objects(
        vec![node("c", json!({})), node("a", json!({})), node("b", json!({}))],
        Vec::new(),
    );
    for _ in 0..3 {
        assert_eq!(schedule(&pod("p", "1", "1Gi", json!({})), &snapshot), Ok("a".to_string()));
    }
}

#[test]
fn three_replicas_spread_over_three_nodes() {
    let mut snapshot = ClusterSnapshot::from_objects(
        vec![node("n1", json!({})), node("n2", json!({})), node("n3", json!({}))],
        Vec::new(),
    );
    // A larger unrelated pod on n2 makes least-allocated alone prefer n1 and n3 for every replica.
    snapshot.add_pod(Arc::new(bound(pod("other", "200m", "256Mi", json!({})), "n2")));
    let mut placed = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        let node = schedule(&replica(&name), &snapshot).expect("fits");
        snapshot.add_pod(Arc::new(bound(replica(&name), &node)));
        placed.push(node);
    }
    placed.sort();
    assert_eq!(placed, vec!["n1", "n2", "n3"]);
}

#[test]
fn preferred_node_affinity_wins_over_emptiness() {
    let snapshot = ClusterSnapshot::from_objects(
        vec![node("a", json!({})), node("b", json!({ "metadata": { "labels": { "disk": "ssd" } } }))],
        vec![bound(pod("busy", "1", "1Gi", json!({})), "b")],
    );
    let preferring: Value = json!({ "spec": { "affinity": { "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{ "weight": 50, "preference": {
            "matchExpressions": [{ "key": "disk", "operator": "In", "values": ["ssd"] }] } }] } } } });
    assert_eq!(schedule(&pod("p", "100m", "100Mi", preferring), &snapshot), Ok("b".to_string()));
    assert_eq!(schedule(&pod("p", "100m", "100Mi", json!({})), &snapshot), Ok("a".to_string()));
}

#[test]
fn preferred_anti_affinity_avoids_matching_pods() {
    let snapshot = ClusterSnapshot::from_objects(
        vec![node("a", json!({})), node("b", json!({}))],
        vec![bound(pod("cache", "0", "0", json!({ "metadata": { "labels": { "app": "cache" } } })), "a")],
    );
    let avoiding = json!({ "spec": { "affinity": { "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{ "weight": 100, "podAffinityTerm": {
            "labelSelector": { "matchLabels": { "app": "cache" } }, "topologyKey": "kubernetes.io/hostname" } }] } } } });
    assert_eq!(schedule(&pod("p", "100m", "100Mi", avoiding), &snapshot), Ok("b".to_string()));
}

#[test]
fn prefer_no_schedule_taint_is_avoided_but_not_filtered() {
    let tainted = json!({ "spec": { "taints": [{ "key": "k", "value": "v", "effect": "PreferNoSchedule" }] } });
    let snapshot = ClusterSnapshot::from_objects(vec![node("a", tainted.clone()), node("b", json!({}))], Vec::new());
    assert_eq!(schedule(&pod("p", "1", "1Gi", json!({})), &snapshot), Ok("b".to_string()));
    let only = ClusterSnapshot::from_objects(vec![node("a", tainted)], Vec::new());
    assert_eq!(schedule(&pod("p", "1", "1Gi", json!({})), &only), Ok("a".to_string()));
}
