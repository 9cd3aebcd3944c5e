//! What a simulated kubelet does with one pod bound to its node, decided from a snapshot of the pod:
//! start it (Running, IPs, conditions, container statuses), let its containers exit after
//! `sim.gantry.dev/run-seconds`, restart them or finish the pod per `restartPolicy`, and complete a
//! graceful deletion. Pure: the caller supplies the clock and the addresses; no I/O here.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, HostIP, Pod, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Containers exit this many seconds after they start.
pub const RUN_SECONDS: &str = "sim.gantry.dev/run-seconds";
/// ... with this exit code (default 0).
pub const EXIT_CODE: &str = "sim.gantry.dev/exit-code";
/// `"false"` keeps the pod's containers unready.
pub const READY: &str = "sim.gantry.dev/ready";

/// What the node must do about a pod.
#[derive(Clone, Debug, PartialEq)]
pub enum PodAction {
    /// Nothing to write; look again after `wake_in` if set.
    Wait { wake_in: Option<Duration> },
    /// Write this status (a full replacement of the fields the kubelet owns); look again after `wake_in`.
    Status { status: Box<PodStatus>, wake_in: Option<Duration> },
    /// Containers are gone: remove the pod for good (grace 0, precondition on this uid).
    Delete { uid: String },
}

/// The node-side facts the plan needs besides the pod.
#[derive(Clone, Debug)]
pub struct PodFacts {
    pub now: Timestamp,
    pub host_ip: String,
    /// The address to give the pod if it has none yet.
    pub pod_ip: String,
}

/// How the pod's annotations ask its containers to behave.
#[derive(Clone, Debug, PartialEq)]
struct Behaviour {
    run_seconds: Option<i64>,
    exit_code: i32,
    ready: bool,
}

impl Behaviour {
    fn of(pod: &Pod) -> Self {
        let empty = BTreeMap::new();
        let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
        let get = |key: &str| annotations.get(key).map(|v| v.trim());
        Self {
            run_seconds: get(RUN_SECONDS).and_then(|v| v.parse::<i64>().ok()).map(|s| s.max(0)),
            exit_code: get(EXIT_CODE).and_then(|v| v.parse::<i32>().ok()).unwrap_or(0),
            ready: get(READY) != Some("false"),
        }
    }
}

/// The containers' current run as recorded in the status.
#[derive(Clone, Debug)]
struct Run {
    since: Timestamp,
    restarts: i32,
    last: Option<ContainerStateTerminated>,
}

/// Times in Pod status have whole-second precision on the wire; planning with the truncated clock keeps
/// a freshly written status equal to what the watch later returns.
pub(crate) fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// Decides what to do with `pod`, a pod bound to a live simulated node.
pub fn plan_pod(pod: &Pod, facts: &PodFacts) -> PodAction {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodAction::Delete { uid: pod.metadata.uid.clone().unwrap_or_default() };
    }
    let current = pod.status.clone().unwrap_or_default();
    if matches!(current.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return PodAction::Wait { wake_in: None };
    }
    let now = whole_second(facts.now);
    let behaviour = Behaviour::of(pod);
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let mut run = current_run(&current).unwrap_or(Run { since: now, restarts: 0, last: None });
    let mut wake_in = None;
    let mut outcome = None;
    if let Some(seconds) = behaviour.run_seconds {
        let exit_at = run.since.checked_add(SignedDuration::from_secs(seconds)).unwrap_or(run.since);
        if now >= exit_at {
            let finished = terminated(&behaviour, run.since, exit_at, None);
            let restart = match policy {
                "Never" => false,
                "OnFailure" => behaviour.exit_code != 0,
                _ => true,
            };
            if restart {
                run = Run { since: now, restarts: run.restarts.saturating_add(1), last: Some(finished) };
                wake_in = Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0).max(1)));
            } else {
                outcome = Some(finished);
            }
        } else {
            wake_in = Some(to_std(exit_at.duration_since(facts.now)));
        }
    }
    let desired = match outcome {
        Some(finished) => finished_status(pod, &current, facts, now, finished, behaviour.exit_code),
        None => running_status(pod, &current, facts, now, &run, behaviour.ready),
    };
    if same_status(&desired, &current) {
        PodAction::Wait { wake_in }
    } else {
        PodAction::Status { status: Box::new(desired), wake_in }
    }
}

