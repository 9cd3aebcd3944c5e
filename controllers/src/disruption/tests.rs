use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::plan::{plan, scaled_value, Workloads, INSUFFICIENT_PODS, SUFFICIENT_PODS, SYNC_FAILED};

fn at(secs: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_700_000_000 + secs)
}

fn labels() -> Option<BTreeMap<String, String>> {
    Some([("app".to_string(), "web".to_string())].into())
}

fn owner(kind: &str, uid: &str) -> Option<Vec<OwnerReference>> {
    Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: uid.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: None,
    }])
}

fn pod(name: &str, ready: bool, owner_kind: Option<&str>, deleting: bool) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            labels: labels(),
            owner_references: owner_kind.and_then(|k| owner(k, "rs-uid")),
            deletion_timestamp: deleting.then(|| Time(at(0))),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    })
}

fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some("b".into()),
            namespace: Some("ns".into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available: min,
            max_unavailable: max,
            selector: Some(LabelSelector { match_labels: labels(), ..Default::default() }),
            unhealthy_pod_eviction_policy: None,
        }),
        status: None,
    }
}

fn rs(replicas: i32, deployment: bool) -> Arc<ReplicaSet> {
    Arc::new(ReplicaSet {
        metadata: ObjectMeta {
            name: Some("rs".into()),
            uid: Some("rs-uid".into()),
            owner_references: if deployment { owner("Deployment", "d-uid") } else { None },
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec { replicas: Some(replicas), ..Default::default() }),
        status: None,
    })
}

fn deployment(replicas: i32) -> Arc<Deployment> {
    Arc::new(Deployment {
        metadata: ObjectMeta { name: Some("d".into()), uid: Some("d-uid".into()), ..Default::default() },
        spec: Some(DeploymentSpec { replicas: Some(replicas), ..Default::default() }),
        status: None,
    })
}

#[test]
fn percentages_round_up() {
    assert_eq!(scaled_value(&IntOrString::String("50%".into()), 3).ok(), Some(2));
    assert_eq!(scaled_value(&IntOrString::String("10%".into()), 5).ok(), Some(1));
    assert_eq!(scaled_value(&IntOrString::String("100%".into()), 4).ok(), Some(4));
    assert_eq!(scaled_value(&IntOrString::Int(7), 4).ok(), Some(7));
    assert!(scaled_value(&IntOrString::String("half".into()), 4).is_err());
}

