use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetStatus, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::identity::{claims_for, new_pod, ordinal_of, POD_INDEX_LABEL, POD_NAME_LABEL};
use super::plan::{plan, Revisions, StatefulSetPlan};
use crate::history::REVISION_HASH_LABEL;

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn set(replicas: i32, parallel: bool, partition: Option<i32>) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("sts-uid".into()),
            generation: Some(4),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            pod_management_policy: parallel.then(|| "Parallel".to_string()),
            selector: LabelSelector { match_labels: labels(&[("app", "web")]), ..Default::default() },
            template: template(),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: partition
                    .map(|p| RollingUpdateStatefulSetStrategy { partition: Some(p), max_unavailable: None }),
            }),
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta { name: Some("data".into()), ..Default::default() },
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn template() -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: labels(&[("app", "web")]), ..Default::default() }),
        spec: Some(PodSpec::default()),
    }
}

/// Pod `web-<ordinal>` at `revision`, in `phase`, ready or not.
fn pod(ordinal: i32, revision: &str, phase: &str, ready: bool) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(format!("web-{ordinal}")),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{ordinal}")),
            labels: labels(&[("app", "web"), (REVISION_HASH_LABEL, revision)]),
            owner_references: Some(vec![OwnerReference {
                kind: "StatefulSet".into(),
                name: "web".into(),
                uid: "sts-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: ready.then(|| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(Timestamp::now())),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

fn run(s: &StatefulSet, pods: &[Arc<Pod>], claims: &[Arc<PersistentVolumeClaim>]) -> StatefulSetPlan {
    let t = template();
    let revisions = Revisions { current: "web-r1", current_template: &t, update: "web-r2", update_template: &t };
    plan(s, revisions, pods, claims, Timestamp::now())
}

fn summary(p: &StatefulSetPlan) -> (Vec<String>, Vec<String>) {
    let created = p.create.iter().map(|(_, pod)| pod.metadata.name.clone().unwrap_or_default()).collect();
    let deleted = p.delete.iter().map(|pod| pod.metadata.name.clone().unwrap_or_default()).collect();
    (created, deleted)
}

#[test]
fn ordinals_parse_only_for_members() {
    let cases = [
        ("web-0", Some(0)),
        ("web-12", Some(12)),
        ("web-x", None),
        ("webby-1", None),
        ("web-", None),
        ("web--1", None),
    ];
    for (name, want) in cases {
        assert_eq!(ordinal_of("web", name), want, "{name}");
    }
}

#[test]
fn pods_get_identity_and_claims() {
    let s = set(3, false, None);
    let p = new_pod(&s, &template(), "web-r2", 2);
    assert_eq!(p.metadata.name.as_deref(), Some("web-2"));
    let l = p.metadata.labels.clone().unwrap_or_default();
    assert_eq!(l.get(POD_NAME_LABEL).map(String::as_str), Some("web-2"));
    assert_eq!(l.get(POD_INDEX_LABEL).map(String::as_str), Some("2"));
    assert_eq!(l.get(REVISION_HASH_LABEL).map(String::as_str), Some("web-r2"));
    let spec = p.spec.unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-2"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let volume = spec.volumes.unwrap_or_default().into_iter().find(|v| v.name == "data").expect("data volume");
    assert_eq!(volume.persistent_volume_claim.map(|c| c.claim_name).as_deref(), Some("data-web-2"));
    let claims = claims_for(&s, 2);
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data-web-2"));
    assert_eq!(claims[0].metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("web"));
}

#[test]
fn ordered_ready_creates_and_removes_one_pod_at_a_time() {
    let r = |o| pod(o, "web-r2", "Running", true);
    type Case = (&'static str, i32, Vec<Arc<Pod>>, Vec<&'static str>, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        ("first pod", 3, vec![], vec!["web-0"], vec![]),
        ("next pod once the previous is ready", 3, vec![r(0)], vec!["web-1"], vec![]),
        ("waits while a pod is not ready", 3, vec![r(0), pod(1, "web-r2", "Running", false)], vec![], vec![]),
        ("waits while a pod is pending", 3, vec![r(0), pod(1, "web-r2", "Pending", false)], vec![], vec![]),
        (
            "a failed pod is deleted first",
            3,
            vec![r(0), pod(1, "web-r2", "Failed", false), r(2)],
            vec![],
            vec!["web-1"],
        ),
        ("scale down from the highest ordinal", 1, vec![r(0), r(1), r(2)], vec![], vec!["web-2"]),
        (
            "scale down waits for unhealthy survivors",
            1,
            vec![pod(0, "web-r2", "Running", false), r(1), r(2)],
            vec![],
            vec![],
        ),
        ("complete: nothing to do", 2, vec![r(0), r(1)], vec![], vec![]),
    ];
    for (what, replicas, pods, create, delete) in cases {
        let p = run(&set(replicas, false, None), &pods, &[]);
        assert_eq!(
            summary(&p),
            (create.iter().map(|s| s.to_string()).collect(), delete.iter().map(|s| s.to_string()).collect()),
            "{what}"
        );
    }
}

#[test]
fn parallel_creates_and_removes_all_at_once() {
    let p = run(&set(3, true, None), &[pod(0, "web-r2", "Pending", false)], &[]);
    assert_eq!(summary(&p).0, ["web-1", "web-2"]);
    let r = |o| pod(o, "web-r2", "Running", true);
    let p = run(&set(1, true, None), &[r(0), r(1), pod(2, "web-r2", "Pending", false)], &[]);
    assert_eq!(summary(&p).1, ["web-2", "web-1"]);
}

#[test]
fn rolling_update_goes_from_the_top_down_to_the_partition() {
    let old = |o| pod(o, "web-r1", "Running", true);
    let new = |o| pod(o, "web-r2", "Running", true);
    type Case = (&'static str, Option<i32>, Vec<Arc<Pod>>, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        ("highest old pod first", None, vec![old(0), old(1), old(2)], vec!["web-2"]),
        ("then the next once the updated one is healthy", None, vec![old(0), old(1), new(2)], vec!["web-1"]),
        ("waits for an unhealthy updated pod", None, vec![old(0), old(1), pod(2, "web-r2", "Running", false)], vec![]),
        ("stops at the partition", Some(2), vec![old(0), old(1), new(2)], vec![]),
        ("done", None, vec![new(0), new(1), new(2)], vec![]),
    ];
    for (what, partition, pods, delete) in cases {
        let p = run(&set(3, false, partition), &pods, &[]);
        assert_eq!(summary(&p).1, delete, "{what}");
    }
}

#[test]
fn status_counts_and_revisions() {
    let mut s = set(3, false, None);
    s.status = Some(StatefulSetStatus { current_replicas: Some(3), ..Default::default() });
    let p = run(
        &s,
        &[pod(0, "web-r1", "Running", true), pod(1, "web-r1", "Running", true), pod(2, "web-r2", "Running", false)],
        &[],
    );
    assert_eq!(p.status.replicas, 3);
    assert_eq!(p.status.ready_replicas, Some(2));
    assert_eq!(p.status.current_replicas, Some(2));
    assert_eq!(p.status.updated_replicas, Some(1));
    assert_eq!(p.status.current_revision.as_deref(), Some("web-r1"));
    assert_eq!(p.status.update_revision.as_deref(), Some("web-r2"));
    assert_eq!(p.status.observed_generation, Some(4));
    let p = run(
        &s,
        &[pod(0, "web-r2", "Running", true), pod(1, "web-r2", "Running", true), pod(2, "web-r2", "Running", true)],
        &[],
    );
    assert_eq!(
        p.status.current_revision.as_deref(),
        Some("web-r2"),
        "a finished roll makes the update revision current"
    );
    assert_eq!(p.status.current_replicas, Some(3));
}

#[test]
fn claims_are_kept_on_scale_down_unless_the_policy_deletes_them() {
    let claim = |name: &str| {
        Arc::new(PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            ..Default::default()
        })
    };
    let claims = [claim("data-web-0"), claim("data-web-1"), claim("data-web-2"), claim("other-web-2")];
    let pods = [pod(0, "web-r2", "Running", true)];
    let mut s = set(1, false, None);
    assert!(run(&s, &pods, &claims).delete_claims.is_empty(), "retained by default");
    if let Some(spec) = s.spec.as_mut() {
        spec.persistent_volume_claim_retention_policy = Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some("Retain".into()),
            when_scaled: Some("Delete".into()),
        });
    }
    assert_eq!(run(&s, &pods, &claims).delete_claims, ["data-web-1", "data-web-2"]);
}
