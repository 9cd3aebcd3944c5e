//! Tables for the `batch` group: jobs and cronjobs, after upstream `printJob` and `printCronJob`.
//!
//! Pure; depends only on the sibling column and format helpers.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::columns::{col, Column, Printer, Row, AGE, CONTAINERS, IMAGES, NAME, SELECTOR};
use super::format::{
    age, at, condition, containers, deleting, flag, format_label_selector, human_duration, int, int_opt, list, name,
    since, text, time, NONE,
};

/// The printer for a `batch` resource.
pub(super) fn printer(resource: &str) -> Option<Printer> {
    match resource {
        "jobs" => Some(Printer { columns: JOB, row: job }),
        "cronjobs" => Some(Printer { columns: CRONJOB, row: cronjob }),
        _ => None,
    }
}

const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", "The number of pods which reached phase Succeeded, of those wanted."),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn job(job: &Value, now: DateTime<Utc>) -> Row {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = match (int_opt(job, &["spec", "completions"]), int(job, &["spec", "parallelism"])) {
        (Some(completions), _) => format!("{succeeded}/{completions}"),
        (None, parallelism) if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let duration = match (time(job, &["status", "startTime"]), time(job, &["status", "completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => human_duration(end.signed_duration_since(start)),
    };
    let holds = |kind: &str| condition(job, kind) == Some("True");
    let status = if holds("Complete") {
        "Complete"
    } else if holds("Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if holds("Suspended") {
        "Suspended"
    } else if holds("FailureTarget") {
        "FailureTarget"
    } else if holds("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (names, images) = containers(at(job, &["spec", "template", "spec"]));
    Row::from(vec![
        json!(name(job)),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(job, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(job, &["spec", "selector"]))),
    ])
}

const CRONJOB: &[Column] = &[
    NAME,
    col("Schedule", "string", "The schedule in Cron format."),
    col("Timezone", "string", "The time zone name for the given schedule."),
    col("Suspend", "boolean", "Whether subsequent executions are suspended."),
    col("Active", "integer", "The number of currently running jobs."),
    col("Last Schedule", "string", "When the job was last successfully scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn cronjob(cj: &Value, now: DateTime<Utc>) -> Row {
    let last = match time(cj, &["status", "lastScheduleTime"]) {
        Some(last) => since(Some(last), now),
        None => NONE.to_owned(),
    };
    let zone = match text(cj, &["spec", "timeZone"]) {
        "" => NONE,
        zone => zone,
    };
    // Defaulting sets spec.suspend to false.
    let suspend = if flag(cj, &["spec", "suspend"]) { "True" } else { "False" };
    let job_spec = at(cj, &["spec", "jobTemplate", "spec"]);
    let (names, images) = containers(job_spec.and_then(|s| at(s, &["template", "spec"])));
    Row::from(vec![
        json!(name(cj)),
        json!(text(cj, &["spec", "schedule"])),
        json!(zone),
        json!(suspend),
        json!(list(cj, &["status", "active"]).len()),
        json!(last),
        json!(age(cj, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(job_spec.and_then(|s| at(s, &["selector"])))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    #[test]
    fn job_status_completions_and_duration() {
        struct Case {
            spec: Value,
            status: Value,
            deleting: bool,
            want: [&'static str; 3],
        }
        let cases = [
            Case {
                spec: json!({"completions": 3, "parallelism": 2}),
                status: json!({"succeeded": 1, "startTime": "2024-05-01T11:55:00Z"}),
                deleting: false,
                want: ["Running", "1/3", "5m"],
            },
            Case {
                spec: json!({"parallelism": 4}),
                status: json!({"succeeded": 2, "startTime": "2024-05-01T11:00:00Z",
                    "completionTime": "2024-05-01T11:02:30Z",
                    "conditions": [{"type": "Complete", "status": "True"}]}),
                deleting: false,
                want: ["Complete", "2/1 of 4", "2m30s"],
            },
            Case { spec: json!({}), status: json!({}), deleting: false, want: ["Running", "0/1", ""] },
            Case {
                spec: json!({"completions": 1}),
                status: json!({"conditions": [{"type": "Failed", "status": "True"}]}),
                deleting: true,
                want: ["Failed", "0/1", ""],
            },
            Case {
                spec: json!({"completions": 1}),
                status: json!({}),
                deleting: true,
                want: ["Terminating", "0/1", ""],
            },
            Case {
                spec: json!({"completions": 1, "suspend": true}),
                status: json!({"conditions": [{"type": "Suspended", "status": "True"},
                    {"type": "Complete", "status": "False"}]}),
                deleting: false,
                want: ["Suspended", "0/1", ""],
            },
            Case {
                spec: json!({"completions": 1}),
                status: json!({"conditions": [{"type": "FailureTarget", "status": "True"}]}),
                deleting: false,
                want: ["FailureTarget", "0/1", ""],
            },
            Case {
                spec: json!({"completions": 2}),
                status: json!({"succeeded": 2, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}),
                deleting: false,
                want: ["SuccessCriteriaMet", "2/2", ""],
            },
        ];
        for case in cases {
            let mut j = json!({"metadata": {"name": "j"}, "spec": case.spec, "status": case.status});
            if case.deleting {
                j["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
            }
            let cells = job(&j, now()).cells;
            assert_eq!(cells[1..4], case.want.map(|s| json!(s)), "{j}");
            assert_eq!(cells.len(), JOB.len());
        }
    }

    #[test]
    fn cronjob_cells() {
        let cj = json!({
            "metadata": {"name": "backup", "creationTimestamp": "2024-04-01T12:00:00Z"},
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "dump", "image": "pg:16"}]}}}}},
            "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": "2024-05-01T03:00:00Z"},
        });
        assert_eq!(
            cronjob(&cj, now()).cells,
            [
                json!("backup"),
                json!("0 3 * * *"),
                json!("Europe/Berlin"),
                json!("False"),
                json!(1),
                json!("9h"),
                json!("30d"),
                json!("dump"),
                json!("pg:16"),
                json!("<none>")
            ]
        );
        let bare = cronjob(&json!({"spec": {"suspend": true}}), now()).cells;
        assert_eq!(bare[2..6], [json!("<none>"), json!("True"), json!(0), json!("<none>")]);
    }
}
