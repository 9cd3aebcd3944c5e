//! Tables for the `apps` group: deployments, replicasets, statefulsets and daemonsets, after upstream
//! `printDeployment`, `printReplicaSet`, `printStatefulSet` and `printDaemonSet`.
//!
//! Pure; depends only on the sibling column and format helpers.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::columns::{col, Column, Printer, Row, AGE, CONTAINERS, IMAGES, NAME, SELECTOR};
use super::format::{age, at, containers, format_label_selector, int, int_opt, label_set, name, selector_string};

/// The printer for an `apps` resource.
pub(super) fn printer(resource: &str) -> Option<Printer> {
    let printer = match resource {
        "deployments" => Printer { columns: DEPLOYMENT, row: deployment },
        "replicasets" => Printer { columns: REPLICASET, row: replicaset },
        "statefulsets" => Printer { columns: STATEFULSET, row: statefulset },
        "daemonsets" => Printer { columns: DAEMONSET, row: daemonset },
        _ => return None,
    };
    Some(printer)
}

/// `spec.replicas`, which defaulting sets to 1 when a client leaves it out.
fn desired(object: &Value) -> i64 {
    int_opt(object, &["spec", "replicas"]).unwrap_or(1)
}

fn template_containers(object: &Value) -> (String, String) {
    containers(at(object, &["spec", "template", "spec"]))
}

const READY: Column = col("Ready", "string", "Number of the pod with ready state");

const DEPLOYMENT: &[Column] = &[
    NAME,
    READY,
    col("Up-to-date", "string", "Total number of non-terminated pods that have the desired template spec."),
    col("Available", "string", "Total number of available pods (ready for at least minReadySeconds)."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn deployment(d: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = template_containers(d);
    let selector = selector_string(at(d, &["spec", "selector"])).unwrap_or_else(|| "<invalid>".to_owned());
    Row::from(vec![
        json!(name(d)),
        json!(format!("{}/{}", int(d, &["status", "readyReplicas"]), desired(d))),
        json!(int(d, &["status", "updatedReplicas"])),
        json!(int(d, &["status", "availableReplicas"])),
        json!(age(d, now)),
        json!(names),
        json!(images),
        json!(selector),
    ])
}

const REPLICASET: &[Column] = &[
    NAME,
    col("Desired", "integer", "Number of desired pods."),
    col("Current", "integer", "The most recently observed number of replicas."),
    col("Ready", "integer", "The number of pods targeted by this ReplicaSet with a Ready Condition."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn replicaset(rs: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = template_containers(rs);
    Row::from(vec![
        json!(name(rs)),
        json!(desired(rs)),
        json!(int(rs, &["status", "replicas"])),
        json!(int(rs, &["status", "readyReplicas"])),
        json!(age(rs, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(rs, &["spec", "selector"]))),
    ])
}

const STATEFULSET: &[Column] = &[NAME, READY, AGE, CONTAINERS, IMAGES];

fn statefulset(ss: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = template_containers(ss);
    Row::from(vec![
        json!(name(ss)),
        json!(format!("{}/{}", int(ss, &["status", "readyReplicas"]), desired(ss))),
        json!(age(ss, now)),
        json!(names),
        json!(images),
    ])
}

const DAEMONSET: &[Column] = &[
    NAME,
    col("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
    col("Current", "integer", "The number of nodes running at least one daemon pod that are supposed to."),
    col("Ready", "integer", "The number of nodes running the daemon pod with a Ready Condition."),
    col("Up-to-date", "integer", "The number of nodes running the updated daemon pod."),
    col("Available", "integer", "The number of nodes running an available daemon pod."),
    col("Node Selector", "string", "The node selector of the pod template."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn daemonset(ds: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = template_containers(ds);
    let status = |field: &str| json!(int(ds, &["status", field]));
    Row::from(vec![
        json!(name(ds)),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        json!(label_set(at(ds, &["spec", "template", "spec", "nodeSelector"]))),
        json!(age(ds, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(ds, &["spec", "selector"]))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    fn template() -> Value {
        json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}],
            "nodeSelector": {"kubernetes.io/os": "linux"}}})
    }

    #[test]
    fn deployment_ready_column() {
        let cases: &[(Value, Value, &str)] = &[
            (json!({"replicas": 3}), json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}), "2/3"),
            (json!({"replicas": 0}), json!({}), "0/0"),
            (json!({}), json!({"readyReplicas": 1}), "1/1"),
            (json!({"replicas": 2}), json!({"readyReplicas": 5}), "5/2"),
        ];
        for (spec, status, want) in cases {
            let mut spec = spec.clone();
            spec["template"] = template();
            spec["selector"] = json!({"matchLabels": {"app": "web"}});
            let d = json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:59:15Z"}, "spec": spec, "status": status});
            let cells = deployment(&d, now()).cells;
            assert_eq!(cells[1], *want, "{d}");
            assert_eq!(cells[4], "45s");
            assert_eq!(cells[5..], [json!("app,log"), json!("nginx:1.27,busybox"), json!("app=web")]);
        }
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 1}});
        assert_eq!(deployment(&d, now()).cells[1..4], [json!("2/3"), json!(3), json!(1)]);
        let bad = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]}}});
        assert_eq!(deployment(&bad, now()).cells[7], "<invalid>");
    }

    #[test]
    fn replicaset_statefulset_daemonset_cells() {
        let rs = json!({"metadata": {"name": "web-5d8"}, "spec": {"replicas": 3, "template": template(),
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8"}}},
            "status": {"replicas": 3, "readyReplicas": 1}});
        assert_eq!(
            replicaset(&rs, now()).cells,
            [
                json!("web-5d8"),
                json!(3),
                json!(3),
                json!(1),
                json!("<unknown>"),
                json!("app,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web,pod-template-hash=5d8")
            ]
        );
        let ss = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": template()}, "status": {"readyReplicas": 3}});
        assert_eq!(statefulset(&ss, now()).cells[1], "3/3");
        let ds = json!({"metadata": {"name": "agent"}, "spec": {"template": template()},
            "status": {"desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberReady": 3,
                "updatedNumberScheduled": 4, "numberAvailable": 3}});
        let cells = daemonset(&ds, now()).cells;
        assert_eq!(cells[1..7], [json!(4), json!(4), json!(3), json!(4), json!(3), json!("kubernetes.io/os=linux")]);
        assert_eq!(cells[10], "<none>");
        for resource in ["deployments", "replicasets", "statefulsets", "daemonsets"] {
            let p = printer(resource).expect("printer");
            assert_eq!((p.row)(&json!({}), now()).cells.len(), p.columns.len(), "{resource}");
        }
    }
}
