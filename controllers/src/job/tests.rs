use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::backoff::BackoffRecord;
use super::controller::pod_for;
use super::indexes::COMPLETION_INDEX;
use super::plan::{plan, JobPlan, TRACKING_FINALIZER};

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("valid")
}

fn ago(secs: i64) -> Time {
    Time(now() - SignedDuration::from_secs(secs))
}

fn job(completions: Option<i32>, parallelism: i32, backoff_limit: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("ns".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(backoff_limit),
            completion_mode: Some("NonIndexed".into()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("job-name".into(), "pi".into())].into()),
                    ..Default::default()
                }),
                spec: Some(PodSpec { restart_policy: Some("Never".into()), ..Default::default() }),
            },
            ..Default::default()
        }),
        status: Some(JobStatus { start_time: Some(ago(30)), ..Default::default() }),
    }
}

fn with_status(mut j: Job, f: impl FnOnce(&mut JobStatus)) -> Job {
    f(j.status.get_or_insert_with(Default::default));
    j
}

fn condition(type_: &str, reason: &str) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some("m".into()),
        last_transition_time: Some(ago(10)),
        last_probe_time: None,
    }
}

/// A pod of the Job in `phase`, with the tracking finalizer unless `tracked` is false.
fn pod(name: &str, phase: &str, tracked: bool) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("{name}-uid")),
            finalizers: tracked.then(|| vec![TRACKING_FINALIZER.to_string()]),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "pi".into(),
                uid: "job-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
    })
}

fn deleting(p: Arc<Pod>) -> Arc<Pod> {
    let mut p = (*p).clone();
    p.metadata.deletion_timestamp = Some(ago(1));
    Arc::new(p)
}

fn indexed(p: Arc<Pod>, index: i32) -> Arc<Pod> {
    let mut p = (*p).clone();
    p.metadata.annotations = Some([(COMPLETION_INDEX.to_string(), index.to_string())].into());
    Arc::new(p)
}

fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
    let mut v: Vec<&str> = pods.iter().map(|p| p.metadata.name.as_deref().unwrap_or_default()).collect();
    v.sort_unstable();
    v
}

fn uncounted(p: &JobPlan) -> (Vec<String>, Vec<String>) {
    let u = p.status.uncounted_terminated_pods.clone().unwrap_or_default();
    (u.succeeded.unwrap_or_default(), u.failed.unwrap_or_default())
}

fn cond<'a>(p: &'a JobPlan, type_: &str) -> Option<&'a JobCondition> {
    p.status.conditions.iter().flatten().find(|c| c.type_ == type_ && c.status == "True")
}

fn run(j: &Job, pods: &[Arc<Pod>]) -> JobPlan {
    plan(j, pods, now(), BackoffRecord::default())
}

#[test]
fn a_new_job_starts_parallelism_pods_and_its_clock() {
    let mut j = job(Some(3), 2, 6);
    j.status = None;
    let p = run(&j, &[]);
    assert_eq!(p.create, vec![None, None]);
    assert_eq!(p.status.start_time, Some(Time(now())));
    assert_eq!(p.status.active, Some(0));
}

#[test]
fn active_pods_are_capped_by_remaining_completions() {
    // (completions, parallelism, counted successes, running pods, expected creates, expected deletes)
    let cases = [
        (Some(3), 2, 0, 0, 2, 0),
        (Some(3), 2, 2, 0, 1, 0),
        (Some(3), 2, 2, 1, 0, 0),
        (Some(3), 5, 0, 1, 2, 0),
        (Some(2), 4, 1, 3, 0, 2),
        (None, 3, 0, 1, 2, 0),
    ];
    for (completions, parallelism, succeeded, running, creates, deletes) in cases {
        let j = with_status(job(completions, parallelism, 6), |s| s.succeeded = Some(succeeded));
        let pods: Vec<_> = (0..running).map(|i| pod(&format!("r{i}"), "Running", true)).collect();
        let p = run(&j, &pods);
        assert_eq!(p.create.len(), creates, "{completions:?}/{parallelism}/{succeeded}/{running}");
        assert_eq!(p.delete.len(), deletes, "{completions:?}/{parallelism}/{succeeded}/{running}");
    }
}

