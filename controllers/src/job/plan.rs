//! What a Job needs done, from the Job, its pods and its back-off record (upstream `syncJob`,
//! `manageJob`, `trackJobStatusAndRemoveFinalizers`, the TTL-after-finished controller).
//!
//! Finished pods are counted through the `batch.kubernetes.io/job-tracking` finalizer: a pod that
//! finished is first recorded by uid in `status.uncountedTerminatedPods`, only then loses the
//! finalizer, and is moved into the `succeeded`/`failed` counters once the cache shows it without the
//! finalizer (or gone). So a pod deleted by anyone at any time is counted exactly once.
//!
//! Pure: must not depend on the API client.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::backoff::BackoffRecord;
use super::indexes::{self, pod_index};
use crate::pods::{deletion_order, is_controlled_by, is_ready, is_terminal, phase};
use crate::runtime::EventType;

/// Finalizer keeping a finished pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Most pods created or deleted in one pass (upstream `MaxBatchSize`-like bound).
pub const BURST: usize = 500;
/// Upstream's default `backoffLimit`.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;

pub const REASON_BACKOFF: &str = "BackoffLimitExceeded";
pub const MESSAGE_BACKOFF: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
pub const MESSAGE_DEADLINE: &str = "Job was active longer than specified deadline";
pub const REASON_COMPLETIONS: &str = "CompletionsReached";
pub const MESSAGE_COMPLETIONS: &str = "Reached expected number of succeeded pods";

/// An Event the controller records about the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub kind: EventType,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct JobPlan {
    /// The status to write (unchanged if equal to the Job's).
    pub status: JobStatus,
    /// Pods to create: one entry each, with the completion index in Indexed mode.
    pub create: Vec<Option<i32>>,
    /// Active pods to delete.
    pub delete: Vec<Arc<Pod>>,
    /// Pods to drop the tracking finalizer from, only after `status` has been written.
    pub remove_finalizer: Vec<Arc<Pod>>,
    pub events: Vec<JobEvent>,
    /// The back-off record after this pass.
    pub backoff: BackoffRecord,
    /// The TTL after finishing has passed: delete the Job.
    pub delete_job: bool,
    /// When to look again (back-off end, active deadline, TTL).
    pub requeue_after: Option<Duration>,
}

fn condition_true(status: &JobStatus, type_: &str) -> Option<JobCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == type_ && c.status == "True").cloned()
}

/// The Job's finished condition (`Complete` or `Failed`), if any.
pub fn finished_condition(job: &Job) -> Option<JobCondition> {
    let status = job.status.as_ref()?;
    condition_true(status, "Complete").or_else(|| condition_true(status, "Failed"))
}

fn set_condition(status: &mut JobStatus, type_: &str, value: &str, reason: &str, message: &str, now: Timestamp) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != value {
            c.last_transition_time = Some(Time(now));
        }
        c.status = value.to_string();
        c.reason = Some(reason.to_string());
        c.message = Some(message.to_string());
        c.last_probe_time = Some(Time(now));
        return;
    }
    conditions.push(JobCondition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata.finalizers.iter().flatten().any(|f| f == TRACKING_FINALIZER)
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// When the pod's containers last finished, or `now` if no container says.
fn finish_time(pod: &Pod, now: Timestamp) -> Timestamp {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0))
        .max()
        .unwrap_or(now)
}

fn restarts(pod: &Pod) -> i64 {
    let Some(status) = pod.status.as_ref() else { return 0 };
    let init = status.init_container_statuses.iter().flatten();
    init.chain(status.container_statuses.iter().flatten()).map(|c| i64::from(c.restart_count)).sum()
}

fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Plans `job` against `pods` (those of its namespace) at `now`, with the in-memory back-off record.
pub fn plan(job: &Job, pods: &[Arc<Pod>], now: Timestamp, backoff: BackoffRecord) -> JobPlan {
    let mut out = JobPlan { backoff, ..Default::default() };
    let job_uid = job.metadata.uid.as_deref().unwrap_or_default();
    let mine: Vec<Arc<Pod>> = pods.iter().filter(|p| is_controlled_by(&p.metadata, job_uid)).cloned().collect();
    let mut status = job.status.clone().unwrap_or_default();
    out.status = status.clone();
    if job.metadata.deletion_timestamp.is_some() {
        // Nothing more will be counted; the pods must not be kept by our finalizer.
        out.remove_finalizer = mine.iter().filter(|p| has_finalizer(p)).cloned().collect();
        return out;
    }
    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT).max(0);
    let suspended = spec.suspend == Some(true);
    let finished = finished_condition(job).is_some();
    let failure_target = condition_true(&status, "FailureTarget");
    let success_target = condition_true(&status, "SuccessCriteriaMet");
    let finishing = finished || failure_target.is_some() || success_target.is_some();

    // Count finished pods: uncounted uids whose pods lost the finalizer move into the counters.
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut unc_succeeded: Vec<String> = uncounted.succeeded.unwrap_or_default();
    let mut unc_failed: Vec<String> = uncounted.failed.unwrap_or_default();
    let still_tracked: HashSet<&str> = mine.iter().filter(|p| has_finalizer(p)).map(|p| uid(p)).collect();
    let before = (unc_succeeded.len(), unc_failed.len());
    unc_succeeded.retain(|u| still_tracked.contains(u.as_str()));
    unc_failed.retain(|u| still_tracked.contains(u.as_str()));
    status.succeeded = Some(status.succeeded.unwrap_or(0) + to_i32(before.0 - unc_succeeded.len()));
    status.failed = Some(status.failed.unwrap_or(0) + to_i32(before.1 - unc_failed.len()));

    let completion_count = completions.unwrap_or(0);
    let mut completed = indexes::parse(status.completed_indexes.as_deref(), completion_count);
    let mut new_succeeded = 0usize;
    let mut new_failed_at = Vec::new();
    for pod in mine.iter().filter(|p| has_finalizer(p)) {
        let id = uid(pod).to_string();
        if unc_succeeded.contains(&id) || unc_failed.contains(&id) {
            out.remove_finalizer.push(pod.clone());
            continue;
        }
        let deleting = pod.metadata.deletion_timestamp.is_some();
        match phase(pod) {
            "Succeeded" => {
                if indexed {
                    if let Some(i) = pod_index(pod, completion_count) {
                        completed.insert(i);
                    }
                }
                new_succeeded += 1;
                unc_succeeded.push(id);
            }
            "Failed" => {
                new_failed_at.push(finish_time(pod, now));
                unc_failed.push(id);
            }
            // A pod deleted before finishing counts as failed (podReplacementPolicy
            // TerminatingOrFailed), unless the Job itself removed it by suspending or finishing.
            _ if deleting && !suspended && !finishing => {
                new_failed_at.push(now);
                unc_failed.push(id);
            }
            _ if deleting || finished => {
                out.remove_finalizer.push(pod.clone());
                continue;
            }
            _ => continue,
        }
        out.remove_finalizer.push(pod.clone());
    }
    out.backoff = backoff.update(new_succeeded, &new_failed_at);
    if indexed {
        status.completed_indexes = (!completed.is_empty()).then(|| indexes::format(&completed));
    }
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: (!unc_succeeded.is_empty()).then(|| unc_succeeded.clone()),
        failed: (!unc_failed.is_empty()).then(|| unc_failed.clone()),
    });

    let succeeded =
        if indexed { to_i32(completed.len()) } else { status.succeeded.unwrap_or(0) + to_i32(unc_succeeded.len()) };
    let failed = status.failed.unwrap_or(0) + to_i32(unc_failed.len());
    let mut active: Vec<Arc<Pod>> =
        mine.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && !is_terminal(p)).cloned().collect();
    let terminating = mine.iter().filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p)).count();

    if finished {
        status.active = Some(0);
        status.ready = Some(0);
        status.terminating = Some(to_i32(terminating));
        out.status = status;
        plan_ttl(job, now, &mut out);
        return out;
    }
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }

    // Decide whether the Job has reached a finishing state.
    let mut target = failure_target.map(|c| ("FailureTarget", c)).or(success_target.map(|c| ("SuccessCriteriaMet", c)));
    if target.is_none() {
        let on_failure = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("OnFailure");
        let restart_total: i64 = active.iter().map(|p| restarts(p)).sum();
        let past_restarts = on_failure
            && if backoff_limit == 0 { restart_total > 0 } else { restart_total >= i64::from(backoff_limit) };
        let deadline_at = spec.active_deadline_seconds.and_then(|d| {
            let start = status.start_time.as_ref()?.0;
            Some(start + SignedDuration::from_secs(d))
        });
        let reached = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        let new_target = if failed > backoff_limit || past_restarts {
            Some(("FailureTarget", REASON_BACKOFF, MESSAGE_BACKOFF))
        } else if !suspended && deadline_at.is_some_and(|at| at <= now) {
            Some(("FailureTarget", REASON_DEADLINE, MESSAGE_DEADLINE))
        } else if reached {
            Some(("SuccessCriteriaMet", REASON_COMPLETIONS, MESSAGE_COMPLETIONS))
        } else {
            if let (false, Some(at)) = (suspended, deadline_at) {
                out.requeue_after = Some(until(at, now));
            }
            None
        };
        if let Some((type_, reason, message)) = new_target {
            set_condition(&mut status, type_, "True", reason, message, now);
            target = condition_true(&status, type_).map(|c| (type_, c));
        }
    }

    if let Some((type_, cond)) = target {
        // Finishing: no pod may keep running; the final condition waits until none is left.
        active.sort_by(|a, b| deletion_order(a, b));
        out.delete = active.iter().take(BURST).cloned().collect();
        let pending = !unc_succeeded.is_empty() || !unc_failed.is_empty();
        if active.is_empty() && terminating == 0 && !pending {
            let reason = cond.reason.clone().unwrap_or_default();
            let message = cond.message.clone().unwrap_or_default();
            if type_ == "FailureTarget" {
                set_condition(&mut status, "Failed", "True", &reason, &message, now);
                out.events.push(JobEvent { kind: EventType::Warning, reason: static_reason(&reason), message });
            } else {
                set_condition(&mut status, "Complete", "True", &reason, &message, now);
                status.completion_time = Some(Time(now));
                out.events.push(JobEvent {
                    kind: EventType::Normal,
                    reason: "Completed",
                    message: "Job completed".into(),
                });
            }
        }
        status.active = Some(to_i32(active.len()));
        status.ready = Some(to_i32(active.iter().filter(|p| is_ready(p)).count()));
        status.terminating = Some(to_i32(terminating + out.delete.len()));
        out.requeue_after = None;
        out.status = status;
        return out;
    }

    let was_suspended = condition_true(&status, "Suspended").is_some();
    if suspended {
        active.sort_by(|a, b| deletion_order(a, b));
        out.delete = active.iter().take(BURST).cloned().collect();
        if !was_suspended {
            set_condition(&mut status, "Suspended", "True", "JobSuspended", "Job suspended", now);
            out.events.push(JobEvent { kind: EventType::Normal, reason: "Suspended", message: "Job suspended".into() });
        }
    } else {
        if was_suspended {
            set_condition(&mut status, "Suspended", "False", "JobResumed", "Job resumed", now);
            status.start_time = Some(Time(now));
            out.events.push(JobEvent { kind: EventType::Normal, reason: "Resumed", message: "Job resumed".into() });
        }
        manage(&spec, indexed, parallelism, succeeded, &completed, &mut active, now, &mut out);
    }
    status.active = Some(to_i32(active.len()));
    status.ready = Some(to_i32(active.iter().filter(|p| is_ready(p)).count()));
    status.terminating = Some(to_i32(terminating + out.delete.len()));
    out.status = status;
    out
}

