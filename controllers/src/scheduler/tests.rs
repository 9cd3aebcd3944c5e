//! Table-driven tests of the placement filters and the unschedulable message, from JSON snapshots.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use super::{schedule, ClusterSnapshot, Reason, Resources};

/// Deep-merges `patch` into `base` (objects merge key by key; anything else replaces).
pub(super) fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// A Ready node with 4 CPUs, 8Gi memory and room for 110 pods, patched by `patch`.
pub(super) fn node(name: &str, patch: Value) -> Node {
    let mut value = json!({
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name } },
        "spec": {},
        "status": {
            "allocatable": { "cpu": "4", "memory": "8Gi", "pods": "110" },
            "conditions": [{ "type": "Ready", "status": "True" }]
        }
    });
    merge(&mut value, patch);
    serde_json::from_value(value).expect("node json")
}

/// A pod in `default` with one container `app` requesting `cpu`/`memory`, patched by `patch`.
pub(super) fn pod(name: &str, cpu: &str, memory: &str, patch: Value) -> Pod {
    let mut value = json!({
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "containers": [{ "name": "app", "resources": { "requests": { "cpu": cpu, "memory": memory } } }] }
    });
    merge(&mut value, patch);
    serde_json::from_value(value).expect("pod json")
}

/// `pod` bound to `node_name`.
pub(super) fn bound(mut pod: Pod, node_name: &str) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node_name.to_string());
    }
    pod
}

struct FilterCase {
    name: &'static str,
    node: Node,
    existing: Vec<Pod>,
    pod: Pod,
    expected: Option<Reason>,
}

fn taint(key: &str, value: &str, effect: &str) -> Value {
    json!({ "spec": { "taints": [{ "key": key, "value": value, "effect": effect }] } })
}

fn affinity(terms: Value) -> Value {
    json!({ "spec": { "affinity": { "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": terms } } } } })
}

fn host_port(port: i32, ip: &str, protocol: &str) -> Value {
    json!({ "spec": { "containers": [{ "name": "app",
        "ports": [{ "containerPort": 80, "hostPort": port, "hostIP": ip, "protocol": protocol }] }] } })
}

fn anti_affinity(app: &str, namespaces: Value) -> Value {
    json!({ "metadata": { "labels": { "app": app } }, "spec": { "affinity": { "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": { "matchLabels": { "app": app } },
            "namespaces": namespaces,
            "topologyKey": "kubernetes.io/hostname" }] } } } })
}

fn labelled(app: &str, namespace: &str) -> Value {
    json!({ "metadata": { "labels": { "app": app }, "namespace": namespace } })
}