/// Equality as the API round-trips it: absent, null and empty values are the same, so a server that
/// drops empty objects cannot make the node rewrite an unchanged status forever.
fn same_status(a: &PodStatus, b: &PodStatus) -> bool {
    fn prune(v: serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value;
        match v {
            Value::Null => None,
            Value::Object(map) => {
                let map: serde_json::Map<_, _> =
                    map.into_iter().filter_map(|(k, v)| prune(v).map(|v| (k, v))).collect();
                (!map.is_empty()).then_some(Value::Object(map))
            }
            Value::Array(items) => {
                let items: Vec<_> = items.into_iter().map(|v| prune(v).unwrap_or_default()).collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            other => Some(other),
        }
    }
    let json = |s: &PodStatus| serde_json::to_value(s).ok().and_then(prune);
    a == b || json(a) == json(b)
}

fn current_run(status: &PodStatus) -> Option<Run> {
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let first = status.container_statuses.as_ref()?.first()?;
    let since = first.state.as_ref()?.running.as_ref()?.started_at.as_ref()?.0;
    let last = first.last_state.as_ref().and_then(|s| s.terminated.clone());
    Some(Run { since, restarts: first.restart_count, last })
}

fn terminated(
    behaviour: &Behaviour,
    since: Timestamp,
    finished: Timestamp,
    container_id: Option<String>,
) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: behaviour.exit_code,
        reason: Some(if behaviour.exit_code == 0 { "Completed" } else { "Error" }.to_string()),
        started_at: Some(Time(since)),
        finished_at: Some(Time(finished)),
        container_id,
        ..ContainerStateTerminated::default()
    }
}

fn container_id(pod: &Pod, container: &str, restarts: i32) -> String {
    format!("sim://{}/{container}/{restarts}", pod.metadata.uid.as_deref().unwrap_or_default())
}

/// Sets the condition `type_`, keeping its transition time when its status does not change.
fn set_condition(conditions: &mut Vec<PodCondition>, type_: &str, ok: bool, reason: Option<&str>, now: Timestamp) {
    let status = if ok { "True" } else { "False" };
    let reason = reason.map(str::to_string);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => c.reason = reason,
        Some(c) => {
            c.status = status.to_string();
            c.reason = reason;
            c.message = None;
            c.last_transition_time = Some(Time(now));
        }
        None => conditions.push(PodCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason,
            last_transition_time: Some(Time(now)),
            ..PodCondition::default()
        }),
    }
}

/// The fields every started pod has: addresses, start time, scheduled/initialized conditions and
/// completed init containers.
fn started(pod: &Pod, current: &PodStatus, facts: &PodFacts, now: Timestamp) -> PodStatus {
    let mut status = current.clone();
    let pod_ip = current.pod_ip.clone().unwrap_or_else(|| facts.pod_ip.clone());
    status.host_ip = Some(facts.host_ip.clone());
    status.host_ips = Some(vec![HostIP { ip: facts.host_ip.clone() }]);
    status.pod_ips = Some(vec![PodIP { ip: pod_ip.clone() }]);
    status.pod_ip = Some(pod_ip);
    status.start_time = current.start_time.clone().or(Some(Time(now)));
    let mut conditions = current.conditions.clone().unwrap_or_default();
    set_condition(&mut conditions, "PodScheduled", true, None, now);
    set_condition(&mut conditions, "PodReadyToStartContainers", true, None, now);
    set_condition(&mut conditions, "Initialized", true, None, now);
    status.conditions = Some(conditions);
    let init: Vec<ContainerStatus> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| {
            let previous = current.init_container_statuses.iter().flatten().find(|s| s.name == c.name);
            let state = previous.and_then(|p| p.state.clone()).unwrap_or_else(|| ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 0,
                    reason: Some("Completed".to_string()),
                    started_at: Some(Time(now)),
                    finished_at: Some(Time(now)),
                    container_id: Some(container_id(pod, &c.name, 0)),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            });
            ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: format!("sim://{}", c.image.as_deref().unwrap_or_default()),
                container_id: Some(container_id(pod, &c.name, 0)),
                ready: true,
                started: Some(false),
                state: Some(state),
                ..ContainerStatus::default()
            }
        })
        .collect();
    status.init_container_statuses = (!init.is_empty()).then_some(init);
    status
}

fn container_statuses(pod: &Pod, make: impl Fn(&str, &str) -> ContainerStatus) -> Vec<ContainerStatus> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| make(&c.name, c.image.as_deref().unwrap_or_default()))
        .collect()
}

