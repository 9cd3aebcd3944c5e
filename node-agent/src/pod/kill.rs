//! Stopping a container the kubelet's way: a `Killing` event saying why, the `preStop` hook (if any,
//! and if there is grace to spend) bounded by the grace period, then StopContainer (SIGTERM, SIGKILL
//! when the rest of the grace is up). Used for liveness/startup kills, failed postStart hooks and
//! pod deletion (every running container in parallel); and the postStart hook, whose failure kills
//! the container. The arithmetic is in [`super::grace`].

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use tracing::{info, warn};

use super::grace::{kill_grace_seconds, killing_message, stop_grace, StopReason};
use super::hooks::{run_hook, Hook, POST_START_LIMIT};
use super::observed::{Observed, RunState};
use super::plan::Waiting;
use crate::events::{EventRecorder, EventType};
use crate::runtime::{Runtime, RuntimeError};

/// Stops container `c` (id `id`) of `pod` for `reason`. `pod_ip` is where an `httpGet` preStop hook
/// connects.
pub async fn kill_container(
    runtime: &Runtime,
    events: &EventRecorder,
    pod: &Pod,
    c: &Container,
    id: &str,
    pod_ip: &str,
    reason: StopReason,
) -> Result<(), RuntimeError> {
    let grace = kill_grace_seconds(pod, c, reason);
    events.record(pod, Some(&c.name), EventType::Normal, "Killing", killing_message(pod, &c.name, reason));
    let mut hook_took = None;
    if let Some(handler) = Hook::PreStop.of(c).filter(|_| grace > 0) {
        let started = Instant::now();
        let limit = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        if let Err(message) = run_hook(runtime, pod, c, id, Hook::PreStop, handler, pod_ip, limit).await {
            warn!(container = %c.name, %message, "preStop hook failed");
            events.record(pod, Some(&c.name), EventType::Warning, Hook::PreStop.failure_reason(), message);
        }
        hook_took = Some(started.elapsed());
    }
    let stop = stop_grace(grace, hook_took);
    info!(container = %c.name, id, ?reason, grace = ?stop, "stopping container");
    runtime.stop_container(id, stop).await
}

/// Stops every running container of `pod` in parallel, each with its preStop hook, for `reason`
/// (a deletion). Returns the stops that failed.
pub async fn kill_running(
    runtime: &Runtime,
    events: &EventRecorder,
    pod: &Pod,
    observed: &Observed,
    pod_ip: &str,
    reason: StopReason,
) -> Vec<RuntimeError> {
    let spec = pod.spec.as_ref();
    let specs = spec.into_iter().flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers));
    let kills = specs.filter_map(|c| {
        let latest = observed.latest(&c.name)?;
        matches!(latest.state, RunState::Running | RunState::Unknown)
            .then(|| kill_container(runtime, events, pod, c, &latest.id, pod_ip, reason))
    });
    futures::future::join_all(kills).await.into_iter().filter_map(Result::err).collect()
}

/// Runs container `c`'s postStart hook, if it has one, right after it started. On failure records
/// `FailedPostStartHook`, kills the container and returns its waiting state (`PostStartHookError`);
/// the restart policy and back-off take it from there.
pub async fn post_start_or_kill(
    runtime: &Runtime,
    events: &EventRecorder,
    pod: &Pod,
    c: &Container,
    id: &str,
    pod_ip: &str,
) -> Option<Waiting> {
    let handler = Hook::PostStart.of(c)?;
    let message = run_hook(runtime, pod, c, id, Hook::PostStart, handler, pod_ip, POST_START_LIMIT).await.err()?;
    warn!(container = %c.name, %message, "postStart hook failed");
    events.record(pod, Some(&c.name), EventType::Warning, Hook::PostStart.failure_reason(), message.clone());
    if let Err(e) = kill_container(runtime, events, pod, c, id, pod_ip, StopReason::PostStartHook).await {
        warn!(container = %c.name, error = %e, "stopping a container whose postStart hook failed");
    }
    Some(Waiting { reason: "PostStartHookError".into(), message })
}