fn filter_cases() -> Vec<FilterCase> {
    let plain = || pod("p", "100m", "100Mi", json!({}));
    let labels = json!({ "metadata": { "labels": { "zone": "a", "gen": "5", "disk": "ssd" } } });
    let case = |name, node, pod, expected| FilterCase { name, node, existing: Vec::new(), pod, expected };
    vec![
        case("ready node accepts", node("n", json!({})), plain(), None),
        case(
            "not ready rejects",
            node("n", json!({ "status": { "conditions": [{ "type": "Ready", "status": "False" }] } })),
            plain(),
            Some(Reason::NotReady),
        ),
        case(
            "no conditions rejects",
            node("n", json!({ "status": { "conditions": [] } })),
            plain(),
            Some(Reason::NotReady),
        ),
        case(
            "cordoned rejects",
            node("n", json!({ "spec": { "unschedulable": true } })),
            plain(),
            Some(Reason::Unschedulable),
        ),
        case(
            "cordoned accepts tolerating pod",
            node("n", json!({ "spec": { "unschedulable": true } })),
            pod(
                "p",
                "1",
                "1Gi",
                json!({ "spec": { "tolerations": [
                { "key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule" }] } }),
            ),
            None,
        ),
        case(
            "NoSchedule taint rejects",
            node("n", taint("dedicated", "gpu", "NoSchedule")),
            plain(),
            Some(Reason::UntoleratedTaint { key: "dedicated".into(), value: "gpu".into() }),
        ),
        case(
            "NoExecute taint rejects",
            node("n", taint("k", "", "NoExecute")),
            plain(),
            Some(Reason::UntoleratedTaint { key: "k".into(), value: String::new() }),
        ),
        case("PreferNoSchedule does not filter", node("n", taint("k", "v", "PreferNoSchedule")), plain(), None),
        case(
            "Equal toleration accepts",
            node("n", taint("dedicated", "gpu", "NoSchedule")),
            pod("p", "1", "1Gi", json!({ "spec": { "tolerations": [{ "key": "dedicated", "value": "gpu" }] } })),
            None,
        ),
        case(
            "Equal toleration with other value rejects",
            node("n", taint("dedicated", "gpu", "NoSchedule")),
            pod("p", "1", "1Gi", json!({ "spec": { "tolerations": [{ "key": "dedicated", "value": "cpu" }] } })),
            Some(Reason::UntoleratedTaint { key: "dedicated".into(), value: "gpu".into() }),
        ),
        case(
            "toleration for another effect rejects",
            node("n", taint("k", "v", "NoExecute")),
            pod(
                "p",
                "1",
                "1Gi",
                json!({ "spec": { "tolerations": [
                { "key": "k", "operator": "Exists", "effect": "NoSchedule" }] } }),
            ),
            Some(Reason::UntoleratedTaint { key: "k".into(), value: "v".into() }),
        ),
        case(
            "empty key Exists tolerates all",
            node("n", taint("anything", "x", "NoExecute")),
            pod("p", "1", "1Gi", json!({ "spec": { "tolerations": [{ "operator": "Exists" }] } })),
            None,
        ),
        case(
            "insufficient cpu",
            node("n", json!({})),
            pod("p", "4500m", "1Gi", json!({})),
            Some(Reason::InsufficientCpu),
        ),
        case(
            "insufficient memory",
            node("n", json!({})),
            pod("p", "1", "9Gi", json!({})),
            Some(Reason::InsufficientMemory),
        ),
        case("exact fit accepts", node("n", json!({})), pod("p", "4", "8Gi", json!({})), None),
        case(
            "overhead counts",
            node("n", json!({})),
            pod("p", "4", "1Gi", json!({ "spec": { "overhead": { "cpu": "1m" } } })),
            Some(Reason::InsufficientCpu),
        ),
        case(
            "requests fall back to limits",
            node("n", json!({})),
            pod(
                "p",
                "1",
                "1Gi",
                json!({ "spec": { "containers": [{ "name": "app", "resources": {
                "requests": null, "limits": { "cpu": "5" } } }] } }),
            ),
            Some(Reason::InsufficientCpu),
        ),
        case(
            "nodeSelector matches",
            node("n", labels.clone()),
            pod("p", "1", "1Gi", json!({ "spec": { "nodeSelector": { "zone": "a" } } })),
            None,
        ),
        case(
            "nodeSelector mismatch",
            node("n", labels.clone()),
            pod("p", "1", "1Gi", json!({ "spec": { "nodeSelector": { "zone": "b" } } })),
            Some(Reason::NodeAffinity),
        ),
        case(
            "affinity In and Gt match",
            node("n", labels.clone()),
            pod(
                "p",
                "1",
                "1Gi",
                affinity(json!([{ "matchExpressions": [
                { "key": "zone", "operator": "In", "values": ["a", "b"] },
                { "key": "gen", "operator": "Gt", "values": ["4"] }] }])),
            ),
            None,
        ),
        case(
            "affinity AND within a term fails on Lt",
            node("n", labels.clone()),
            pod(
                "p",
                "1",
                "1Gi",
                affinity(json!([{ "matchExpressions": [
                { "key": "zone", "operator": "In", "values": ["a"] },
                { "key": "gen", "operator": "Lt", "values": ["5"] }] }])),
            ),
            Some(Reason::NodeAffinity),
        ),
        case(
            "affinity OR of terms",
            node("n", labels.clone()),
            pod(
                "p",
                "1",
                "1Gi",
                affinity(json!([
                { "matchExpressions": [{ "key": "disk", "operator": "DoesNotExist" }] },
                { "matchExpressions": [{ "key": "disk", "operator": "Exists" },
                                       { "key": "zone", "operator": "NotIn", "values": ["b"] }] }])),
            ),
            None,
        ),
        case(
            "affinity NotIn rejects",
            node("n", labels.clone()),
            pod(
                "p",
                "1",
                "1Gi",
                affinity(json!([{ "matchExpressions": [
                { "key": "zone", "operator": "NotIn", "values": ["a"] }] }])),
            ),
            Some(Reason::NodeAffinity),
        ),
        case(
            "matchFields on metadata.name",
            node("n", json!({})),
            pod(
                "p",
                "1",
                "1Gi",
                affinity(json!([{ "matchFields": [
                { "key": "metadata.name", "operator": "In", "values": ["n"] }] }])),
            ),
            None,
        ),
        case(
            "matchFields other name rejects",
            node("n", json!({})),
            pod(
                "p",
                "1",
                "1Gi",
                affinity(json!([{ "matchFields": [
                { "key": "metadata.name", "operator": "In", "values": ["m"] }] }])),
            ),
            Some(Reason::NodeAffinity),
        ),
        case(
            "empty term matches nothing",
            node("n", labels),
            pod("p", "1", "1Gi", affinity(json!([{}]))),
            Some(Reason::NodeAffinity),
        ),
    ]
}

