use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, Job, JobCondition, JobStatus, JobTemplateSpec};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::plan::{job_name, plan, CronJobPlan, SCHEDULED_TIMESTAMP};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn cron(schedule: &str, policy: &str, last: Option<&str>) -> CronJob {
    CronJob {
        metadata: ObjectMeta {
            name: Some("tick".into()),
            namespace: Some("ns".into()),
            uid: Some("cj-uid".into()),
            creation_timestamp: Some(Time(ts("2026-01-01T00:00:00Z"))),
            ..Default::default()
        },
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            concurrency_policy: Some(policy.into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".into(), "tick".into())].into()),
                    ..Default::default()
                }),
                spec: Some(Default::default()),
            },
            ..Default::default()
        }),
        status: last.map(|l| CronJobStatus { last_schedule_time: Some(Time(ts(l))), ..Default::default() }),
    }
}

/// A Job of the CronJob; `finished` is `Some(("Complete"|"Failed", at))`.
fn job(name: &str, finished: Option<(&str, &str)>) -> Arc<Job> {
    Arc::new(Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("{name}-uid")),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: "tick".into(),
                uid: "cj-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(Default::default()),
        status: Some(JobStatus {
            completion_time: finished.filter(|(t, _)| *t == "Complete").map(|(_, at)| Time(ts(at))),
            conditions: finished.map(|(t, at)| {
                vec![JobCondition {
                    type_: t.into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(at))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

fn active_ref(name: &str) -> ObjectReference {
    ObjectReference { name: Some(name.into()), uid: Some(format!("{name}-uid")), ..Default::default() }
}

fn with_active(mut cj: CronJob, names: &[&str]) -> CronJob {
    cj.status.get_or_insert_with(Default::default).active = Some(names.iter().map(|n| active_ref(n)).collect());
    cj
}

fn created(p: &CronJobPlan) -> Option<&str> {
    p.create.as_ref().and_then(|j| j.metadata.name.as_deref())
}

fn reasons(p: &CronJobPlan) -> Vec<&str> {
    p.events.iter().map(|e| e.reason).collect()
}

fn deleted(p: &CronJobPlan) -> Vec<&str> {
    p.delete.iter().map(|j| j.metadata.name.as_deref().unwrap_or_default()).collect()
}

#[test]
fn the_most_recent_activation_starts_a_deterministically_named_job() {
    let now = ts("2026-01-01T00:10:30Z");
    let p = plan(&cron("*/5 * * * *", "Allow", Some("2026-01-01T00:05:00Z")), &[], now);
    let name = job_name("tick", ts("2026-01-01T00:10:00Z"));
    assert_eq!(name, format!("tick-{}", ts("2026-01-01T00:10:00Z").as_second() / 60));
    assert_eq!(created(&p), Some(name.as_str()));
    let job = p.create.as_ref().expect("job");
    let annotations = job.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(annotations.get(SCHEDULED_TIMESTAMP).map(String::as_str), Some("2026-01-01T00:10:00Z"));
    assert_eq!(job.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("tick"));
    assert_eq!(job.metadata.owner_references.as_ref().map(|o| o[0].uid.as_str()), Some("cj-uid"));
    assert_eq!(p.status.last_schedule_time, Some(Time(ts("2026-01-01T00:10:00Z"))));
    assert_eq!(p.requeue_after, Some(Duration::from_millis(270_100)));
}

#[test]
fn nothing_starts_between_activations_or_twice_for_one() {
    let now = ts("2026-01-01T00:12:00Z");
    let p = plan(&cron("*/5 * * * *", "Allow", Some("2026-01-01T00:10:00Z")), &[], now);
    assert_eq!(created(&p), None);
    assert_eq!(p.requeue_after, Some(Duration::from_millis(180_100)));
    // The Job exists (the status write was lost): the name says it already ran.
    let existing = job(&job_name("tick", ts("2026-01-01T00:10:00Z")), None);
    let p = plan(&cron("*/5 * * * *", "Allow", Some("2026-01-01T00:05:00Z")), &[existing], now);
    assert_eq!(created(&p), None);
    assert_eq!(p.status.active.as_ref().map(Vec::len), Some(1), "the running Job is adopted into active");
}

#[test]
fn concurrency_policies() {
    let now = ts("2026-01-01T00:10:30Z");
    let running = job("tick-old", None);
    // (policy, expect create, expected deletes, expected events)
    let cases: [(&str, bool, Vec<&str>, Vec<&str>); 3] = [
        ("Allow", true, vec![], vec![]),
        ("Forbid", false, vec![], vec!["JobAlreadyActive"]),
        ("Replace", true, vec!["tick-old"], vec![]),
    ];
    for (policy, create, deletes, events) in cases {
        let cj = with_active(cron("*/5 * * * *", policy, Some("2026-01-01T00:05:00Z")), &["tick-old"]);
        let p = plan(&cj, std::slice::from_ref(&running), now);
        assert_eq!(created(&p).is_some(), create, "{policy}");
        assert_eq!(deleted(&p), deletes, "{policy}");
        assert_eq!(reasons(&p), events, "{policy}");
    }
}

#[test]
fn a_missed_starting_deadline_skips_the_activation() {
    let mut cj = cron("0 * * * *", "Allow", Some("2026-01-01T00:00:00Z"));
    if let Some(s) = cj.spec.as_mut() {
        s.starting_deadline_seconds = Some(60);
    }
    let p = plan(&cj, &[], ts("2026-01-01T01:05:00Z"));
    assert_eq!(created(&p), None, "01:00 is more than 60 s ago");
    let p = plan(&cj, &[], ts("2026-01-01T01:00:30Z"));
    assert_eq!(created(&p), Some(job_name("tick", ts("2026-01-01T01:00:00Z")).as_str()));
}

#[test]
fn suspended_or_unparseable_cronjobs_start_nothing() {
    let mut cj = cron("*/5 * * * *", "Allow", Some("2026-01-01T00:05:00Z"));
    if let Some(s) = cj.spec.as_mut() {
        s.suspend = Some(true);
    }
    let now = ts("2026-01-01T00:10:30Z");
    assert_eq!(created(&plan(&cj, &[], now)), None);
    let p = plan(&cron("61 * * * *", "Allow", None), &[], now);
    assert_eq!((created(&p), reasons(&p)), (None, vec!["UnparseableSchedule"]));
    let mut cj = cron("* * * * *", "Allow", None);
    if let Some(s) = cj.spec.as_mut() {
        s.time_zone = Some("Mars/Olympus".into());
    }
    assert_eq!(reasons(&plan(&cj, &[], now)), ["UnknownTimeZone"]);
}

#[test]
fn finished_jobs_leave_active_and_history_is_trimmed() {
    let now = ts("2026-01-01T00:12:00Z");
    let cj = with_active(cron("*/5 * * * *", "Allow", Some("2026-01-01T00:10:00Z")), &["s4", "gone"]);
    let jobs = [
        job("s1", Some(("Complete", "2026-01-01T00:01:00Z"))),
        job("s2", Some(("Complete", "2026-01-01T00:02:00Z"))),
        job("s3", Some(("Complete", "2026-01-01T00:03:00Z"))),
        job("s4", Some(("Complete", "2026-01-01T00:11:00Z"))),
        job("f1", Some(("Failed", "2026-01-01T00:01:00Z"))),
        job("f2", Some(("Failed", "2026-01-01T00:02:00Z"))),
    ];
    let p = plan(&cj, &jobs, now);
    assert_eq!(p.status.active, None);
    assert_eq!(p.status.last_successful_time, Some(Time(ts("2026-01-01T00:11:00Z"))));
    assert_eq!(reasons(&p), ["MissingJob", "SawCompletedJob"]);
    assert_eq!(deleted(&p), ["s1", "f1"]);
}
