//! What a live (not deleting) pod needs from the runtime next, as a pure function of the pod, what the
//! runtime holds for it, the back-off state and the clock. Follows the kubelet's `computePodActions`:
//! a ready sandbox first, then init containers one at a time in order, then every container, each
//! restarted per `restartPolicy` behind its back-off. Deletion is not planned here (see `worker`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;

use super::backoff::{go_duration, BackOff};
use super::grace::StopReason;
use super::observed::{ContainerInfo, Observed, RunState};
use super::probe::{ProbeKind, ProbeResults};

/// One runtime step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop and remove a sandbox (and with it its containers).
    RemoveSandbox {
        id: String,
    },
    /// Stop a sandbox but keep it (and its exited containers) for status and logs.
    StopSandbox {
        id: String,
    },
    CreateSandbox {
        attempt: u32,
    },
    /// Pull (per policy), create and start a container; `restart_of` is the finish time of the attempt it
    /// replaces, recorded in the back-off.
    StartContainer {
        name: String,
        init: bool,
        attempt: u32,
        restart_of: Option<Timestamp>,
    },
    /// Start a container created by an agent that died before starting it.
    StartCreated {
        id: String,
    },
    RemoveContainer {
        id: String,
    },
    /// Stop a running container (preStop hook first) because a probe failed; the restart policy
    /// decides on the next pass whether it starts again.
    KillContainer {
        id: String,
        name: String,
        reason: StopReason,
    },
}

/// Why a container is not running (shown as its waiting state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// The result of planning one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Waiting reasons the planner imposed (back-offs), by container name.
    pub waiting: BTreeMap<String, Waiting>,
    /// When a back-off ends and the pod should be planned again.
    pub wake_after: Option<Duration>,
}

/// Image pull failures by container name: when it failed and the runtime's message.
pub type PullFailures = BTreeMap<String, (Timestamp, String)>;

/// The pod's `restartPolicy` (default `Always`).
pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().and_then(|s| s.init_containers.as_deref()).unwrap_or_default()
}

fn containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default()
}

/// Whether the pod has run to completion (kubelet stops terminal pods and never restarts them).
pub fn finished(pod: &Pod, observed: &Observed) -> bool {
    let policy = restart_policy(pod);
    if policy == "Always" {
        return false;
    }
    if policy == "Never" && init_containers(pod).iter().any(|c| observed.latest(&c.name).is_some_and(|l| l.failed())) {
        return true;
    }
    let all = containers(pod);
    !all.is_empty()
        && all.iter().all(|c| match observed.latest(&c.name) {
            Some(l) if policy == "Never" => l.state == RunState::Exited,
            Some(l) => l.succeeded(),
            None => false,
        })
}

/// Plans the next runtime steps for a live pod. `probes` are the published probe results: a running
/// container whose liveness or startup probe failed is killed.
pub fn plan(
    pod: &Pod,
    observed: &Observed,
    backoff: &BackOff,
    pulls: &PullFailures,
    probes: &ProbeResults,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    if finished(pod, observed) {
        for s in observed.sandboxes.iter().filter(|s| s.ready) {
            plan.actions.push(Action::StopSandbox { id: s.id.clone() });
        }
        return plan;
    }
    let Some(sandbox) = observed.ready_sandbox() else {
        // No usable sandbox (never created, or it died): replace it; containers follow on the next pass.
        for s in &observed.sandboxes {
            plan.actions.push(Action::RemoveSandbox { id: s.id.clone() });
        }
        let attempt = observed.sandboxes.iter().map(|s| s.attempt + 1).max().unwrap_or(0);
        plan.actions.push(Action::CreateSandbox { attempt });
        return plan;
    };
    for s in observed.sandboxes.iter().filter(|s| s.id != sandbox.id && s.ready) {
        plan.actions.push(Action::RemoveSandbox { id: s.id.clone() });
    }
    let policy = restart_policy(pod);
    let mut initialized = true;
    for c in init_containers(pod) {
        match observed.latest_in(&c.name, &sandbox.id) {
            Some(l) if l.succeeded() => continue,
            Some(l) if matches!(l.state, RunState::Running | RunState::Unknown) => {}
            Some(l) if l.state == RunState::Created => plan.actions.push(Action::StartCreated { id: l.id.clone() }),
            // A failed init container with policy Never ends the pod (see `finished`).
            Some(l) if policy == "Never" => debug_assert!(l.failed()),
            latest => plan_start(&mut plan, pod, c, true, latest, observed, backoff, pulls, now),
        }
        initialized = false;
        break;
    }
    if initialized {
        for c in containers(pod) {
            let latest = observed.latest_in(&c.name, &sandbox.id);
            match latest {
                Some(l) if l.state == RunState::Running => {
                    if let Some(kind) = probes.kill_reason(c, &l.id) {
                        let reason = if kind == ProbeKind::Startup {
                            StopReason::StartupProbe
                        } else {
                            StopReason::LivenessProbe
                        };
                        plan.actions.push(Action::KillContainer { id: l.id.clone(), name: c.name.clone(), reason });
                    }
                }
                Some(l) if l.state == RunState::Unknown => {}
                Some(l) if l.state == RunState::Created => plan.actions.push(Action::StartCreated { id: l.id.clone() }),
                Some(l) if policy == "Never" || (policy == "OnFailure" && l.succeeded()) => {}
                _ => plan_start(&mut plan, pod, c, false, latest, observed, backoff, pulls, now),
            }
        }
    }
    prune(&mut plan, pod, observed);
    plan
}

