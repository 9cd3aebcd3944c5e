//! Tests of the incremental snapshot (it must always equal a snapshot rebuilt from the same objects)
//! and of the bounded, rotating node search.

use std::sync::Arc;

use serde_json::{json, Value};

use super::tests::{bound, node, pod};
use super::{feasible_nodes_to_find, schedule, schedule_in, ClusterSnapshot, Resources, SearchWindow};

/// (node name, pod keys, requested) of every node, for comparing snapshots.
fn shape(snapshot: &ClusterSnapshot) -> Vec<(String, Vec<String>, Resources, Resources)> {
    snapshot
        .nodes()
        .map(|(n, info)| {
            let name = n.metadata.name.clone().unwrap_or_default();
            (name, info.pods.keys().cloned().collect(), info.requested, info.non_zero_requested)
        })
        .collect()
}

fn anti(app: &str) -> Value {
    json!({ "metadata": { "labels": { "app": app } }, "spec": { "affinity": { "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": { "matchLabels": { "app": app } }, "topologyKey": "kubernetes.io/hostname" }] } } } })
}

#[test]
fn incremental_changes_equal_a_rebuild() {
    let mut snapshot = ClusterSnapshot::default();
    snapshot.upsert_node(Arc::new(node("a", json!({}))));
    snapshot.upsert_node(Arc::new(node("b", json!({}))));
    snapshot.add_pod(Arc::new(bound(pod("p1", "1", "1Gi", json!({})), "a")));
    snapshot.add_pod(Arc::new(bound(pod("p2", "500m", "1Gi", json!({})), "b")));
    // An update replaces the earlier version instead of counting twice.
    snapshot.add_pod(Arc::new(bound(pod("p1", "2", "1Gi", json!({})), "a")));
    // Unbound pods are not counted; a pod that finished stops counting.
    snapshot.add_pod(Arc::new(pod("pending", "1", "1Gi", json!({}))));
    snapshot.add_pod(Arc::new(bound(pod("p3", "1", "1Gi", json!({})), "b")));
    snapshot.add_pod(Arc::new(bound(pod("p3", "1", "1Gi", json!({ "status": { "phase": "Succeeded" } })), "b")));
    snapshot.add_pod(Arc::new(bound(pod("p4", "100m", "0", json!({})), "b")));
    assert_eq!(snapshot.remove_pod("default/p4"), Some("b".to_string()));
    assert_eq!(snapshot.remove_pod("default/p4"), None);

    let rebuilt = ClusterSnapshot::from_objects(
        vec![node("a", json!({})), node("b", json!({}))],
        vec![bound(pod("p1", "2", "1Gi", json!({})), "a"), bound(pod("p2", "500m", "1Gi", json!({})), "b")],
    );
    assert_eq!(shape(&snapshot), shape(&rebuilt));
    assert_eq!(shape(&snapshot)[0].2, Resources { milli_cpu: 2000, memory: 1 << 30 });
    assert_eq!((snapshot.node_count(), snapshot.pod_count()), (2, 2));
}

#[test]
fn removing_a_pod_frees_its_node() {
    let mut snapshot = ClusterSnapshot::from_objects(vec![node("n", json!({}))], Vec::new());
    snapshot.add_pod(Arc::new(bound(pod("big", "3", "1Gi", json!({})), "n")));
    let wanted = pod("p", "2", "1Gi", json!({}));
    assert_eq!(
        schedule(&wanted, &snapshot).map_err(|e| e.to_string()),
        Err("0/1 nodes are available: 1 Insufficient cpu.".to_string())
    );
    snapshot.remove_pod("default/big");
    assert_eq!(schedule(&wanted, &snapshot), Ok("n".to_string()));
}

#[test]
fn pods_of_an_unknown_node_count_once_it_appears_and_stay_when_it_goes() {
    let mut snapshot = ClusterSnapshot::default();
    snapshot.add_pod(Arc::new(bound(pod("early", "3", "1Gi", json!({})), "n")));
    assert_eq!(snapshot.node_count(), 0);
    assert_eq!(snapshot.nodes().count(), 0);
    snapshot.upsert_node(Arc::new(node("n", json!({}))));
    assert_eq!(snapshot.node_count(), 1);
    assert!(schedule(&pod("p", "2", "1Gi", json!({})), &snapshot).is_err());
    // A node update keeps its pods.
    snapshot.upsert_node(Arc::new(node("n", json!({ "metadata": { "labels": { "x": "y" } } }))));
    assert_eq!(snapshot.node_count(), 1);
    assert!(schedule(&pod("p", "2", "1Gi", json!({})), &snapshot).is_err());
    snapshot.remove_node("n");
    assert_eq!(snapshot.node_count(), 0);
    assert_eq!(snapshot.node_of_pod("default/early"), Some("n"));
    snapshot.remove_pod("default/early");
    assert!(snapshot.node_info("n").is_none(), "an empty unknown node is dropped");
}

#[test]
fn required_anti_affinity_pods_are_tracked_incrementally() {
    let mut snapshot = ClusterSnapshot::from_objects(vec![node("a", json!({})), node("b", json!({}))], Vec::new());
    snapshot.add_pod(Arc::new(bound(pod("guard", "0", "0", anti("web")), "a")));
    assert_eq!(snapshot.anti_affinity_pods().count(), 1);
    let web = pod("p", "1", "1Gi", json!({ "metadata": { "labels": { "app": "web" } } }));
    assert_eq!(schedule(&web, &snapshot), Ok("b".to_string()));
    snapshot.remove_pod("default/guard");
    assert_eq!(snapshot.anti_affinity_pods().count(), 0);
    assert_eq!(schedule(&web, &snapshot), Ok("a".to_string()));
}

#[test]
fn feasible_nodes_to_find_follows_upstreams_adaptive_percentage() {
    let cases = [(0, 0), (50, 50), (99, 99), (100, 100), (200, 100), (1000, 420), (5000, 500), (6000, 300)];
    for (total, expected) in cases {
        assert_eq!(feasible_nodes_to_find(total), expected, "{total} nodes");
    }
}

#[test]
fn bounded_search_stops_early_and_rotates() {
    let nodes: Vec<_> = (0..300).map(|i| node(&format!("n{i:03}"), json!({}))).collect();
    let snapshot = ClusterSnapshot::from_objects(nodes, Vec::new());
    let p = pod("p", "1", "1Gi", json!({}));
    let first = schedule_in(&p, &snapshot, SearchWindow { start: 0, exhaustive: false }).expect("fits");
    assert_eq!(first.checked, feasible_nodes_to_find(300));
    assert_eq!(first.node, "n000");
    // The next search starts after the checked nodes, and wraps around the end.
    let second = schedule_in(&p, &snapshot, SearchWindow { start: first.checked, exhaustive: false }).expect("fits");
    assert_eq!(second.node, format!("n{:03}", first.checked));
    let wrapped = schedule_in(&p, &snapshot, SearchWindow { start: 299 + 300, exhaustive: false }).expect("fits");
    assert_eq!(wrapped.node, "n000", "n299 and then n000.. were checked; n000 wins the tie");
    // An unschedulable pod is checked against every node.
    let huge = pod("huge", "64", "1Gi", json!({}));
    let err = schedule_in(&huge, &snapshot, SearchWindow { start: 7, exhaustive: false }).expect_err("fits nowhere");
    assert_eq!(err.to_string(), "0/300 nodes are available: 300 Insufficient cpu.");
}