#[test]
fn budget_status_table() {
    struct Case {
        name: &'static str,
        min: Option<IntOrString>,
        max: Option<IntOrString>,
        pods: Vec<Arc<Pod>>,
        replicas: i32,
        via_deployment: Option<i32>,
        /// (expected, healthy, desired, allowed, reason)
        want: (i32, i32, i32, i32, &'static str),
    }
    let three_ready = || (0..3).map(|i| pod(&format!("p{i}"), true, Some("ReplicaSet"), false)).collect::<Vec<_>>();
    let cases = [
        Case {
            name: "minAvailable = replicas blocks",
            min: Some(IntOrString::Int(3)),
            max: None,
            pods: three_ready(),
            replicas: 3,
            via_deployment: None,
            want: (3, 3, 3, 0, INSUFFICIENT_PODS),
        },
        Case {
            name: "minAvailable int counts pods",
            min: Some(IntOrString::Int(2)),
            max: None,
            pods: three_ready(),
            replicas: 5,
            via_deployment: None,
            want: (3, 3, 2, 1, SUFFICIENT_PODS),
        },
        Case {
            name: "minAvailable percent against the controller's replicas, rounded up",
            min: Some(IntOrString::String("50%".into())),
            max: None,
            pods: three_ready(),
            replicas: 3,
            via_deployment: None,
            want: (3, 3, 2, 1, SUFFICIENT_PODS),
        },
        Case {
            name: "maxUnavailable int uses the deployment's scale",
            min: None,
            max: Some(IntOrString::Int(1)),
            pods: three_ready(),
            replicas: 3,
            via_deployment: Some(4),
            want: (4, 3, 3, 0, INSUFFICIENT_PODS),
        },
        Case {
            name: "maxUnavailable percent rounds the unavailable count up",
            min: None,
            max: Some(IntOrString::String("34%".into())),
            pods: three_ready(),
            replicas: 3,
            via_deployment: None,
            want: (3, 3, 1, 2, SUFFICIENT_PODS),
        },
        Case {
            name: "unready and terminating pods are not healthy",
            min: Some(IntOrString::Int(1)),
            max: None,
            pods: vec![
                pod("a", true, Some("ReplicaSet"), false),
                pod("b", false, Some("ReplicaSet"), false),
                pod("c", true, Some("ReplicaSet"), true),
            ],
            replicas: 3,
            via_deployment: None,
            want: (3, 1, 1, 0, INSUFFICIENT_PODS),
        },
        Case {
            name: "no pods: nothing allowed",
            min: Some(IntOrString::Int(0)),
            max: None,
            pods: vec![],
            replicas: 3,
            via_deployment: None,
            want: (0, 0, 0, 0, INSUFFICIENT_PODS),
        },
    ];
    for case in cases {
        let sets = vec![rs(case.replicas, case.via_deployment.is_some())];
        let deployments: Vec<Arc<Deployment>> = case.via_deployment.map(deployment).into_iter().collect();
        let stateful: Vec<Arc<StatefulSet>> = Vec::new();
        let w = Workloads { replica_sets: &sets, deployments: &deployments, stateful_sets: &stateful };
        let p = plan(&pdb(case.min, case.max), &case.pods, w, at(10));
        let s = &p.status;
        let reason = s.conditions.iter().flatten().find(|c| c.type_ == "DisruptionAllowed").map(|c| c.reason.as_str());
        assert_eq!(
            (s.expected_pods, s.current_healthy, s.desired_healthy, s.disruptions_allowed, reason.unwrap_or("")),
            case.want,
            "{}",
            case.name
        );
        assert_eq!(s.observed_generation, Some(2), "{}", case.name);
    }
}

#[test]
fn percentages_need_a_known_controller() {
    let pods = vec![pod("a", true, None, false)];
    let w = Workloads::default();
    let p = plan(&pdb(Some(IntOrString::String("50%".into())), None), &pods, w, at(10));
    assert_eq!(p.status.disruptions_allowed, 0);
    let c = p.status.conditions.iter().flatten().find(|c| c.type_ == "DisruptionAllowed").cloned();
    assert_eq!(c.map(|c| (c.status, c.reason)), Some(("False".to_string(), SYNC_FAILED.to_string())));
    assert!(p.events.iter().any(|(warning, reason, _)| *warning && *reason == "NoControllerRef"));
}

#[test]
fn stateful_set_scale_counts() {
    let sts = vec![Arc::new(StatefulSet {
        metadata: ObjectMeta { uid: Some("rs-uid".into()), ..Default::default() },
        spec: Some(StatefulSetSpec { replicas: Some(5), ..Default::default() }),
        status: None,
    })];
    let pods = vec![pod("a", true, Some("StatefulSet"), false)];
    let w = Workloads { stateful_sets: &sts, ..Workloads::default() };
    let p = plan(&pdb(None, Some(IntOrString::Int(4))), &pods, w, at(10));
    assert_eq!((p.status.expected_pods, p.status.desired_healthy, p.status.disruptions_allowed), (5, 1, 0));
}

#[test]
fn disrupted_pods_stay_unhealthy_until_deleted_or_timed_out() {
    let pods: Vec<Arc<Pod>> = (0..3).map(|i| pod(&format!("p{i}"), true, Some("ReplicaSet"), false)).collect();
    let mut budget = pdb(Some(IntOrString::Int(1)), None);
    budget.status = Some(PodDisruptionBudgetStatus {
        disrupted_pods: Some([("p0".to_string(), Time(at(0))), ("p1".to_string(), Time(at(-200)))].into()),
        ..Default::default()
    });
    let sets = vec![rs(3, false)];
    let w = Workloads { replica_sets: &sets, ..Workloads::default() };
    let p = plan(&budget, &pods, w, at(10));
    let disrupted = p.status.disrupted_pods.clone().unwrap_or_default();
    assert_eq!(disrupted.keys().collect::<Vec<_>>(), vec!["p0"], "p1's eviction timed out");
    assert_eq!(p.status.current_healthy, 2);
    assert_eq!(p.status.disruptions_allowed, 1);
    assert_eq!(p.recheck_after.map(|d| d.as_secs()), Some(110));
}

#[test]
fn condition_transition_time_moves_only_on_change() {
    let pods: Vec<Arc<Pod>> = (0..3).map(|i| pod(&format!("p{i}"), true, Some("ReplicaSet"), false)).collect();
    let sets = vec![rs(3, false)];
    let w = Workloads { replica_sets: &sets, ..Workloads::default() };
    let mut budget = pdb(Some(IntOrString::Int(1)), None);
    let first = plan(&budget, &pods, w, at(10));
    budget.status = Some(first.status);
    let second = plan(&budget, &pods, w, at(20));
    let t = second
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed")
        .map(|c| c.last_transition_time.0);
    assert_eq!(t, Some(at(10)));
    assert_eq!(budget.status.as_ref(), Some(&second.status), "a second pass changes nothing");
}
