use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, PodStatus, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::eviction::{self, DEFAULT_TOLERATION_SECONDS};
use super::health::{assess, MESSAGE_STOPPED, REASON_NEVER_UPDATED, REASON_STATUS_UNKNOWN};
use super::taints::{self, NOT_READY, NO_EXECUTE, NO_SCHEDULE, UNREACHABLE, UNSCHEDULABLE};

const GRACE: Duration = Duration::from_secs(40);

fn at(secs: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_700_000_000 + secs)
}

fn condition(kind: &str, status: &str, heartbeat: i64) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some("KubeletReady".into()),
        message: Some("kubelet is posting ready status".into()),
        last_heartbeat_time: Some(Time(at(heartbeat))),
        last_transition_time: Some(Time(at(0))),
    }
}

fn node(conditions: Vec<NodeCondition>, taints: Vec<Taint>, unschedulable: bool) -> Node {
    Node {
        metadata: ObjectMeta { name: Some("n1".into()), creation_timestamp: Some(Time(at(0))), ..Default::default() },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            unschedulable: unschedulable.then_some(true),
            ..Default::default()
        }),
        status: Some(NodeStatus { conditions: (!conditions.is_empty()).then_some(conditions), ..Default::default() }),
    }
}

fn lease(renewed: i64) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("n1".into()),
            namespace: Some("kube-node-lease".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec { renew_time: Some(MicroTime(at(renewed))), ..Default::default() }),
    }
}

fn taint(key: &str, effect: &str, added: Option<i64>) -> Taint {
    Taint { key: key.into(), effect: effect.into(), value: None, time_added: added.map(|s| Time(at(s))) }
}

#[test]
fn health_by_lease_and_heartbeat() {
    struct Case {
        name: &'static str,
        conditions: Vec<NodeCondition>,
        lease: Option<i64>,
        now: i64,
        /// Expected (Ready status after, reason) when conditions are rewritten.
        rewritten: Option<(&'static str, &'static str)>,
        recheck: Option<u64>,
    }
    let cases = [
        Case {
            name: "fresh lease keeps a ready node",
            conditions: vec![condition("Ready", "True", 0)],
            lease: Some(90),
            now: 100,
            rewritten: None,
            recheck: Some(30),
        },
        Case {
            name: "a newer status heartbeat counts without a lease",
            conditions: vec![condition("Ready", "True", 95)],
            lease: None,
            now: 100,
            rewritten: None,
            recheck: Some(35),
        },
        Case {
            name: "stale lease and heartbeat make every condition unknown",
            conditions: vec![condition("Ready", "True", 10), condition("MemoryPressure", "False", 10)],
            lease: Some(59),
            now: 100,
            rewritten: Some(("Unknown", REASON_STATUS_UNKNOWN)),
            recheck: None,
        },
        Case {
            name: "exactly at the grace period the node is stale",
            conditions: vec![condition("Ready", "True", 0)],
            lease: Some(60),
            now: 100,
            rewritten: Some(("Unknown", REASON_STATUS_UNKNOWN)),
            recheck: None,
        },
        Case {
            name: "already unknown everywhere: nothing to write",
            conditions: ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
                .iter()
                .map(|k| condition(k, "Unknown", 0))
                .collect(),
            lease: Some(0),
            now: 100,
            rewritten: None,
            recheck: None,
        },
        Case {
            name: "a node that never posted status gets the never-updated reason after the grace period",
            conditions: vec![],
            lease: None,
            now: 41,
            rewritten: Some(("Unknown", REASON_NEVER_UPDATED)),
            recheck: None,
        },
        Case {
            name: "a new node without status is given the grace period",
            conditions: vec![],
            lease: None,
            now: 10,
            rewritten: None,
            recheck: Some(30),
        },
    ];
    for case in cases {
        let n = node(case.conditions, vec![], false);
        let l = case.lease.map(lease);
        let h = assess(&n, l.as_ref(), at(case.now), GRACE);
        assert_eq!(h.recheck_after.map(|d| d.as_secs()), case.recheck, "{}", case.name);
        match (case.rewritten, &h.conditions) {
            (None, None) => {}
            (Some((status, reason)), Some(conditions)) => {
                assert!(conditions.len() >= 4, "{}: every reported condition present", case.name);
                for c in conditions {
                    assert_eq!(c.status, "Unknown", "{}: {}", case.name, c.type_);
                }
                let ready = conditions.iter().find(|c| c.type_ == "Ready");
                assert_eq!(ready.map(|c| c.status.as_str()), Some(status), "{}", case.name);
                assert_eq!(ready.and_then(|c| c.reason.as_deref()), Some(reason), "{}", case.name);
                assert_eq!(ready.and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0), Some(at(case.now)));
            }
            (want, got) => panic!("{}: wanted {want:?}, got {got:?}", case.name),
        }
    }
}