#[test]
fn finished_pods_are_recorded_before_their_finalizer_goes_then_counted() {
    let j = job(Some(3), 2, 6);
    let pods = [pod("done", "Succeeded", true), pod("run", "Running", true)];
    let p = run(&j, &pods);
    assert_eq!(uncounted(&p).0, ["done-uid"]);
    assert_eq!(names(&p.remove_finalizer), ["done"]);
    assert_eq!(p.create.len(), 1, "one success leaves two completions for two slots");
    assert_eq!(p.status.succeeded, Some(0), "the counter moves only once the finalizer is gone");

    // Next pass: the finalizer is gone from the cache; the uid moves into the counter exactly once.
    let j = with_status(job(Some(3), 2, 6), |s| {
        s.uncounted_terminated_pods =
            Some(UncountedTerminatedPods { succeeded: Some(vec!["done-uid".into()]), failed: None })
    });
    let p = run(&j, &[pod("done", "Succeeded", false), pod("run", "Running", true)]);
    assert_eq!(p.status.succeeded, Some(1));
    assert_eq!(uncounted(&p), (vec![], vec![]));
    assert!(p.remove_finalizer.is_empty());
    // Gone entirely counts the same.
    let p = run(&j, &[pod("run", "Running", true)]);
    assert_eq!(p.status.succeeded, Some(1));
}

#[test]
fn a_deleted_running_pod_counts_as_failed() {
    let p = run(&job(Some(1), 1, 6), &[deleting(pod("gone", "Running", true))]);
    assert_eq!(uncounted(&p).1, ["gone-uid"]);
    assert_eq!(names(&p.remove_finalizer), ["gone"]);
}

#[test]
fn failures_back_off_exponentially_before_new_pods() {
    let p = run(&job(Some(1), 1, 6), &[pod("f1", "Failed", true)]);
    assert!(p.create.is_empty(), "the first failure waits 10 s");
    assert_eq!(p.requeue_after, Some(Duration::from_secs(10)));
    assert_eq!(p.backoff.failures_after_last_success, 1);
    // Later, with the record carried over and the failure counted, the pod is re-created.
    let j = with_status(job(Some(1), 1, 6), |s| s.failed = Some(1));
    let later = plan(&j, &[], now() + SignedDuration::from_secs(11), p.backoff);
    assert_eq!(later.create.len(), 1);
}

#[test]
fn exceeding_the_backoff_limit_sets_failure_target_then_failed() {
    let j = with_status(job(Some(3), 2, 1), |s| s.failed = Some(1));
    let pods = [pod("f2", "Failed", true), pod("run", "Running", true)];
    let p = run(&j, &pods);
    let target = cond(&p, "FailureTarget").expect("FailureTarget");
    assert_eq!(target.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(target.message.as_deref(), Some("Job has reached the specified backoff limit"));
    assert!(cond(&p, "Failed").is_none(), "Failed waits for pods to terminate and be counted");
    assert_eq!(names(&p.delete), ["run"]);
    assert!(p.create.is_empty());

    let j = with_status(job(Some(3), 2, 1), |s| {
        s.failed = Some(2);
        s.conditions = Some(vec![condition("FailureTarget", "BackoffLimitExceeded")]);
    });
    // The deleted pod is not counted as a failure of its own: the Job removed it.
    let p = run(&j, &[deleting(pod("run", "Running", true))]);
    assert!(cond(&p, "Failed").is_none());
    assert_eq!(uncounted(&p), (vec![], vec![]));
    assert_eq!(names(&p.remove_finalizer), ["run"]);
    let p = run(&j, &[]);
    let failed = cond(&p, "Failed").expect("Failed");
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, "BackoffLimitExceeded");
}

#[test]
fn restarts_count_against_the_backoff_limit_with_restart_policy_on_failure() {
    let mut j = job(Some(1), 1, 2);
    if let Some(s) = j.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        s.restart_policy = Some("OnFailure".into());
    }
    let mut running = (*pod("r", "Running", true)).clone();
    running.status.get_or_insert_with(Default::default).container_statuses =
        Some(vec![k8s_openapi::api::core::v1::ContainerStatus { restart_count: 2, ..Default::default() }]);
    let p = run(&j, &[Arc::new(running)]);
    assert_eq!(cond(&p, "FailureTarget").and_then(|c| c.reason.as_deref()), Some("BackoffLimitExceeded"));
}

#[test]
fn the_active_deadline_fails_the_job_or_schedules_a_look() {
    let mut j = job(Some(1), 1, 6);
    if let Some(s) = j.spec.as_mut() {
        s.active_deadline_seconds = Some(20);
    }
    let p = run(&j, &[pod("r", "Running", true)]);
    assert_eq!(cond(&p, "FailureTarget").and_then(|c| c.reason.as_deref()), Some("DeadlineExceeded"));
    assert_eq!(names(&p.delete), ["r"]);

    if let Some(s) = j.spec.as_mut() {
        s.active_deadline_seconds = Some(100);
    }
    let p = run(&j, &[pod("r", "Running", true)]);
    assert!(cond(&p, "FailureTarget").is_none());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(70)));
}

