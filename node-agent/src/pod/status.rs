//! A pod's status as a pure function of the pod, what the runtime holds for it and the waiting
//! reasons the worker knows (back-offs, pull and config errors): phase (kubelet's `getPhase`),
//! conditions with stable transition times, container statuses, IPs, start time and QoS class.
//! Times are whole seconds, as the API stores them, so an unchanged pod compares equal.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::observed::{ContainerInfo, Observed, RunState};
use super::plan::{nanos_to_timestamp, restart_policy, Waiting};
use super::probe::ProbeResults;
use super::resources::qos_class;

/// Inputs besides the pod and the runtime snapshot.
#[derive(Debug, Clone)]
pub struct StatusContext<'a> {
    pub waiting: &'a BTreeMap<String, Waiting>,
    /// Published probe results: a running container is started and ready only as they say.
    pub probes: &'a ProbeResults,
    pub host_ip: &'a str,
    pub now: Timestamp,
}

/// A time truncated to whole seconds (what the API keeps).
pub fn seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

fn cri_time(nanos: i64) -> Option<Time> {
    (nanos > 0).then(|| seconds(nanos_to_timestamp(nanos)))
}

fn terminated(c: &ContainerInfo) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(format!("containerd://{}", c.id)),
            exit_code: c.exit_code,
            reason: Some(c.termination_reason()),
            message: Some(c.message.clone()).filter(|m| !m.is_empty()),
            started_at: cri_time(c.started_at),
            finished_at: cri_time(c.finished_at),
            signal: None,
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: message.filter(|m| !m.is_empty()).map(Into::into),
        }),
        ..Default::default()
    }
}

fn container_status(
    c: &Container,
    init: bool,
    observed: &Observed,
    ctx: &StatusContext<'_>,
    default_wait: &str,
) -> ContainerStatus {
    let attempts = observed.attempts(&c.name);
    let latest = attempts.first().copied();
    let previous = attempts.get(1).copied();
    let imposed = ctx.waiting.get(&c.name);
    let (state, last) = match (latest, imposed) {
        (Some(l), None) if l.state == RunState::Running => (
            ContainerState {
                running: Some(ContainerStateRunning { started_at: cri_time(l.started_at) }),
                ..Default::default()
            },
            previous.map(terminated),
        ),
        (Some(l), Some(w)) if l.state == RunState::Exited => {
            (waiting(&w.reason, Some(&w.message)), Some(terminated(l)))
        }
        (Some(l), None) if l.state == RunState::Exited => (terminated(l), previous.map(terminated)),
        (_, Some(w)) => {
            (waiting(&w.reason, Some(&w.message)), latest.filter(|l| l.state == RunState::Exited).map(terminated))
        }
        (Some(_), None) => (waiting("ContainerCreating", None), previous.map(terminated)),
        (None, None) => (waiting(default_wait, None), None),
    };
    let running = state.running.is_some();
    let running_id = latest.filter(|_| running).map(|l| l.id.as_str());
    let started = running_id.is_some_and(|id| init || ctx.probes.started(c, id));
    let ready = if init {
        state.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
    } else {
        running_id.is_some_and(|id| ctx.probes.ready(c, id))
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: latest.map(|l| l.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|l| format!("containerd://{}", l.id)),
        restart_count: latest.map_or(0, |l| l.attempt as i32),
        ready,
        started: Some(started),
        state: Some(state),
        last_state: Some(last.unwrap_or_default()),
        ..Default::default()
    }
}

/// Counts behind kubelet's phase decision.
fn phase(pod: &Pod, init_done: bool, init_failed: bool, statuses: &[ContainerStatus]) -> &'static str {
    let policy = restart_policy(pod);
    if !init_done {
        return if init_failed && policy == "Never" { "Failed" } else { "Pending" };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.as_ref();
        if state.is_some_and(|st| st.running.is_some()) {
            running += 1;
        } else if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.last_state.as_ref().is_some_and(|l| l.terminated.is_some()) {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "OnFailure" => "Running",
            _ => "Failed",
        }
    } else {
        "Pending"
    }
}

fn condition(type_: &str, ok: bool, reason: Option<String>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
        ..Default::default()
    }
}

fn names_where(statuses: &[ContainerStatus], pred: impl Fn(&ContainerStatus) -> bool) -> Vec<String> {
    statuses.iter().filter(|s| pred(s)).map(|s| s.name.clone()).collect()
}

/// The status the pod should have now.
pub fn pod_status(pod: &Pod, observed: &Observed, ctx: &StatusContext<'_>) -> PodStatus {
    let old = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let init_specs = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    let specs = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init_statuses: Vec<_> =
        init_specs.iter().map(|c| container_status(c, true, observed, ctx, "PodInitializing")).collect();
    let pending_init = names_where(&init_statuses, |s| !s.ready);
    let init_done = pending_init.is_empty();
    let init_failed = init_statuses.iter().any(|s| {
        let state = s.state.as_ref();
        state.and_then(|st| st.terminated.as_ref()).is_some_and(|t| t.exit_code != 0)
    });
    let default_wait = if init_done { "ContainerCreating" } else { "PodInitializing" };
    let statuses: Vec<_> = specs.iter().map(|c| container_status(c, false, observed, ctx, default_wait)).collect();
    let old_phase = old.and_then(|s| s.phase.as_deref());
    let phase = match old_phase {
        Some(p @ ("Succeeded" | "Failed")) => p.to_string(),
        _ => phase(pod, init_done, init_failed, &statuses).to_string(),
    };
    let unready = names_where(&statuses, |s| !s.ready);
    let list = |names: &[String]| format!("[{}]", names.join(" "));
    let terminal = phase == "Succeeded" || phase == "Failed";
    let not_ready_reason = if terminal { "PodCompleted" } else { "ContainersNotReady" };
    let containers_ready = unready.is_empty() && !terminal;
    let conditions = vec![
        condition("PodScheduled", true, None, None),
        condition(
            "Initialized",
            init_done,
            Some("ContainersNotInitialized".into()),
            Some(format!("containers with incomplete status: {}", list(&pending_init))),
        ),
        condition(
            "ContainersReady",
            containers_ready,
            Some(not_ready_reason.into()),
            Some(format!("containers with unready status: {}", list(&unready))).filter(|_| !terminal),
        ),
        condition(
            "Ready",
            containers_ready,
            Some(not_ready_reason.into()),
            Some(format!("containers with unready status: {}", list(&unready))).filter(|_| !terminal),
        ),
    ];
    let old_conditions = old.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let conditions = conditions
        .into_iter()
        .map(|mut c| {
            let since = old_conditions
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
                .and_then(|o| o.last_transition_time.clone());
            c.last_transition_time = Some(since.unwrap_or_else(|| seconds(ctx.now)));
            c
        })
        .collect();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let pod_ip = if host_network {
        Some(ctx.host_ip.to_string())
    } else {
        observed
            .ready_sandbox()
            .and_then(|s| s.ip.clone())
            .filter(|ip| !ip.is_empty())
            .or_else(|| old.and_then(|s| s.pod_ip.clone()))
    };
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(ctx.host_ip.to_string()),
        host_ips: Some(vec![HostIP { ip: ctx.host_ip.to_string() }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: old.and_then(|s| s.start_time.clone()).or_else(|| Some(seconds(ctx.now))),
        qos_class: Some(qos_class(pod).into()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