#[allow(clippy::too_many_arguments)]
fn plan_start(
    plan: &mut Plan,
    pod: &Pod,
    c: &Container,
    init: bool,
    latest: Option<&ContainerInfo>,
    observed: &Observed,
    backoff: &BackOff,
    pulls: &PullFailures,
    now: Timestamp,
) {
    let wait = |plan: &mut Plan, reason: &str, message: String, remaining: Duration| {
        plan.waiting.insert(c.name.clone(), Waiting { reason: reason.into(), message });
        plan.wake_after = Some(plan.wake_after.map_or(remaining, |w| w.min(remaining)));
    };
    if let Some((failed_at, error)) = pulls.get(&c.name) {
        if let Some(remaining) = backoff.remaining(&pull_key(&c.name), *failed_at, now) {
            let image = c.image.as_deref().unwrap_or_default();
            let message = format!("Back-off pulling image \"{image}\": ErrImagePull: {error}");
            wait(plan, "ImagePullBackOff", message, remaining);
            return;
        }
    }
    let restart_of = latest.filter(|l| l.state == RunState::Exited).map(|l| nanos_to_timestamp(l.finished_at));
    if let Some(finished) = restart_of {
        if let Some(remaining) = backoff.remaining(&c.name, finished, now) {
            let delay = backoff.delay(&c.name).unwrap_or(remaining);
            let meta = &pod.metadata;
            let message = format!(
                "back-off {} restarting failed container={} pod={}_{}({})",
                go_duration(delay),
                c.name,
                meta.name.as_deref().unwrap_or_default(),
                meta.namespace.as_deref().unwrap_or_default(),
                meta.uid.as_deref().unwrap_or_default()
            );
            wait(plan, "CrashLoopBackOff", message, remaining);
            return;
        }
    }
    let attempt = observed.next_attempt(&c.name);
    plan.actions.push(Action::StartContainer { name: c.name.clone(), init, attempt, restart_of });
}

/// Exited attempts beyond the newest two of each container are removed (kubelet keeps one dead
/// container per container for `lastState` and `--previous` logs).
fn prune(plan: &mut Plan, pod: &Pod, observed: &Observed) {
    for c in init_containers(pod).iter().chain(containers(pod)) {
        for old in observed.attempts(&c.name).into_iter().skip(2) {
            if old.state != RunState::Running {
                plan.actions.push(Action::RemoveContainer { id: old.id.clone() });
            }
        }
    }
}

/// The back-off key of a container's image pulls.
pub fn pull_key(name: &str) -> String {
    format!("pull/{name}")
}

/// A CRI time (nanoseconds since the epoch) as a timestamp.
pub fn nanos_to_timestamp(nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
pub(crate) mod tests;