/// Creates or deletes pods so `min(parallelism, remaining work)` are active (upstream `manageJob`).
#[allow(clippy::too_many_arguments)]
fn manage(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    indexed: bool,
    parallelism: i32,
    succeeded: i32,
    completed: &BTreeSet<i32>,
    active: &mut [Arc<Pod>],
    now: Timestamp,
    out: &mut JobPlan,
) {
    let parallelism = usize::try_from(parallelism).unwrap_or(0);
    let (wanted, free_indexes) = if indexed {
        let completions = spec.completions.unwrap_or(0);
        let running: BTreeSet<i32> = active.iter().filter_map(|p| pod_index(p, completions)).collect();
        let free: Vec<i32> = (0..completions).filter(|i| !completed.contains(i) && !running.contains(i)).collect();
        let remaining = usize::try_from(completions).unwrap_or(0).saturating_sub(completed.len());
        (parallelism.min(remaining), free)
    } else {
        let remaining = match spec.completions {
            Some(c) => usize::try_from(c.saturating_sub(succeeded)).unwrap_or(0),
            // Work-queue Jobs: once one pod succeeded, no new ones start.
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        (parallelism.min(remaining), Vec::new())
    };
    if active.len() > wanted {
        active.sort_by(|a, b| deletion_order(a, b));
        out.delete = active.iter().take((active.len() - wanted).min(BURST)).cloned().collect();
        return;
    }
    let missing = (wanted - active.len()).min(BURST);
    if missing == 0 {
        return;
    }
    let wait = out.backoff.remaining(now);
    if !wait.is_zero() {
        out.requeue_after = Some(out.requeue_after.map_or(wait, |r| r.min(wait)));
        return;
    }
    out.create = if indexed { free_indexes.into_iter().take(missing).map(Some).collect() } else { vec![None; missing] };
}

/// Deletes a finished Job once `ttlSecondsAfterFinished` has passed (the TTL-after-finished controller).
fn plan_ttl(job: &Job, now: Timestamp, out: &mut JobPlan) {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else { return };
    let Some(cond) = finished_condition(job) else { return };
    let finished_at = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .filter(|_| cond.type_ == "Complete")
        .or(cond.last_transition_time.as_ref())
        .map_or(now, |t| t.0);
    let expires = finished_at + SignedDuration::from_secs(i64::from(ttl));
    if expires <= now {
        out.delete_job = true;
    } else {
        out.requeue_after = Some(until(expires, now));
    }
}

fn static_reason(reason: &str) -> &'static str {
    match reason {
        REASON_BACKOFF => REASON_BACKOFF,
        REASON_DEADLINE => REASON_DEADLINE,
        _ => "Failed",
    }
}
