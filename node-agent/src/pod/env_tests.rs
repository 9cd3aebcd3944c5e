//! Tests of [`super`]: env resolution from objects, fields and resources, precedence and expansion.

use std::sync::Arc;

use super::*;
use crate::objects::ObjectData;

fn pod(containers: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1", "labels": {"app": "web", "tier": "front"},
         "annotations": {"note": "hi"}},
        "spec": {"serviceAccountName": "sa", "containers": containers},
    }))
    .expect("pod")
}

/// An object of namespace `ns1`: its kind, name and data (`None` when it does not exist).
type TestObject<'a> = (ObjectKind, &'a str, Option<&'a [(&'a str, &'a str)]>);

fn objects(entries: &[TestObject<'_>]) -> ObjectsView {
    entries
        .iter()
        .map(|(kind, name, data)| {
            let state = match data {
                None => ObjectState::Missing,
                Some(pairs) => ObjectState::Present(Arc::new(ObjectData {
                    data: pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
                })),
            };
            (ObjectRef::new(*kind, "ns1", name), state)
        })
        .collect()
}

fn downward() -> Downward {
    Downward {
        pod_ip: "10.1.0.5".into(),
        host_ip: "192.0.2.1".into(),
        node_name: "node-a".into(),
        allocatable_cpu_millis: 2000,
        allocatable_memory_bytes: 4 << 30,
    }
}

fn resolve(p: &Pod, objects: &ObjectsView) -> Result<Vec<(String, String)>, SpecError> {
    let c = &p.spec.as_ref().expect("spec").containers[0];
    container_env(p, c, EnvInputs { objects, downward: &downward() })
}

#[test]
fn env_from_then_env_with_precedence_prefixes_and_invalid_keys_skipped() {
    let p = pod(serde_json::json!([{"name": "c", "image": "i",
        "envFrom": [
            {"configMapRef": {"name": "cm"}},
            {"secretRef": {"name": "s"}, "prefix": "S_"}
        ],
        "env": [{"name": "A", "value": "from-env"}, {"name": "B", "value": "$(A)-$(S_PASS)-$(NOPE)-$$(A)"}]
    }]));
    let view = objects(&[
        (ObjectKind::ConfigMap, "cm", Some(&[("A", "from-cm"), ("1bad", "x"), ("C", "c")])),
        (ObjectKind::Secret, "s", Some(&[("PASS", "pw")])),
    ]);
    let env = resolve(&p, &view).expect("env");
    assert_eq!(
        env,
        [
            ("A".to_string(), "from-env".to_string()),
            ("C".to_string(), "c".to_string()),
            ("S_PASS".to_string(), "pw".to_string()),
            ("B".to_string(), "from-env-pw-$(NOPE)-$(A)".to_string()),
        ]
    );
}

#[test]
fn key_refs_read_objects_and_report_what_is_missing() {
    let p = pod(serde_json::json!([{"name": "c", "image": "i", "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
        {"name": "Z", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "pw", "optional": true}}}
    ]}]));
    let view = objects(&[
        (ObjectKind::ConfigMap, "cm", Some(&[("k", "v")])),
        (ObjectKind::Secret, "s", Some(&[("pw", "hunter2")])),
        (ObjectKind::Secret, "gone", None),
    ]);
    let env = resolve(&p, &view).expect("env");
    assert_eq!(env, [("X".to_string(), "v".to_string()), ("Y".to_string(), "hunter2".to_string())]);

    let missing = objects(&[(ObjectKind::ConfigMap, "cm", None), (ObjectKind::Secret, "s", Some(&[]))]);
    let err = resolve(&p, &missing).expect_err("missing configmap");
    assert_eq!(err.to_string(), "configmap \"cm\" not found");
    let no_key = objects(&[(ObjectKind::ConfigMap, "cm", Some(&[])), (ObjectKind::Secret, "s", Some(&[]))]);
    let err = resolve(&p, &no_key).expect_err("missing key");
    assert_eq!(err.to_string(), "couldn't find key k in ConfigMap ns1/cm");
    let err = resolve(&p, &ObjectsView::new()).expect_err("not synced");
    assert!(err.to_string().contains("configmap ns1/cm"), "{err}");
}

#[test]
fn field_refs_cover_metadata_subscripts_and_status() {
    let field = |path: &str| serde_json::json!({"name": path.replace(['.', '[', ']', '\''], "_"), "valueFrom": {"fieldRef": {"fieldPath": path}}});
    let paths = [
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.labels['tier']",
        "metadata.annotations['note']",
        "metadata.labels['absent']",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.podIP",
        "status.hostIP",
    ];
    let p = pod(
        serde_json::json!([{"name": "c", "image": "i", "env": paths.iter().map(|p| field(p)).collect::<Vec<_>>()}]),
    );
    let env = resolve(&p, &ObjectsView::new()).expect("env");
    let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["web", "ns1", "u-1", "front", "hi", "", "node-a", "sa", "10.1.0.5", "192.0.2.1"]);

    let bad = pod(serde_json::json!([{"name": "c", "image": "i", "env": [field("spec.unknown")]}]));
    assert!(matches!(resolve(&bad, &ObjectsView::new()), Err(SpecError::FieldPath { .. })));
}

#[test]
fn resource_refs_divide_round_up_and_default_limits_to_allocatable() {
    let p = pod(serde_json::json!([{"name": "c", "image": "i",
    "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    "env": [
        {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
        {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        {"name": "MEM_LIM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "MEM_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}}
    ]}]));
    let env = resolve(&p, &ObjectsView::new()).expect("env");
    let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["1", "250", "128", "2", "67108864"]);

    let bad = pod(serde_json::json!([{"name": "c", "image": "i", "env": [
        {"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}]));
    let err = resolve(&bad, &ObjectsView::new()).expect_err("unsupported");
    assert!(err.to_string().contains("limits.gpu"), "{err}");
}

#[test]
fn expansion_rules() {
    let env = vec![("A".to_string(), "1".to_string()), ("B".to_string(), "two".to_string())];
    let cases = [
        ("plain", "plain"),
        ("$(A)", "1"),
        ("x$(A)y$(B)z", "x1ytwoz"),
        ("$$(A)", "$(A)"),
        ("$(C)", "$(C)"),
        ("cost $5", "cost $5"),
        ("$(unterminated", "$(unterminated"),
        ("end$", "end$"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, &env), want, "{input}");
    }
    assert_eq!(expand_all(Some(&vec!["echo".into(), "$(B)".into()]), &env), ["echo", "two"]);
}
