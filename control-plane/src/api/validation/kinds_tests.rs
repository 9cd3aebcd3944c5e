//! Table-driven tests of the smaller kinds: ConfigMap, Secret, PVC, Lease, Endpoints, Event, RBAC
//! and PodDisruptionBudget.

use serde_json::json;

use super::tests::{causes, defaulted};

#[test]
fn configmap_and_secret_violations() {
    let cm = json!({ "metadata": { "name": "c" }, "data": { "app.properties": "a=b", "KEY_1": "v" }, "binaryData": { "bin": "AAE=" } });
    assert_eq!(causes("", "ConfigMap", &cm, None), vec![]);
    let bad_key = json!({ "data": { "a b": "x" } });
    assert_eq!(causes("", "ConfigMap", &bad_key, None), vec![("data[a b]".into(), "FieldValueInvalid")]);
    let dup = json!({ "data": { "k": "x" }, "binaryData": { "k": "AA==" } });
    assert_eq!(causes("", "ConfigMap", &dup, None), vec![("binaryData[k]".into(), "FieldValueInvalid")]);
    let big = json!({ "data": { "k": "x".repeat(1024 * 1024 + 1) } });
    assert_eq!(causes("", "ConfigMap", &big, None), vec![("".into(), "FieldValueTooLong")]);
    let frozen = json!({ "immutable": true, "data": { "k": "v" } });
    let mut edited = frozen.clone();
    edited["data"]["k"] = json!("w");
    assert_eq!(causes("", "ConfigMap", &edited, Some(&frozen)), vec![("data".into(), "FieldValueForbidden")]);
    let mut thawed = frozen.clone();
    thawed["immutable"] = json!(false);
    assert_eq!(causes("", "ConfigMap", &thawed, Some(&frozen)), vec![("immutable".into(), "FieldValueForbidden")]);
    assert_eq!(causes("", "ConfigMap", &frozen, Some(&frozen)), vec![]);

    let secret =
        defaulted("", "Secret", json!({ "metadata": { "name": "s" }, "stringData": { "password": "hunter2" } }));
    assert_eq!(causes("", "Secret", &secret, None), vec![]);
    let tls = json!({ "type": "kubernetes.io/tls", "data": { "tls.crt": "AA==" } });
    assert_eq!(causes("", "Secret", &tls, None), vec![("data[tls.key]".into(), "FieldValueRequired")]);
    let token = json!({ "type": "kubernetes.io/service-account-token" });
    assert_eq!(
        causes("", "Secret", &token, None),
        vec![("metadata.annotations[kubernetes.io/service-account.name]".into(), "FieldValueRequired")]
    );
    let mut retyped = secret.clone();
    retyped["type"] = json!("kubernetes.io/basic-auth");
    assert_eq!(causes("", "Secret", &retyped, Some(&secret)), vec![("type".into(), "FieldValueInvalid")]);
    let big = json!({ "data": { "k": base64_of_len(1024 * 1024 + 1) } });
    assert_eq!(causes("", "Secret", &big, None), vec![("data".into(), "FieldValueTooLong")]);
}

fn base64_of_len(n: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(vec![0u8; n])
}

#[test]
fn small_kinds_violations() {
    let pvc = defaulted(
        "",
        "PersistentVolumeClaim",
        json!({ "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } } }),
    );
    assert_eq!(causes("", "PersistentVolumeClaim", &pvc, None), vec![]);
    let bad = defaulted("", "PersistentVolumeClaim", json!({ "spec": { "accessModes": ["ReadWriteSometimes"] } }));
    assert_eq!(
        causes("", "PersistentVolumeClaim", &bad, None),
        vec![
            ("spec.accessModes[0]".into(), "FieldValueNotSupported"),
            ("spec.resources[storage]".into(), "FieldValueRequired")
        ]
    );
    let mut grown = pvc.clone();
    grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(causes("", "PersistentVolumeClaim", &grown, Some(&pvc)), vec![]);
    let mut remoded = pvc.clone();
    remoded["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    assert_eq!(causes("", "PersistentVolumeClaim", &remoded, Some(&pvc)), vec![("spec".into(), "FieldValueForbidden")]);
    let mut status_only = pvc.clone();
    status_only["status"] = json!({ "phase": "Bound" });
    assert_eq!(causes("", "PersistentVolumeClaim", &status_only, Some(&pvc)), vec![]);

    let lease = json!({ "spec": { "holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0 } });
    assert_eq!(causes("coordination.k8s.io", "Lease", &lease, None), vec![]);
    let lease = json!({ "spec": { "leaseDurationSeconds": 0 } });
    assert_eq!(
        causes("coordination.k8s.io", "Lease", &lease, None),
        vec![("spec.leaseDurationSeconds".into(), "FieldValueInvalid")]
    );

    let ep =
        json!({ "subsets": [{ "addresses": [{ "ip": "10.1.2.3" }], "ports": [{ "port": 80, "protocol": "TCP" }] }] });
    assert_eq!(causes("", "Endpoints", &ep, None), vec![]);
    let ep = json!({ "subsets": [{ "addresses": [{ "ip": "nope" }], "ports": [{ "port": 80 }, { "port": 0, "name": "b" }] }] });
    assert_eq!(
        causes("", "Endpoints", &ep, None),
        vec![
            ("subsets[0].addresses[0].ip".into(), "FieldValueInvalid"),
            ("subsets[0].ports[0].name".into(), "FieldValueRequired"),
            ("subsets[0].ports[1].port".into(), "FieldValueInvalid")
        ]
    );

    let ev = json!({ "metadata": { "namespace": "a" }, "involvedObject": { "kind": "Pod", "namespace": "b" } });
    assert_eq!(causes("", "Event", &ev, None), vec![("involvedObject.namespace".into(), "FieldValueInvalid")]);
    let ev =
        json!({ "metadata": { "namespace": "a" }, "involvedObject": { "kind": "Pod", "namespace": "a" }, "count": 1 });
    assert_eq!(causes("", "Event", &ev, None), vec![]);

    let rb = defaulted(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        json!({
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r" },
        "subjects": [{ "kind": "ServiceAccount", "name": "default", "namespace": "ns" }] }),
    );
    assert_eq!(causes("rbac.authorization.k8s.io", "RoleBinding", &rb, None), vec![]);
    let mut rebound = rb.clone();
    rebound["roleRef"]["name"] = json!("other");
    assert_eq!(
        causes("rbac.authorization.k8s.io", "RoleBinding", &rebound, Some(&rb)),
        vec![("roleRef".into(), "FieldValueInvalid")]
    );
    let crb = json!({ "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r" } });
    assert_eq!(
        causes("rbac.authorization.k8s.io", "ClusterRoleBinding", &crb, None),
        vec![("roleRef.kind".into(), "FieldValueNotSupported")]
    );
    let role =
        json!({ "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] }, { "resources": ["pods"] }] });
    assert_eq!(
        causes("rbac.authorization.k8s.io", "Role", &role, None),
        vec![("rules[1].verbs".into(), "FieldValueRequired"), ("rules[1].apiGroups".into(), "FieldValueRequired")]
    );

    let pdb = json!({ "spec": { "minAvailable": 1, "maxUnavailable": 1 } });
    assert_eq!(causes("policy", "PodDisruptionBudget", &pdb, None), vec![("spec".into(), "FieldValueInvalid")]);
}