fn running_status(
    pod: &Pod,
    current: &PodStatus,
    facts: &PodFacts,
    now: Timestamp,
    run: &Run,
    ready: bool,
) -> PodStatus {
    let mut status = started(pod, current, facts, now);
    status.phase = Some("Running".to_string());
    let mut conditions = status.conditions.take().unwrap_or_default();
    let reason = (!ready).then_some("ContainersNotReady");
    set_condition(&mut conditions, "ContainersReady", ready, reason, now);
    set_condition(&mut conditions, "Ready", ready, reason, now);
    status.conditions = Some(conditions);
    status.container_statuses = Some(container_statuses(pod, |name, image| ContainerStatus {
        name: name.to_string(),
        image: image.to_string(),
        image_id: format!("sim://{image}"),
        container_id: Some(container_id(pod, name, run.restarts)),
        ready,
        started: Some(true),
        restart_count: run.restarts,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(run.since)) }),
            ..ContainerState::default()
        }),
        last_state: Some(ContainerState {
            terminated: run.last.clone().map(|t| ContainerStateTerminated {
                container_id: Some(container_id(pod, name, run.restarts.saturating_sub(1))),
                ..t
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }));
    status
}

fn finished_status(
    pod: &Pod,
    current: &PodStatus,
    facts: &PodFacts,
    now: Timestamp,
    finished: ContainerStateTerminated,
    exit_code: i32,
) -> PodStatus {
    let mut status = started(pod, current, facts, now);
    status.phase = Some(if exit_code == 0 { "Succeeded" } else { "Failed" }.to_string());
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(&mut conditions, "ContainersReady", false, Some("PodCompleted"), now);
    set_condition(&mut conditions, "Ready", false, Some("PodCompleted"), now);
    set_condition(&mut conditions, "PodReadyToStartContainers", false, None, now);
    status.conditions = Some(conditions);
    let previous = current.container_statuses.clone().unwrap_or_default();
    status.container_statuses = Some(container_statuses(pod, |name, image| {
        let restarts = previous.iter().find(|s| s.name == name).map(|s| s.restart_count).unwrap_or(0);
        ContainerStatus {
            name: name.to_string(),
            image: image.to_string(),
            image_id: format!("sim://{image}"),
            container_id: Some(container_id(pod, name, restarts)),
            ready: false,
            started: Some(false),
            restart_count: restarts,
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    container_id: Some(container_id(pod, name, restarts)),
                    ..finished.clone()
                }),
                ..ContainerState::default()
            }),
            last_state: previous.iter().find(|s| s.name == name).and_then(|s| s.last_state.clone()),
            ..ContainerStatus::default()
        }
    }));
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn facts(second: i64) -> PodFacts {
        PodFacts { now: at(second), host_ip: "127.1.0.1".into(), pod_ip: "10.0.0.7".into() }
    }

    fn pod(annotations: &[(&str, &str)], policy: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("sim-node-0".into()),
                restart_policy: Some(policy.into()),
                containers: vec![
                    Container { name: "app".into(), image: Some("nginx".into()), ..Container::default() },
                    Container { name: "side".into(), image: Some("busybox".into()), ..Container::default() },
                ],
                ..PodSpec::default()
            }),
            status: Some(PodStatus { phase: Some("Pending".into()), ..PodStatus::default() }),
        }
    }

    /// Applies the plan's status to the pod (what the API would return) and returns the action.
    fn step(pod: &mut Pod, second: i64) -> PodAction {
        let action = plan_pod(pod, &facts(second));
        if let PodAction::Status { status, .. } = &action {
            pod.status = Some((**status).clone());
        }
        action
    }

    fn condition(pod: &Pod, type_: &str) -> Option<String> {
        pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).map(|c| c.status.clone())
    }

    fn status(pod: &Pod) -> PodStatus {
        pod.status.clone().unwrap_or_default()
    }

    #[test]
    fn a_new_pod_starts_running_and_ready_and_is_then_stable() {
        let mut p = pod(&[], "Always");
        assert!(matches!(step(&mut p, 0), PodAction::Status { wake_in: None, .. }));
        let s = status(&p);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(s.host_ip.as_deref(), Some("127.1.0.1"));
        assert_eq!(s.start_time, Some(Time(at(0))));
        for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert_eq!(condition(&p, c).as_deref(), Some("True"), "{c}");
        }
        let containers = s.container_statuses.unwrap_or_default();
        assert_eq!(containers.len(), 2);
        for c in &containers {
            assert!(c.ready && c.started == Some(true) && c.restart_count == 0);
            assert!(c.container_id.as_deref().is_some_and(|id| id.starts_with("sim://")));
            assert!(c.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
        }
        assert_eq!(step(&mut p, 30), PodAction::Wait { wake_in: None }, "only writes on change");
    }

    #[test]
    fn ready_false_annotation_keeps_the_pod_unready_and_flipping_it_is_a_change() {
        let mut p = pod(&[(READY, "false")], "Always");
        step(&mut p, 0);
        assert_eq!(status(&p).phase.as_deref(), Some("Running"));
        assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
        assert_eq!(condition(&p, "ContainersReady").as_deref(), Some("False"));
        p.metadata.annotations = None;
        assert!(matches!(step(&mut p, 5), PodAction::Status { .. }));
        assert_eq!(condition(&p, "Ready").as_deref(), Some("True"));
    }

    #[test]
    fn containers_exit_per_restart_policy() {
        struct Case {
            policy: &'static str,
            code: &'static str,
            phase: &'static str,
            restarts: i32,
        }
        let cases = [
            Case { policy: "Never", code: "0", phase: "Succeeded", restarts: 0 },
            Case { policy: "Never", code: "3", phase: "Failed", restarts: 0 },
            Case { policy: "OnFailure", code: "0", phase: "Succeeded", restarts: 0 },
            Case { policy: "OnFailure", code: "3", phase: "Running", restarts: 1 },
            Case { policy: "Always", code: "0", phase: "Running", restarts: 1 },
            Case { policy: "Always", code: "3", phase: "Running", restarts: 1 },
        ];
        for case in cases {
            let name = format!("{} exit {}", case.policy, case.code);
            let mut p = pod(&[(RUN_SECONDS, "2"), (EXIT_CODE, case.code)], case.policy);
            assert!(
                matches!(step(&mut p, 0), PodAction::Status { wake_in: Some(d), .. } if d == Duration::from_secs(2))
            );
            assert_eq!(step(&mut p, 1), PodAction::Wait { wake_in: Some(Duration::from_secs(1)) }, "{name}");
            assert!(matches!(step(&mut p, 2), PodAction::Status { .. }), "{name}");
            let s = status(&p);
            assert_eq!(s.phase.as_deref(), Some(case.phase), "{name}");
            let c = s.container_statuses.unwrap_or_default().into_iter().next().unwrap_or_default();
            assert_eq!(c.restart_count, case.restarts, "{name}");
            let code: i32 = case.code.parse().unwrap_or_default();
            let reason = if code == 0 { "Completed" } else { "Error" };
            if case.phase == "Running" {
                let last = c.last_state.and_then(|s| s.terminated).unwrap_or_default();
                assert_eq!((last.exit_code, last.reason.as_deref()), (code, Some(reason)), "{name}");
                assert!(c.state.and_then(|s| s.running).is_some(), "{name}");
                assert!(c.ready, "{name}");
                assert_eq!(step(&mut p, 3), PodAction::Wait { wake_in: Some(Duration::from_secs(1)) }, "{name}");
            } else {
                let term = c.state.and_then(|s| s.terminated).unwrap_or_default();
                assert_eq!((term.exit_code, term.reason.as_deref()), (code, Some(reason)), "{name}");
                assert!(!c.ready, "{name}");
                assert_eq!(condition(&p, "Ready").as_deref(), Some("False"), "{name}");
                assert_eq!(step(&mut p, 10), PodAction::Wait { wake_in: None }, "{name}: terminal is final");
            }
        }
    }

    #[test]
    fn a_deleting_pod_is_removed_with_its_uid() {
        let mut p = pod(&[], "Always");
        step(&mut p, 0);
        p.metadata.deletion_timestamp = Some(Time(at(1)));
        assert_eq!(step(&mut p, 1), PodAction::Delete { uid: "u1".into() });
    }

    #[test]
    fn an_existing_pod_ip_and_start_time_are_kept() {
        let mut p = pod(&[], "Always");
        p.status = Some(PodStatus {
            phase: Some("Pending".into()),
            pod_ip: Some("10.9.9.9".into()),
            start_time: Some(Time(at(-5))),
            ..PodStatus::default()
        });
        step(&mut p, 0);
        assert_eq!(status(&p).pod_ip.as_deref(), Some("10.9.9.9"));
        assert_eq!(status(&p).start_time, Some(Time(at(-5))));
    }

    #[test]
    fn status_equality_ignores_empty_values() {
        let a = PodStatus { conditions: Some(vec![]), ..PodStatus::default() };
        assert!(same_status(&a, &PodStatus::default()));
        let b = PodStatus { phase: Some("Running".into()), ..PodStatus::default() };
        assert!(!same_status(&b, &PodStatus::default()));
    }
}
