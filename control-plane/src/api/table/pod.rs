//! The pod table, after upstream `printPod`: READY counts, the STATUS reason (init progress, container
//! waiting/terminated reasons, Terminating), RESTARTS with the time of the last one.
//!
//! Pure; depends only on the sibling column and format helpers.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::columns::{col, wide, Column, Printer, Row, AGE, NAME};
use super::format::{age, at, condition, deleting, flag, int, list, name, or_none, since, text, time, NONE};

const COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this \
         pod has restarted.",
    ),
    AGE,
    wide("IP", "string", "The IP address allocated to the pod."),
    wide("Node", "string", "The node the pod is scheduled onto."),
    wide("Nominated Node", "string", "The node the scheduler nominated for this pod after preemption."),
    wide("Readiness Gates", "string", "How many of the pod's readiness gates hold."),
];

/// The pod printer, for `("", "pods")`.
pub(super) fn printer(resource: &str) -> Option<Printer> {
    (resource == "pods").then_some(Printer { columns: COLUMNS, row })
}

/// Restarts, and the latest time a container last terminated, summed over some containers.
#[derive(Default)]
struct Restarts {
    count: i64,
    last: Option<DateTime<Utc>>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += int(status, &["restartCount"]);
        if at(status, &["lastState", "terminated"]).is_some() {
            let finished = time(status, &["lastState", "terminated", "finishedAt"]);
            if finished > self.last {
                self.last = finished;
            }
        }
    }
}

/// `Signal:N` / `ExitCode:N` for a termination without a reason.
fn exit_reason(terminated: &Value) -> String {
    match int(terminated, &["signal"]) {
        0 => format!("ExitCode:{}", int(terminated, &["exitCode"])),
        signal => format!("Signal:{signal}"),
    }
}

fn row(pod: &Value, now: DateTime<Utc>) -> Row {
    let phase = text(pod, &["status", "phase"]);
    let mut reason = match text(pod, &["status", "reason"]) {
        "" => phase.to_owned(),
        reason => reason.to_owned(),
    };
    let gated = list(pod, &["status", "conditions"])
        .iter()
        .any(|c| text(c, &["type"]) == "PodScheduled" && text(c, &["reason"]) == "SchedulingGated");
    if gated {
        reason = "SchedulingGated".to_owned();
    }

    let init_specs = list(pod, &["spec", "initContainers"]);
    let restartable = |container_name: &str| {
        init_specs.iter().any(|c| text(c, &["name"]) == container_name && text(c, &["restartPolicy"]) == "Always")
    };
    let sidecars = init_specs.iter().filter(|c| text(c, &["restartPolicy"]) == "Always").count();
    let total = list(pod, &["spec", "containers"]).len() + sidecars;
    let mut ready = 0;

    let mut restarts = Restarts::default();
    let mut sidecar_restarts = Restarts::default();
    let mut initializing = false;
    for (i, status) in list(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        restarts.add(status);
        let sidecar = restartable(text(status, &["name"]));
        if sidecar {
            sidecar_restarts.add(status);
        }
        let terminated = at(status, &["state", "terminated"]);
        let waiting_reason = text(status, &["state", "waiting", "reason"]);
        match terminated {
            Some(t) if int(t, &["exitCode"]) == 0 => continue,
            _ if sidecar && flag(status, &["started"]) => {
                if flag(status, &["ready"]) {
                    ready += 1;
                }
                continue;
            }
            Some(t) => {
                reason = match text(t, &["reason"]) {
                    "" => format!("Init:{}", exit_reason(t)),
                    why => format!("Init:{why}"),
                };
            }
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                reason = format!("Init:{waiting_reason}");
            }
            None => reason = format!("Init:{i}/{}", init_specs.len()),
        }
        initializing = true;
        break;
    }

    if !initializing || condition(pod, "Initialized") == Some("True") {
        restarts = sidecar_restarts;
        let mut running = false;
        for status in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts.add(status);
            let waiting_reason = text(status, &["state", "waiting", "reason"]);
            let terminated = at(status, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if let Some(t) = terminated {
                reason = match text(t, &["reason"]) {
                    "" => exit_reason(t),
                    why => why.to_owned(),
                };
            } else if flag(status, &["ready"]) && at(status, &["state", "running"]).is_some() {
                running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed is still running if another one is.
        if reason == "Completed" && running {
            reason = if condition(pod, "Ready") == Some("True") { "Running" } else { "NotReady" }.to_owned();
        }
    }

    if deleting(pod) && text(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".to_owned();
    } else if deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match restarts.last {
        Some(last) if restarts.count != 0 => format!("{} ({} ago)", restarts.count, since(Some(last), now)),
        _ => restarts.count.to_string(),
    };

    // Upstream reads status.podIPs; the v1 → internal conversion fills it from status.podIP.
    let ip = match list(pod, &["status", "podIPs"]).first() {
        Some(first) => text(first, &["ip"]),
        None => text(pod, &["status", "podIP"]),
    };
    let gates = list(pod, &["spec", "readinessGates"]);
    let gates_cell = if gates.is_empty() {
        NONE.to_owned()
    } else {
        let met = gates.iter().filter(|g| condition(pod, text(g, &["conditionType"])) == Some("True")).count();
        format!("{met}/{}", gates.len())
    };

    let conditions = match phase {
        "Succeeded" => vec![completed("Succeeded", "The pod has completed successfully.")],
        "Failed" => vec![completed("Failed", "The pod failed.")],
        _ => Vec::new(),
    };
    Row {
        cells: vec![
            json!(name(pod)),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts_cell),
            json!(age(pod, now)),
            json!(or_none(ip)),
            json!(or_none(text(pod, &["spec", "nodeName"]))),
            json!(or_none(text(pod, &["status", "nominatedNodeName"]))),
            json!(gates_cell),
        ],
        conditions,
    }
}