fn filter_cases_with_existing_pods() -> Vec<FilterCase> {
    let existing = |patch: Value| vec![bound(pod("e", "0", "0", patch), "n")];
    let case = |name, existing, pod, expected| FilterCase { name, node: node("n", json!({})), existing, pod, expected };
    vec![
        case(
            "cpu used by bound pods",
            existing(json!({ "spec": { "containers": [{ "name": "app", "resources": {
            "requests": { "cpu": "3" } } }] } })),
            pod("p", "1500m", "1Gi", json!({})),
            Some(Reason::InsufficientCpu),
        ),
        case(
            "terminal pods free their resources",
            vec![bound(pod("e", "4", "1Gi", json!({ "status": { "phase": "Succeeded" } })), "n")],
            pod("p", "4", "1Gi", json!({})),
            None,
        ),
        FilterCase {
            name: "too many pods",
            node: node("n", json!({ "status": { "allocatable": { "pods": "1" } } })),
            existing: existing(json!({})),
            pod: pod("p", "1", "1Gi", json!({})),
            expected: Some(Reason::TooManyPods),
        },
        case(
            "same host port conflicts",
            existing(host_port(8080, "", "")),
            pod("p", "1", "1Gi", host_port(8080, "", "TCP")),
            Some(Reason::HostPorts),
        ),
        case(
            "0.0.0.0 conflicts with a specific IP",
            existing(host_port(8080, "10.0.0.1", "TCP")),
            pod("p", "1", "1Gi", host_port(8080, "0.0.0.0", "TCP")),
            Some(Reason::HostPorts),
        ),
        case(
            "different IPs do not conflict",
            existing(host_port(8080, "10.0.0.1", "TCP")),
            pod("p", "1", "1Gi", host_port(8080, "10.0.0.2", "TCP")),
            None,
        ),
        case(
            "different protocols do not conflict",
            existing(host_port(53, "", "UDP")),
            pod("p", "1", "1Gi", host_port(53, "", "TCP")),
            None,
        ),
        case(
            "different ports do not conflict",
            existing(host_port(80, "", "TCP")),
            pod("p", "1", "1Gi", host_port(81, "", "TCP")),
            None,
        ),
        case(
            "anti-affinity rejects a matching pod on the host",
            existing(labelled("web", "default")),
            pod("p", "1", "1Gi", anti_affinity("web", Value::Null)),
            Some(Reason::PodAntiAffinity),
        ),
        case(
            "anti-affinity ignores other namespaces by default",
            existing(labelled("web", "other")),
            pod("p", "1", "1Gi", anti_affinity("web", Value::Null)),
            None,
        ),
        case(
            "anti-affinity with listed namespaces",
            existing(labelled("web", "other")),
            pod("p", "1", "1Gi", anti_affinity("web", json!(["other"]))),
            Some(Reason::PodAntiAffinity),
        ),
        case(
            "anti-affinity ignores non-matching labels",
            existing(labelled("db", "default")),
            pod("p", "1", "1Gi", anti_affinity("web", Value::Null)),
            None,
        ),
        case(
            "existing pod's anti-affinity rejects",
            existing(anti_affinity("web", Value::Null)),
            pod("p", "1", "1Gi", labelled("web", "default")),
            Some(Reason::ExistingPodsAntiAffinity),
        ),
    ]
}