#[test]
fn stopped_node_keeps_its_last_heartbeat_and_gets_upstream_message() {
    let n = node(vec![condition("Ready", "True", 5)], vec![], false);
    let h = assess(&n, Some(&lease(5)), at(100), GRACE);
    assert!(h.was_ready);
    let conditions = h.conditions.unwrap_or_default();
    let ready = conditions.iter().find(|c| c.type_ == "Ready").cloned().unwrap_or_else(|| condition("x", "x", 0));
    assert_eq!(ready.message.as_deref(), Some(MESSAGE_STOPPED));
    assert_eq!(ready.last_heartbeat_time.map(|t| t.0), Some(at(5)), "heartbeat time is the kubelet's, not ours");
}

#[test]
fn managed_taints_follow_conditions() {
    struct Case {
        name: &'static str,
        ready: Option<&'static str>,
        unschedulable: bool,
        existing: Vec<Taint>,
        /// Expected `key:effect` list after reconcile; `None` = unchanged.
        want: Option<Vec<&'static str>>,
    }
    let cases = [
        Case { name: "ready node, no taints", ready: Some("True"), unschedulable: false, existing: vec![], want: None },
        Case {
            name: "unknown gets unreachable both effects",
            ready: Some("Unknown"),
            unschedulable: false,
            existing: vec![],
            want: Some(vec!["node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"]),
        },
        Case {
            name: "false gets not-ready, replacing unreachable",
            ready: Some("False"),
            unschedulable: false,
            existing: vec![taint(UNREACHABLE, NO_EXECUTE, Some(1)), taint(UNREACHABLE, NO_SCHEDULE, None)],
            want: Some(vec!["node.kubernetes.io/not-ready:NoExecute", "node.kubernetes.io/not-ready:NoSchedule"]),
        },
        Case {
            name: "recovery removes managed taints and keeps foreign ones",
            ready: Some("True"),
            unschedulable: false,
            existing: vec![taint("dedicated", NO_SCHEDULE, None), taint(NOT_READY, NO_EXECUTE, Some(1))],
            want: Some(vec!["dedicated:NoSchedule"]),
        },
        Case {
            name: "cordon mirrors as unschedulable taint",
            ready: Some("True"),
            unschedulable: true,
            existing: vec![],
            want: Some(vec!["node.kubernetes.io/unschedulable:NoSchedule"]),
        },
        Case {
            name: "already in line",
            ready: Some("Unknown"),
            unschedulable: true,
            existing: vec![
                taint(UNSCHEDULABLE, NO_SCHEDULE, None),
                taint(UNREACHABLE, NO_EXECUTE, Some(3)),
                taint(UNREACHABLE, NO_SCHEDULE, None),
            ],
            want: None,
        },
    ];
    for case in cases {
        let conditions = case.ready.map(|s| vec![condition("Ready", s, 0)]).unwrap_or_default();
        let n = node(conditions, case.existing, case.unschedulable);
        let got = taints::reconcile(&n, at(50));
        let got_keys = got.as_ref().map(|ts| ts.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect::<Vec<_>>());
        let want = case.want.map(|w| w.into_iter().map(str::to_string).collect::<Vec<_>>());
        assert_eq!(got_keys, want, "{}", case.name);
        for t in got.iter().flatten() {
            if t.effect == NO_EXECUTE && (t.key == UNREACHABLE || t.key == NOT_READY) {
                assert_eq!(
                    t.time_added.as_ref().map(|t| t.0),
                    Some(at(50)),
                    "{}: new NoExecute taints are stamped",
                    case.name
                );
            }
        }
    }
}

#[test]
fn existing_no_execute_taints_keep_their_time_added() {
    let n = node(vec![condition("Ready", "Unknown", 0)], vec![taint(UNREACHABLE, NO_EXECUTE, Some(7))], true);
    let next = taints::reconcile(&n, at(50)).unwrap_or_default();
    let kept = next.iter().find(|t| t.key == UNREACHABLE && t.effect == NO_EXECUTE).and_then(|t| t.time_added.clone());
    assert_eq!(kept.map(|t| t.0), Some(at(7)));
}