#[test]
fn reaching_completions_sets_success_criteria_then_complete() {
    let j = with_status(job(Some(2), 2, 6), |s| s.succeeded = Some(1));
    let p = run(&j, &[pod("s2", "Succeeded", true)]);
    assert_eq!(cond(&p, "SuccessCriteriaMet").and_then(|c| c.reason.as_deref()), Some("CompletionsReached"));
    assert!(cond(&p, "Complete").is_none());
    assert!(p.create.is_empty());

    let j = with_status(job(Some(2), 2, 6), |s| {
        s.succeeded = Some(2);
        s.conditions = Some(vec![condition("SuccessCriteriaMet", "CompletionsReached")]);
    });
    let p = run(&j, &[pod("s2", "Succeeded", false)]);
    assert!(cond(&p, "Complete").is_some());
    assert_eq!(p.status.completion_time, Some(Time(now())));
    assert_eq!(p.events[0].reason, "Completed");
}

#[test]
fn suspending_deletes_active_pods_without_counting_them_and_resuming_restarts_the_clock() {
    let mut j = job(Some(2), 2, 6);
    if let Some(s) = j.spec.as_mut() {
        s.suspend = Some(true);
    }
    let p = run(&j, &[pod("a", "Running", true), pod("b", "Pending", true)]);
    assert_eq!(names(&p.delete), ["a", "b"]);
    assert!(cond(&p, "Suspended").is_some());
    assert!(p.create.is_empty());
    let p2 = run(&j, &[deleting(pod("a", "Running", true))]);
    assert_eq!(uncounted(&p2), (vec![], vec![]), "pods removed by suspension are not failures");

    let mut resumed = with_status(job(Some(2), 2, 6), |s| s.conditions = p.status.conditions.clone());
    if let Some(s) = resumed.spec.as_mut() {
        s.suspend = Some(false);
    }
    let p = run(&resumed, &[]);
    assert_eq!(p.create.len(), 2);
    assert_eq!(p.status.start_time, Some(Time(now())));
    let c = p.status.conditions.iter().flatten().find(|c| c.type_ == "Suspended").expect("Suspended");
    assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some("JobResumed")));
}

#[test]
fn finished_jobs_are_deleted_after_their_ttl() {
    // (ttl, seconds since completion, expect delete, expected requeue)
    for (ttl, since, delete, requeue) in [(5, 10, true, None), (100, 10, false, Some(90)), (0, 0, true, None)] {
        let mut j = with_status(job(Some(1), 1, 6), |s| {
            s.completion_time = Some(ago(since));
            s.conditions = Some(vec![condition("Complete", "CompletionsReached")]);
        });
        if let Some(s) = j.spec.as_mut() {
            s.ttl_seconds_after_finished = Some(ttl);
        }
        let p = run(&j, &[]);
        assert_eq!(p.delete_job, delete, "ttl {ttl} since {since}");
        assert_eq!(p.requeue_after, requeue.map(Duration::from_secs), "ttl {ttl} since {since}");
        assert!(p.create.is_empty());
    }
}

#[test]
fn a_deleting_job_only_releases_its_pods() {
    let mut j = job(Some(3), 2, 6);
    j.metadata.deletion_timestamp = Some(ago(1));
    let p = run(&j, &[pod("r", "Running", true), pod("x", "Running", false)]);
    assert_eq!(names(&p.remove_finalizer), ["r"]);
    assert!(p.create.is_empty() && p.delete.is_empty());
}

#[test]
fn indexed_jobs_fill_missing_indexes_and_report_completed_ones() {
    let mut j = job(Some(4), 2, 6);
    if let Some(s) = j.spec.as_mut() {
        s.completion_mode = Some("Indexed".into());
    }
    let pods = [indexed(pod("i0", "Succeeded", true), 0), indexed(pod("i2", "Running", true), 2)];
    let p = run(&j, &pods);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(p.create, vec![Some(1)]);

    let pod = pod_for(&j, "ns", "pi", &j.spec.as_ref().expect("spec").template, Some(3));
    let ann = pod.metadata.annotations.as_ref().and_then(|a| a.get(COMPLETION_INDEX)).cloned();
    assert_eq!(ann.as_deref(), Some("3"));
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-3-"));
    assert_eq!(pod.spec.as_ref().and_then(|s| s.hostname.as_deref()), Some("pi-3"));
    assert!(pod.metadata.finalizers.iter().flatten().any(|f| f == TRACKING_FINALIZER));
}

#[test]
fn pods_of_other_owners_are_ignored() {
    let mut other = (*pod("o", "Running", true)).clone();
    if let Some(refs) = other.metadata.owner_references.as_mut() {
        refs[0].uid = "someone-else".into();
    }
    let p = run(&job(Some(1), 1, 6), &[Arc::new(other)]);
    assert_eq!(p.create.len(), 1);
    assert!(p.remove_finalizer.is_empty());
}
