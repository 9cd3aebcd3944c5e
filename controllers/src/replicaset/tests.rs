use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::plan::plan;

fn labels(app: &str) -> Option<std::collections::BTreeMap<String, String>> {
    Some([("app".to_string(), app.to_string())].into())
}

fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("rs-uid".into()),
            generation: Some(3),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(min_ready),
            selector: LabelSelector { match_labels: labels("web"), ..Default::default() },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: labels("web"), ..Default::default() }),
                spec: Some(PodSpec::default()),
            }),
        }),
        status: None,
    }
}

fn owner(uid: &str) -> Option<Vec<OwnerReference>> {
    Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "x".into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }])
}

fn pod(name: &str, app: &str, owner_uid: Option<&str>, node: Option<&str>, ready_secs_ago: Option<i64>) -> Arc<Pod> {
    let now = Timestamp::now();
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("{name}-uid")),
            labels: labels(app),
            owner_references: owner_uid.and_then(owner),
            ..Default::default()
        },
        spec: Some(PodSpec { node_name: node.map(str::to_string), ..Default::default() }),
        status: Some(PodStatus {
            phase: Some(if node.is_some() { "Running" } else { "Pending" }.into()),
            conditions: ready_secs_ago.map(|ago| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(now - SignedDuration::from_secs(ago))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
    pods.iter().map(|p| p.metadata.name.as_deref().unwrap_or_default()).collect()
}

#[test]
fn missing_replicas_are_created_and_counts_reported() {
    let pods = [pod("a", "web", Some("rs-uid"), Some("n1"), Some(60))];
    let p = plan(&rs(3, 0), &pods, Timestamp::now());
    assert_eq!(p.create, 2);
    assert!(p.delete.is_empty());
    assert_eq!(p.status.replicas, 1);
    assert_eq!(p.status.ready_replicas, Some(1));
    assert_eq!(p.status.available_replicas, Some(1));
    assert_eq!(p.status.observed_generation, Some(3));
}

#[test]
fn surplus_deletes_unscheduled_then_unready_pods_first() {
    let pods = [
        pod("running-ready", "web", Some("rs-uid"), Some("n1"), Some(60)),
        pod("running-unready", "web", Some("rs-uid"), Some("n1"), None),
        pod("pending", "web", Some("rs-uid"), None, None),
    ];
    let p = plan(&rs(1, 0), &pods, Timestamp::now());
    assert_eq!(p.create, 0);
    assert_eq!(names(&p.delete), ["pending", "running-unready"]);
}

#[test]
fn orphans_matching_the_selector_are_adopted_and_mismatches_released() {
    let pods = [
        pod("orphan", "web", None, Some("n1"), Some(60)),
        pod("relabelled", "db", Some("rs-uid"), Some("n1"), Some(60)),
        pod("someone-elses", "web", Some("other"), Some("n1"), Some(60)),
    ];
    let p = plan(&rs(1, 0), &pods, Timestamp::now());
    assert_eq!(names(&p.adopt), ["orphan"]);
    assert_eq!(names(&p.release), ["relabelled"]);
    assert_eq!(p.create, 0, "the adopted orphan counts as the one replica");
}

#[test]
fn min_ready_seconds_delays_availability_and_asks_for_a_requeue() {
    let pods = [pod("a", "web", Some("rs-uid"), Some("n1"), Some(2))];
    let p = plan(&rs(1, 10), &pods, Timestamp::now());
    assert_eq!(p.status.ready_replicas, Some(1));
    assert_eq!(p.status.available_replicas, Some(0));
    let after = p.requeue_after.expect("requeue while becoming available");
    assert!(after.as_secs() <= 8 && after.as_secs() >= 7, "{after:?}");
}

#[test]
fn a_deleting_replicaset_neither_creates_nor_adopts() {
    let mut set = rs(3, 0);
    set.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let pods = [pod("orphan", "web", None, Some("n1"), Some(60))];
    let p = plan(&set, &pods, Timestamp::now());
    assert_eq!(p.create, 0);
    assert!(p.adopt.is_empty());
}
