//! What a CronJob needs done, from the CronJob, the Jobs it controls and the time (upstream
//! `syncCronJob`, `cleanupFinishedJobs`, `getJobFromTemplate2`).
//!
//! Jobs are named `<cronjob>-<scheduled time in minutes since the epoch>`, so a controller that
//! restarts (or a second leader) cannot start the same scheduled run twice: the API refuses the name.
//!
//! Pure: must not depend on the API client.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::schedule::{check_time_zone, Schedule};
use crate::job::finished_condition;
use crate::pods::{controller_ref, is_controlled_by};
use crate::runtime::events::reference;
use crate::runtime::EventType;

/// Annotation on created Jobs with the scheduled time (RFC 3339).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Missed activations beyond which upstream warns.
pub const TOO_MANY_MISSED: u32 = 100;
/// Slack after the next activation before looking again, so the activation is in the past.
const REQUEUE_SLACK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJobEvent {
    pub kind: EventType,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct CronJobPlan {
    /// The status to write; when `create` succeeds the controller appends its reference to `active`.
    pub status: CronJobStatus,
    /// The Job to create for the most recent missed activation.
    pub create: Option<Job>,
    /// Jobs to delete (Replace policy, history limits), each with the Event reason for it.
    pub delete: Vec<Arc<Job>>,
    pub events: Vec<CronJobEvent>,
    pub requeue_after: Option<Duration>,
}

fn event(kind: EventType, reason: &'static str, message: String) -> CronJobEvent {
    CronJobEvent { kind, reason, message }
}

/// The Job name for an activation at `scheduled`.
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

fn name(job: &Job) -> &str {
    job.metadata.name.as_deref().unwrap_or_default()
}

/// When a finished Job finished: its completion time, else its finished condition's transition.
fn finished_at(job: &Job) -> Option<Timestamp> {
    let completion = job.status.as_ref().and_then(|s| s.completion_time.as_ref()).map(|t| t.0);
    completion.or_else(|| finished_condition(job)?.last_transition_time.map(|t| t.0))
}

/// Plans `cj` against `jobs` (those of its namespace, plus any active Job the controller confirmed
/// live) at `now`.
pub fn plan(cj: &CronJob, jobs: &[Arc<Job>], now: Timestamp) -> CronJobPlan {
    let mut out = CronJobPlan { status: cj.status.clone().unwrap_or_default(), ..Default::default() };
    if cj.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let cj_name = cj.metadata.name.as_deref().unwrap_or_default();
    let uid = cj.metadata.uid.as_deref().unwrap_or_default();
    let spec = cj.spec.clone().unwrap_or_default();
    let mine: Vec<Arc<Job>> = jobs.iter().filter(|j| is_controlled_by(&j.metadata, uid)).cloned().collect();

    // Reconcile the active list with the Jobs that exist.
    let mut active: Vec<ObjectReference> = out.status.active.take().unwrap_or_default();
    active.retain(|r| {
        let found = mine.iter().any(|j| j.metadata.uid == r.uid || (r.uid.is_none() && j.metadata.name == r.name));
        if !found {
            let missing = r.name.clone().unwrap_or_default();
            out.events.push(event(EventType::Normal, "MissingJob", format!("Active job went missing: {missing}")));
        }
        found
    });
    for job in &mine {
        let listed = active.iter().any(|r| r.uid == job.metadata.uid);
        match finished_condition(job) {
            Some(c) if listed => {
                active.retain(|r| r.uid != job.metadata.uid);
                out.events.push(event(
                    EventType::Normal,
                    "SawCompletedJob",
                    format!("Saw completed job: {}, condition: {}", name(job), c.type_),
                ));
                if c.type_ == "Complete" {
                    let at = finished_at(job).unwrap_or(now);
                    let last = out.status.last_successful_time.as_ref().map(|t| t.0);
                    if last.is_none_or(|l| l < at) {
                        out.status.last_successful_time = Some(Time(at));
                    }
                }
            }
            None if !listed && job.metadata.deletion_timestamp.is_none() => active.push(reference(job.as_ref())),
            _ => {}
        }
    }
    cleanup_history(&spec, &mine, &mut out);

    let schedule = match check_time_zone(spec.time_zone.as_deref()).map(|()| Schedule::parse(&spec.schedule)) {
        Err(e) => {
            out.events.push(event(EventType::Warning, "UnknownTimeZone", e.to_string()));
            return finish(out, active);
        }
        Ok(Err(e)) => {
            out.events.push(event(EventType::Warning, "UnparseableSchedule", format!("unparseable schedule: {e}")));
            return finish(out, active);
        }
        Ok(Ok(s)) => s,
    };
    if spec.suspend == Some(true) {
        return finish(out, active);
    }
    let next = schedule.next(now);
    out.requeue_after = next.map(|n| Duration::try_from(n.duration_since(now)).unwrap_or_default() + REQUEUE_SLACK);

    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let mut earliest = out.status.last_schedule_time.as_ref().map_or(created, |t| t.0);
    if let Some(sds) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - SignedDuration::from_secs(sds));
    }
    let (recent, missed) = schedule.most_recent(earliest, now);
    let Some(scheduled) = recent else { return finish(out, active) };
    if missed > TOO_MANY_MISSED {
        out.events.push(event(
            EventType::Warning,
            "TooManyMissedTimes",
            format!(
                "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            ),
        ));
    }
    if let Some(sds) = spec.starting_deadline_seconds {
        if scheduled + SignedDuration::from_secs(sds) < now {
            let at = scheduled.to_string();
            out.events.push(event(
                EventType::Warning,
                "MissSchedule",
                format!("Missed scheduled time to start a job: {at}"),
            ));
            return finish(out, active);
        }
    }
    let job_name = job_name(cj_name, scheduled);
    if mine.iter().any(|j| name(j) == job_name) || active.iter().any(|r| r.name.as_deref() == Some(&job_name)) {
        return finish(out, active);
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            out.events.push(event(
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return finish(out, active);
        }
        Some("Replace") => {
            for r in active.drain(..) {
                if let Some(job) = mine.iter().find(|j| j.metadata.uid == r.uid) {
                    if !out.delete.iter().any(|d| d.metadata.uid == job.metadata.uid) {
                        out.delete.push(job.clone());
                    }
                }
            }
        }
        _ => {}
    }
    out.create = Some(job_from_template(cj, &job_name, scheduled));
    out.status.last_schedule_time = Some(Time(scheduled));
    finish(out, active)
}

fn finish(mut out: CronJobPlan, active: Vec<ObjectReference>) -> CronJobPlan {
    out.status.active = (!active.is_empty()).then_some(active);
    out
}

/// Deletes the oldest finished Jobs beyond the history limits (upstream `cleanupFinishedJobs`).
fn cleanup_history(spec: &k8s_openapi::api::batch::v1::CronJobSpec, mine: &[Arc<Job>], out: &mut CronJobPlan) {
    for (type_, limit) in [("Complete", spec.successful_jobs_history_limit), ("Failed", spec.failed_jobs_history_limit)]
    {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Arc<Job>> = mine
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter(|j| finished_condition(j).is_some_and(|c| c.type_ == type_))
            .collect();
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        if finished.len() <= keep {
            continue;
        }
        finished.sort_by_key(|j| (finished_at(j), j.metadata.creation_timestamp.as_ref().map(|t| t.0)));
        let surplus = finished.len() - keep;
        out.delete.extend(finished.into_iter().take(surplus).cloned());
    }
}

/// The Job for the activation at `scheduled`: the template's labels, annotations and spec, the
/// scheduled-timestamp annotation, owned by the CronJob.
pub fn job_from_template(cj: &CronJob, name: &str, scheduled: Timestamp) -> Job {
    let template = cj.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.to_string(), scheduled.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}