fn completed(reason: &str, message: &str) -> Value {
    json!({"type": "Completed", "status": "True", "reason": reason, "message": message})
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    fn ago(seconds: i64) -> String {
        (now() - Duration::seconds(seconds)).to_rfc3339()
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "creationTimestamp": ago(3600)},
            "spec": spec,
            "status": status,
        })
    }

    fn running(name: &str, ready: bool, restarts: i64) -> Value {
        json!({"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": ago(60)}}})
    }

    fn cells(pod: &Value) -> Vec<String> {
        row(pod, now()).cells.iter().map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned)).collect()
    }

    fn two() -> Value {
        json!({"containers": [{"name": "a"}, {"name": "b"}]})
    }

    #[test]
    fn ready_status_and_restarts() {
        struct Case {
            what: &'static str,
            pod: Value,
            ready: &'static str,
            status: &'static str,
            restarts: &'static str,
        }
        let crash = json!({
            "name": "b", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}},
        });
        let cases = [
            Case {
                what: "running, one of two ready",
                pod: pod(
                    two(),
                    json!({"phase": "Running", "containerStatuses": [running("a", true, 0), running("b", false, 0)]}),
                ),
                ready: "1/2",
                status: "Running",
                restarts: "0",
            },
            Case {
                what: "crash loop",
                pod: pod(two(), json!({"phase": "Running", "containerStatuses": [running("a", true, 0), crash]})),
                ready: "1/2",
                status: "CrashLoopBackOff",
                restarts: "5 (5m ago)",
            },
            Case {
                what: "pending without statuses",
                pod: pod(two(), json!({"phase": "Pending"})),
                ready: "0/2",
                status: "Pending",
                restarts: "0",
            },
            Case {
                what: "completed",
                pod: pod(
                    json!({"containers": [{"name": "a"}]}),
                    json!({"phase": "Succeeded", "containerStatuses": [{"name": "a", "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                ),
                ready: "0/1",
                status: "Completed",
                restarts: "0",
            },
            Case {
                what: "terminated without a reason",
                pod: pod(
                    json!({"containers": [{"name": "a"}]}),
                    json!({"phase": "Failed", "containerStatuses": [{"name": "a",
                        "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
                ),
                ready: "0/1",
                status: "Signal:9",
                restarts: "0",
            },
            Case {
                what: "one completed, one still running",
                pod: {
                    let mut p = pod(
                        two(),
                        json!({"phase": "Running", "containerStatuses": [
                            {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                            running("b", true, 0),
                        ], "conditions": [{"type": "Ready", "status": "False"}]}),
                    );
                    p["status"]["containerStatuses"].as_array_mut().expect("list").reverse();
                    p
                },
                ready: "1/2",
                status: "NotReady",
                restarts: "0",
            },
            Case {
                what: "second of two init containers running",
                pod: pod(
                    json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]}),
                    json!({"phase": "Pending", "initContainerStatuses": [
                        {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "i2", "state": {"running": {}}},
                    ]}),
                ),
                ready: "0/1",
                status: "Init:1/2",
                restarts: "0",
            },
            Case {
                what: "init container crash looping",
                pod: pod(
                    json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]}),
                    json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1", "restartCount": 3,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}]}),
                ),
                ready: "0/1",
                status: "Init:CrashLoopBackOff",
                restarts: "3 (30s ago)",
            },
            Case {
                what: "init container failed without a reason",
                pod: pod(
                    json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]}),
                    json!({"phase": "Pending", "initContainerStatuses": [{"name": "i1",
                        "state": {"terminated": {"exitCode": 2}}}]}),
                ),
                ready: "0/1",
                status: "Init:ExitCode:2",
                restarts: "0",
            },
            Case {
                what: "sidecar counts toward ready and total",
                pod: pod(
                    json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                        "containers": [{"name": "a"}]}),
                    json!({"phase": "Running",
                        "conditions": [{"type": "Initialized", "status": "True"}],
                        "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 2,
                            "state": {"running": {}},
                            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(7200)}}}],
                        "containerStatuses": [running("a", true, 1)]}),
                ),
                ready: "2/2",
                status: "Running",
                restarts: "3 (120m ago)",
            },
            Case {
                what: "terminating",
                pod: {
                    let mut p = pod(
                        json!({"containers": [{"name": "a"}]}),
                        json!({"phase": "Running", "containerStatuses": [running("a", true, 0)]}),
                    );
                    p["metadata"]["deletionTimestamp"] = json!(ago(5));
                    p
                },
                ready: "1/1",
                status: "Terminating",
                restarts: "0",
            },
            Case {
                what: "deleted after it succeeded",
                pod: {
                    let mut p = pod(json!({"containers": [{"name": "a"}]}), json!({"phase": "Succeeded"}));
                    p["metadata"]["deletionTimestamp"] = json!(ago(5));
                    p
                },
                ready: "0/1",
                status: "Succeeded",
                restarts: "0",
            },
            Case {
                what: "node lost",
                pod: {
                    let mut p =
                        pod(json!({"containers": [{"name": "a"}]}), json!({"phase": "Running", "reason": "NodeLost"}));
                    p["metadata"]["deletionTimestamp"] = json!(ago(5));
                    p
                },
                ready: "0/1",
                status: "Unknown",
                restarts: "0",
            },
            Case {
                what: "scheduling gated",
                pod: pod(
                    json!({"containers": [{"name": "a"}]}),
                    json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                        "reason": "SchedulingGated"}]}),
                ),
                ready: "0/1",
                status: "SchedulingGated",
                restarts: "0",
            },
            Case {
                what: "evicted",
                pod: pod(json!({"containers": [{"name": "a"}]}), json!({"phase": "Failed", "reason": "Evicted"})),
                ready: "0/1",
                status: "Evicted",
                restarts: "0",
            },
        ];
        for case in cases {
            let got = cells(&case.pod);
            assert_eq!(got[0], "web", "{}", case.what);
            assert_eq!(got[1], case.ready, "{}: ready", case.what);
            assert_eq!(got[2], case.status, "{}: status", case.what);
            assert_eq!(got[3], case.restarts, "{}: restarts", case.what);
            assert_eq!(got[4], "60m", "{}: age", case.what);
        }
    }

    #[test]
    fn wide_cells() {
        let p = pod(
            json!({"containers": [{"name": "a"}], "nodeName": "node-1",
                "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]}),
            json!({"phase": "Running", "podIPs": [{"ip": "10.1.0.4"}, {"ip": "fd00::4"}], "podIP": "10.1.0.4",
                "conditions": [{"type": "example.com/lb", "status": "True"}]}),
        );
        assert_eq!(cells(&p)[5..], ["10.1.0.4", "node-1", "<none>", "1/2"]);
        let bare = pod(json!({"containers": []}), json!({"podIP": "10.1.0.9"}));
        assert_eq!(cells(&bare)[5..], ["10.1.0.9", "<none>", "<none>", "<none>"]);
        assert_eq!(cells(&pod(json!({}), json!({})))[5..], ["<none>", "<none>", "<none>", "<none>"]);
    }

    #[test]
    fn finished_pods_carry_a_completed_condition() {
        let done = row(&pod(json!({}), json!({"phase": "Succeeded"})), now());
        assert_eq!(done.conditions[0]["reason"], "Succeeded");
        assert_eq!(done.conditions[0]["type"], "Completed");
        assert!(row(&pod(json!({}), json!({"phase": "Running"})), now()).conditions.is_empty());
        assert_eq!(COLUMNS.len(), row(&pod(json!({}), json!({})), now()).cells.len());
    }
}
