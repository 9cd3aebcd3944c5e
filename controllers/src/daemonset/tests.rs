use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
use k8s_openapi::api::core::v1::{
    Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::node_fit::{daemon_pod_template, node_fit, target_node, NodeFit};
use super::plan::plan;
use crate::history::REVISION_HASH_LABEL;

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn ds(node_selector: &[(&str, &str)], surge: i32, unavailable: i32) -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("ns".into()),
            uid: Some("ds-uid".into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector { match_labels: labels(&[("app", "agent")]), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: labels(&[("app", "agent")]), ..Default::default() }),
                spec: Some(PodSpec {
                    node_selector: (!node_selector.is_empty()).then(|| labels(node_selector).unwrap_or_default()),
                    ..Default::default()
                }),
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_surge: Some(IntOrString::Int(surge)),
                    max_unavailable: Some(IntOrString::Int(unavailable)),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn node(name: &str, node_labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta { name: Some(name.into()), labels: labels(node_labels), ..Default::default() },
        spec: Some(NodeSpec {
            taints: Some(
                taints
                    .iter()
                    .map(|(key, effect)| Taint {
                        key: key.to_string(),
                        effect: effect.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    })
}

/// A daemon pod on `node` with revision `hash`, phase `phase`, ready for `ready_secs` (if any), created
/// `age` seconds ago.
fn pod(name: &str, node: &str, hash: &str, phase: &str, ready_secs: Option<i64>, age: i64) -> Arc<Pod> {
    let now = Timestamp::now();
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("{name}-uid")),
            labels: labels(&[("app", "agent"), (REVISION_HASH_LABEL, hash)]),
            creation_timestamp: Some(Time(now - SignedDuration::from_secs(age))),
            owner_references: Some(vec![OwnerReference {
                kind: "DaemonSet".into(),
                name: "agent".into(),
                uid: "ds-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec { node_name: Some(node.into()), ..Default::default() }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: ready_secs.map(|s| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(now - SignedDuration::from_secs(s))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

fn names(pods: &[Arc<Pod>]) -> Vec<String> {
    let mut n: Vec<String> = pods.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect();
    n.sort();
    n
}

#[test]
fn node_eligibility_follows_selector_and_taints() {
    let set = ds(&[("disk", "ssd")], 0, 1);
    let cases = [
        ("plain node without the label", node("a", &[], &[]), (false, false)),
        ("labelled node", node("b", &[("disk", "ssd")], &[]), (true, true)),
        (
            "NoSchedule taint keeps new pods off, running ones stay",
            node("c", &[("disk", "ssd")], &[("dedicated", "NoSchedule")]),
            (false, true),
        ),
        ("NoExecute taint evicts", node("d", &[("disk", "ssd")], &[("dedicated", "NoExecute")]), (false, false)),
        (
            "not-ready and unschedulable taints are tolerated by default",
            node(
                "e",
                &[("disk", "ssd")],
                &[("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unschedulable", "NoSchedule")],
            ),
            (true, true),
        ),
    ];
    for (what, n, (run, cont)) in cases {
        assert_eq!(node_fit(&set, &n), NodeFit { should_run: run, should_continue_running: cont }, "{what}");
    }
}

#[test]
fn daemon_pods_are_pinned_labelled_and_tolerant() {
    let t = daemon_pod_template(&ds(&[], 0, 1), "h1", "node-7");
    let l = t.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    assert_eq!(l.get(REVISION_HASH_LABEL).map(String::as_str), Some("h1"));
    assert_eq!(l.get("pod-template-generation").map(String::as_str), Some("2"));
    let spec = t.spec.clone().unwrap_or_default();
    let keys: Vec<_> = spec.tolerations.iter().flatten().filter_map(|t| t.key.clone()).collect();
    assert!(keys.contains(&"node.kubernetes.io/not-ready".to_string()) && keys.len() == 6, "{keys:?}");
    let p = Pod { metadata: Default::default(), spec: Some(spec), status: None };
    assert_eq!(target_node(&p), Some("node-7"));
}

#[test]
fn manage_creates_missing_deletes_extra_and_misplaced() {
    let set = ds(&[("disk", "ssd")], 0, 1);
    let nodes = [node("a", &[("disk", "ssd")], &[]), node("b", &[("disk", "ssd")], &[]), node("c", &[], &[])];
    let pods = [
        pod("old-a", "a", "h1", "Running", Some(60), 100),
        pod("dup-a", "a", "h1", "Running", Some(60), 10),
        pod("on-c", "c", "h1", "Running", Some(60), 100),
        pod("on-gone", "gone", "h1", "Running", Some(60), 100),
    ];
    let p = plan(&set, &nodes, &pods, "h1", Timestamp::now(), |_| false);
    assert_eq!(p.create_on, ["b"]);
    assert_eq!(names(&p.delete), ["dup-a", "on-c", "on-gone"]);
    assert_eq!(p.status.desired_number_scheduled, 2);
    assert_eq!(p.status.current_number_scheduled, 1);
    assert_eq!(p.status.number_misscheduled, 1);
    assert_eq!(p.status.number_ready, 1);
    assert_eq!(p.status.number_unavailable, Some(1));
    assert_eq!(p.status.observed_generation, Some(2));
}

#[test]
fn failed_pods_are_replaced_unless_backing_off() {
    let set = ds(&[], 0, 1);
    let nodes = [node("a", &[], &[]), node("b", &[], &[])];
    let pods = [pod("fa", "a", "h1", "Failed", None, 5), pod("fb", "b", "h1", "Failed", None, 5)];
    let p = plan(&set, &nodes, &pods, "h1", Timestamp::now(), |n| n == "b");
    assert_eq!(names(&p.delete), ["fa"]);
    assert_eq!(p.failed_on, ["a"]);
    assert_eq!(p.backing_off, ["b"]);
    assert!(p.create_on.is_empty(), "the replacement comes once the failed pod is gone");
}

#[test]
fn rolling_update_respects_max_unavailable_and_max_surge() {
    let nodes: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| node(n, &[], &[])).collect();
    let old = |n: &str| pod(&format!("old-{n}"), n, "h1", "Running", Some(60), 100);
    // (what, surge, unavailable, pods, expected deletes, expected creates)
    type Case = (&'static str, i32, i32, Vec<Arc<Pod>>, Vec<&'static str>, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        ("all old: one at a time", 0, 1, vec![old("a"), old("b"), old("c"), old("d")], vec!["old-a"], vec![]),
        ("two at a time", 0, 2, vec![old("a"), old("b"), old("c"), old("d")], vec!["old-a", "old-b"], vec![]),
        (
            "a new pod not yet ready uses the budget",
            0,
            1,
            vec![pod("new-a", "a", "h2", "Running", None, 1), old("b"), old("c"), old("d")],
            vec![],
            vec![],
        ),
        (
            "an unavailable old pod is replaced regardless",
            0,
            1,
            vec![
                pod("new-a", "a", "h2", "Running", None, 1),
                pod("sick-b", "b", "h1", "Running", None, 100),
                old("c"),
                old("d"),
            ],
            vec!["sick-b"],
            vec![],
        ),
        (
            "surge starts new pods beside old ones",
            2,
            0,
            vec![old("a"), old("b"), old("c"), old("d")],
            vec![],
            vec!["a", "b"],
        ),
        (
            "surge: an available new pod retires the old one",
            1,
            0,
            vec![old("a"), pod("new-a", "a", "h2", "Running", Some(60), 5), old("b"), old("c"), old("d")],
            vec!["old-a"],
            vec![],
        ),
    ];
    for (what, surge, unavailable, pods, deletes, creates) in cases {
        let p = plan(&ds(&[], surge, unavailable), &nodes, &pods, "h2", Timestamp::now(), |_| false);
        assert_eq!(names(&p.delete), deletes, "{what}");
        assert_eq!(p.create_on, creates, "{what}");
    }
}

#[test]
fn on_delete_leaves_old_pods_alone() {
    let mut set = ds(&[], 0, 1);
    if let Some(s) = set.spec.as_mut() {
        s.update_strategy = Some(DaemonSetUpdateStrategy { type_: Some("OnDelete".into()), rolling_update: None });
    }
    let nodes = [node("a", &[], &[]), node("b", &[], &[])];
    let pods = [pod("old-a", "a", "h1", "Running", Some(60), 100)];
    let p = plan(&set, &nodes, &pods, "h2", Timestamp::now(), |_| false);
    assert!(p.delete.is_empty());
    assert_eq!(p.create_on, ["b"]);
    assert_eq!(p.status.updated_number_scheduled, Some(0));
}