fn pod(name: &str, tolerations: Vec<Toleration>) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
        spec: Some(PodSpec {
            node_name: Some("n1".into()),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            ..Default::default()
        }),
        status: Some(PodStatus { phase: Some("Running".into()), ..Default::default() }),
    })
}

fn toleration(key: &str, effect: Option<&str>, seconds: Option<i64>) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: effect.map(str::to_string),
        toleration_seconds: seconds,
        value: None,
    }
}

#[test]
fn eviction_timing() {
    struct Case {
        name: &'static str,
        tolerations: Vec<Toleration>,
        taints: Vec<Taint>,
        now: i64,
        evict: bool,
        recheck: Option<u64>,
    }
    let cases = [
        Case {
            name: "default toleration: 300 s after the taint",
            tolerations: vec![],
            taints: vec![taint(UNREACHABLE, NO_EXECUTE, Some(100))],
            now: 150,
            evict: false,
            recheck: Some(250),
        },
        Case {
            name: "default toleration runs out",
            tolerations: vec![],
            taints: vec![taint(UNREACHABLE, NO_EXECUTE, Some(100))],
            now: 100 + DEFAULT_TOLERATION_SECONDS,
            evict: true,
            recheck: None,
        },
        Case {
            name: "explicit short toleration wins over the default",
            tolerations: vec![toleration(UNREACHABLE, Some(NO_EXECUTE), Some(5))],
            taints: vec![taint(UNREACHABLE, NO_EXECUTE, Some(100))],
            now: 103,
            evict: false,
            recheck: Some(2),
        },
        Case {
            name: "explicit short toleration runs out",
            tolerations: vec![toleration(UNREACHABLE, Some(NO_EXECUTE), Some(5))],
            taints: vec![taint(UNREACHABLE, NO_EXECUTE, Some(100))],
            now: 105,
            evict: true,
            recheck: None,
        },
        Case {
            name: "toleration without seconds tolerates forever",
            tolerations: vec![toleration(UNREACHABLE, None, None)],
            taints: vec![taint(UNREACHABLE, NO_EXECUTE, Some(100))],
            now: 100_000,
            evict: false,
            recheck: None,
        },
        Case {
            name: "an untolerated NoExecute taint evicts at once",
            tolerations: vec![],
            taints: vec![taint("dedicated", NO_EXECUTE, Some(100))],
            now: 100,
            evict: true,
            recheck: None,
        },
        Case {
            name: "NoSchedule taints evict nothing",
            tolerations: vec![],
            taints: vec![taint(UNREACHABLE, NO_SCHEDULE, None)],
            now: 100_000,
            evict: false,
            recheck: None,
        },
        Case {
            name: "the smallest tolerationSeconds among taints counts",
            tolerations: vec![toleration("a", None, Some(60)), toleration("b", None, Some(10))],
            taints: vec![taint("a", NO_EXECUTE, Some(100)), taint("b", NO_EXECUTE, Some(100))],
            now: 105,
            evict: false,
            recheck: Some(5),
        },
    ];
    for case in cases {
        let pods = vec![pod("p", case.tolerations)];
        let plan = eviction::plan(&pods, &case.taints, at(case.now), |_| at(0));
        assert_eq!(!plan.evict.is_empty(), case.evict, "{}", case.name);
        assert_eq!(plan.recheck_after.map(|d| d.as_secs()), case.recheck, "{}", case.name);
    }
}

#[test]
fn terminating_and_finished_pods_are_not_evicted_again() {
    let mut deleting = (*pod("a", vec![])).clone();
    deleting.metadata.deletion_timestamp = Some(Time(at(1)));
    let mut done = (*pod("b", vec![])).clone();
    done.status = Some(PodStatus { phase: Some("Succeeded".into()), ..Default::default() });
    let pods = vec![Arc::new(deleting), Arc::new(done)];
    let plan = eviction::plan(&pods, &[taint("dedicated", NO_EXECUTE, None)], at(100), |_| at(0));
    assert!(plan.evict.is_empty());
}

#[test]
fn taints_without_time_added_count_from_first_sight() {
    let pods = vec![pod("p", vec![toleration("x", None, Some(30))])];
    let plan = eviction::plan(&pods, &[taint("x", NO_EXECUTE, None)], at(100), |_| at(90));
    assert_eq!(plan.recheck_after, Some(Duration::from_secs(20)));
}