#[test]
fn each_filter_rejects_and_accepts() {
    for case in filter_cases().into_iter().chain(filter_cases_with_existing_pods()) {
        let snapshot = ClusterSnapshot::from_objects(vec![case.node], case.existing);
        let result = schedule(&case.pod, &snapshot);
        match case.expected {
            None => assert_eq!(result, Ok("n".to_string()), "{}", case.name),
            Some(reason) => {
                let err = result.expect_err(case.name);
                assert_eq!(err.node_reasons.get("n"), Some(&vec![reason]), "{}", case.name);
            }
        }
    }
}

#[test]
fn anti_affinity_on_other_host_does_not_filter() {
    let snapshot = ClusterSnapshot::from_objects(
        vec![node("a", json!({})), node("b", json!({}))],
        vec![bound(pod("e", "0", "0", labelled("web", "default")), "a")],
    );
    assert_eq!(schedule(&pod("p", "1", "1Gi", anti_affinity("web", Value::Null)), &snapshot), Ok("b".to_string()));
}

#[test]
fn mixed_three_node_message_matches_upstream() {
    let snapshot = ClusterSnapshot::from_objects(
        vec![
            node("a", taint("node.kubernetes.io/unreachable", "", "NoSchedule")),
            node("b", json!({ "status": { "allocatable": { "cpu": "1" } } })),
            node("c", json!({ "status": { "allocatable": { "cpu": "500m" } } })),
        ],
        Vec::new(),
    );
    let err = schedule(&pod("p", "2", "1Gi", json!({})), &snapshot).expect_err("nothing fits");
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu."
    );
}

#[test]
fn message_counts_every_reason_of_a_node_and_sorts_with_counts() {
    let snapshot = ClusterSnapshot::from_objects(
        vec![
            node("a", json!({ "status": { "allocatable": { "cpu": "1", "memory": "1Gi" } } })),
            node("b", json!({ "spec": { "unschedulable": true } })),
            node("c", json!({ "spec": { "unschedulable": true } })),
            node("d", json!({ "status": { "allocatable": { "memory": "1Gi" } } })),
        ],
        Vec::new(),
    );
    let err = schedule(&pod("p", "2", "2Gi", json!({})), &snapshot).expect_err("nothing fits");
    assert_eq!(
        err.message(),
        "0/4 nodes are available: 1 Insufficient cpu, 2 Insufficient memory, 2 node(s) were unschedulable."
    );
    let empty = ClusterSnapshot::default();
    assert_eq!(
        schedule(&pod("p", "1", "1Gi", json!({})), &empty).map_err(|e| e.to_string()),
        Err("no nodes available to schedule pods".to_string())
    );
}

#[test]
fn init_containers_count_by_max_and_sidecars_add() {
    let with_init = |init: Value| pod("p", "1", "100Mi", json!({ "spec": { "initContainers": init } }));
    let regular = with_init(json!([
        { "name": "i1", "resources": { "requests": { "cpu": "3", "memory": "50Mi" } } },
        { "name": "i2", "resources": { "requests": { "cpu": "500m", "memory": "1Gi" } } }]));
    assert_eq!(Resources::pod_requests(&regular), Resources { milli_cpu: 3000, memory: 1 << 30 });
    let sidecar = with_init(json!([
        { "name": "s", "restartPolicy": "Always", "resources": { "requests": { "cpu": "1", "memory": "10Mi" } } },
        { "name": "i", "resources": { "requests": { "cpu": "2500m" } } }]));
    assert_eq!(Resources::pod_requests(&sidecar), Resources { milli_cpu: 3500, memory: 110 << 20 });
    // The max rule decides fit: a 5-CPU init container does not fit a 4-CPU node even though the
    // app container does.
    let big_init = with_init(json!([{ "name": "i", "resources": { "requests": { "cpu": "5" } } }]));
    let snapshot = ClusterSnapshot::from_objects(vec![node("n", json!({}))], Vec::new());
    assert!(schedule(&big_init, &snapshot).is_err());
    assert_eq!(schedule(&regular, &snapshot), Ok("n".to_string()));
}
