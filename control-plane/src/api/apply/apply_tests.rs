//! Scenario tests of server-side apply and update tracking across several managers, written against
//! the upstream behaviour of `kubectl apply --server-side`, Helm 4 and ordinary writes.

use serde_json::{json, Value};

use super::*;

const T1: &str = "2024-05-01T10:00:00Z";
const T2: &str = "2024-05-01T11:00:00Z";
const DEPLOYMENT: (&str, &str) = ("apps", "Deployment");

fn deployment(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

/// A Deployment configuration that sets no spec at all.
fn bare_deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}})
}

fn apply_at(live: Option<&Value>, config: &Value, manager: &str, force: bool, now: &str) -> Result<Value, ApplyError> {
    apply(live, config, manager, force, now, DEPLOYMENT)
}

fn apply_ok(live: Option<&Value>, config: &Value, manager: &str) -> Value {
    apply_at(live, config, manager, false, T1).expect("apply succeeds")
}

/// The managedFields entry of `manager` with `operation`.
fn entry<'a>(object: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn fields_of(object: &Value, manager: &str, operation: &str) -> Value {
    entry(object, manager, operation).map_or(Value::Null, |e| e["fieldsV1"].clone())
}

fn managers_of(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| format!("{}/{}", e["manager"].as_str().unwrap_or("?"), e["operation"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default()
}

fn conflict_message(result: Result<Value, ApplyError>) -> String {
    match result {
        Err(err @ ApplyError::Conflict(_)) => err.to_string(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn first_apply_creates_the_object_and_its_ownership() {
    let config = deployment(json!({"replicas": 2}));
    let created = apply_ok(None, &config, "helm");
    assert_eq!(created["spec"]["replicas"], 2);
    assert_eq!(created["metadata"]["name"], "web");
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{"manager": "helm", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}])
    );
}

#[test]
fn full_deployment_field_set_matches_upstream_encoding() {
    let config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"},
                     "annotations": {"team": "web"}, "finalizers": ["example.com/keep"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx:1.25", "args": ["-g", "daemon off;"],
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "A", "value": "1"}],
                        "resources": {},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "nodeSelector": {"disk": "ssd"}
                }
            }
        }
    });
    let created = apply(None, &config, "kubectl", false, T1, DEPLOYMENT).expect("applies");
    let expected = json!({
        "f:metadata": {
            "f:annotations": {"f:team": {}},
            "f:finalizers": {"v:\"example.com/keep\"": {}},
            "f:labels": {"f:app": {}}
        },
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:strategy": {"f:rollingUpdate": {"f:maxSurge": {}}, "f:type": {}},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        "k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:args": {},
                            "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}},
                            "f:resources": {},
                            "f:volumeMounts": {"k:{\"mountPath\":\"/data\"}": {".": {}, "f:mountPath": {}, "f:name": {}}}
                        }
                    },
                    "f:nodeSelector": {},
                    "f:tolerations": {},
                    "f:volumes": {"k:{\"name\":\"data\"}": {".": {}, "f:emptyDir": {}, "f:name": {}}}
                }
            }
        }
    });
    assert_eq!(fields_of(&created, "kubectl", "Apply"), expected);
}

#[test]
fn reapplying_without_a_field_removes_it() {
    let first = apply_ok(None, &deployment(json!({"replicas": 2, "paused": true, "minReadySeconds": 5})), "helm");
    let second = apply_ok(Some(&first), &deployment(json!({"replicas": 2})), "helm");
    assert_eq!(second["spec"], json!({"replicas": 2}));
    assert_eq!(fields_of(&second, "helm", "Apply"), json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(second["metadata"]["name"], "web", "server metadata survives pruning");
}

#[test]
fn applying_nothing_removes_everything_the_manager_owned() {
    let first = apply_ok(None, &deployment(json!({"replicas": 2})), "helm");
    let empty = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let second = apply_ok(Some(&first), &empty, "helm");
    assert_eq!(second.get("spec"), None);
    assert_eq!(second["metadata"].get("managedFields"), None, "an applier owning nothing has no entry");
    assert_eq!(second["metadata"]["namespace"], "default");
}

#[test]
fn a_field_shared_with_another_applier_is_kept() {
    let first = apply_ok(None, &deployment(json!({"replicas": 3, "paused": true})), "alpha");
    // Same value: no conflict, both own it.
    let shared = apply_ok(Some(&first), &deployment(json!({"replicas": 3})), "beta");
    assert_eq!(fields_of(&shared, "alpha", "Apply"), json!({"f:spec": {"f:paused": {}, "f:replicas": {}}}));
    assert_eq!(fields_of(&shared, "beta", "Apply"), json!({"f:spec": {"f:replicas": {}}}));
    // alpha stops applying both: paused goes, replicas stays because beta owns it.
    let after = apply_ok(Some(&shared), &deployment(json!({"minReadySeconds": 1})), "alpha");
    assert_eq!(after["spec"], json!({"replicas": 3, "minReadySeconds": 1}));
    assert_eq!(fields_of(&after, "alpha", "Apply"), json!({"f:spec": {"f:minReadySeconds": {}}}));
}

#[test]
fn conflict_between_two_appliers() {
    let first = apply_ok(None, &deployment(json!({"replicas": 3})), "alpha");
    let err = apply_at(Some(&first), &deployment(json!({"replicas": 5})), "beta", false, T2).expect_err("conflict");
    assert_eq!(err.http_status(), 409);
    let ApplyError::Conflict(conflicts) = &err else { panic!("expected conflict, got {err:?}") };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].path, ".spec.replicas");
    assert_eq!(conflicts[0].cause_message(), "conflict with \"alpha\"");
    assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"alpha\": .spec.replicas");
}

#[test]
fn conflict_with_an_updater_names_its_api_version() {
    let created = deployment(json!({"replicas": 1}));
    let mut live = created.clone();
    track_update(None, &mut live, "kubectl-client-side-apply", "Update", "apps/v1", T1);
    let message = conflict_message(apply_at(Some(&live), &deployment(json!({"replicas": 2})), "kubectl", false, T2));
    assert_eq!(
        message,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn several_conflicts_are_listed_per_manager() {
    let first = apply_ok(None, &deployment(json!({"replicas": 3, "paused": false})), "alpha");
    let mut live = first.clone();
    live["metadata"]["labels"] = json!({"tier": "web"});
    track_update(Some(&first), &mut live, "kubectl-label", "Update", "apps/v1", T1);
    let mut config = deployment(json!({"replicas": 5, "paused": true}));
    config["metadata"]["labels"] = json!({"tier": "db"});
    let message = conflict_message(apply_at(Some(&live), &config, "beta", false, T2));
    assert_eq!(
        message,
        "Apply failed with 3 conflicts: conflicts with \"alpha\":\n- .spec.paused\n- .spec.replicas\n\
         conflicts with \"kubectl-label\" using apps/v1:\n- .metadata.labels.tier"
    );
}

#[test]
fn force_takes_ownership() {
    let first = apply_ok(None, &deployment(json!({"replicas": 3, "paused": true})), "alpha");
    let forced = apply_at(Some(&first), &deployment(json!({"replicas": 5})), "beta", true, T2).expect("forced");
    assert_eq!(forced["spec"]["replicas"], 5);
    assert_eq!(fields_of(&forced, "alpha", "Apply"), json!({"f:spec": {"f:paused": {}}}));
    assert_eq!(fields_of(&forced, "beta", "Apply"), json!({"f:spec": {"f:replicas": {}}}));
    // A manager losing its last field loses its entry.
    let all = apply_at(Some(&forced), &deployment(json!({"replicas": 5, "paused": false})), "beta", true, T2)
        .expect("forced");
    assert_eq!(managers_of(&all), ["beta/Apply"]);
    // alpha now conflicts in turn.
    let message = conflict_message(apply_at(Some(&all), &deployment(json!({"paused": true})), "alpha", false, T2));
    assert_eq!(message, "Apply failed with 1 conflict: conflict with \"beta\": .spec.paused");
}

#[test]
fn scale_by_another_manager_then_reapply_conflicts() {
    let applied = apply_ok(None, &deployment(json!({"replicas": 3, "paused": false})), "helm");
    let mut scaled = applied.clone();
    scaled["spec"]["replicas"] = json!(10);
    track_update(Some(&applied), &mut scaled, "kubectl", "Update", "apps/v1", T2);
    assert_eq!(fields_of(&scaled, "helm", "Apply"), json!({"f:spec": {"f:paused": {}}}), "the update took replicas");
    assert_eq!(fields_of(&scaled, "kubectl", "Update"), json!({"f:spec": {"f:replicas": {}}}));

    let message = conflict_message(apply_at(
        Some(&scaled),
        &deployment(json!({"replicas": 3, "paused": false})),
        "helm",
        false,
        T2,
    ));
    assert_eq!(message, "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas");

    // Re-applying the value the updater set is no conflict: ownership is shared.
    let agreed = apply_ok(Some(&scaled), &deployment(json!({"replicas": 10, "paused": false})), "helm");
    assert_eq!(fields_of(&agreed, "kubectl", "Update"), json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(fields_of(&agreed, "helm", "Apply"), json!({"f:spec": {"f:paused": {}, "f:replicas": {}}}));
}

fn with_containers(containers: Value) -> Value {
    deployment(json!({"template": {"spec": {"containers": containers}}}))
}

#[test]
fn containers_merge_by_name_across_managers() {
    let first = apply_ok(None, &with_containers(json!([{"name": "app", "image": "app:1"}])), "alpha");
    let second = apply_ok(Some(&first), &with_containers(json!([{"name": "sidecar", "image": "proxy:1"}])), "beta");
    assert_eq!(
        second["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "proxy:1"}])
    );
    // alpha adds a container and bumps its own; beta's container stays.
    let third = apply_ok(
        Some(&second),
        &with_containers(json!([{"name": "app", "image": "app:2"}, {"name": "init", "image": "busybox"}])),
        "alpha",
    );
    assert_eq!(
        third["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:2"}, {"name": "sidecar", "image": "proxy:1"}, {"name": "init", "image": "busybox"}])
    );
    // alpha drops "app": it goes, beta's sidecar stays.
    let fourth = apply_ok(Some(&third), &with_containers(json!([{"name": "init", "image": "busybox"}])), "alpha");
    let names: Vec<&str> = fourth["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["sidecar", "init"]);
    // beta changing alpha's image conflicts on that field only.
    let message = conflict_message(apply_at(
        Some(&fourth),
        &with_containers(json!([{"name": "sidecar", "image": "proxy:1"}, {"name": "init", "image": "alpine"}])),
        "beta",
        false,
        T2,
    ));
    assert_eq!(
        message,
        "Apply failed with 1 conflict: conflict with \"alpha\": .spec.template.spec.containers[name=\"init\"].image"
    );
}

#[test]
fn labels_merge_as_a_map() {
    let mut alpha_config = bare_deployment();
    alpha_config["metadata"]["labels"] = json!({"app": "web", "tier": "frontend"});
    let first = apply_ok(None, &alpha_config, "alpha");
    let mut beta_config = bare_deployment();
    beta_config["metadata"]["labels"] = json!({"team": "payments"});
    let second = apply_ok(Some(&first), &beta_config, "beta");
    assert_eq!(second["metadata"]["labels"], json!({"app": "web", "tier": "frontend", "team": "payments"}));
    // alpha drops "tier": only that label goes.
    alpha_config["metadata"]["labels"] = json!({"app": "web"});
    let third = apply_ok(Some(&second), &alpha_config, "alpha");
    assert_eq!(third["metadata"]["labels"], json!({"app": "web", "team": "payments"}));
    assert_eq!(fields_of(&third, "alpha", "Apply"), json!({"f:metadata": {"f:labels": {"f:app": {}}}}));
}

#[test]
fn unchanged_reapply_keeps_the_entry_time() {
    let config = deployment(json!({"replicas": 2}));
    let first = apply_at(None, &config, "helm", false, T1).expect("applies");
    let again = apply_at(Some(&first), &config, "helm", false, T2).expect("applies");
    assert_eq!(again, first);
    let changed = apply_at(Some(&first), &deployment(json!({"replicas": 4})), "helm", false, T2).expect("applies");
    assert_eq!(entry(&changed, "helm", "Apply").expect("entry")["time"], T2);
}

#[test]
fn objects_without_ownership_are_owned_before_first_apply() {
    let legacy = deployment(json!({"replicas": 1, "paused": false}));
    let message = conflict_message(apply_at(Some(&legacy), &deployment(json!({"replicas": 2})), "helm", false, T2));
    assert_eq!(
        message,
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
    let forced = apply_at(Some(&legacy), &deployment(json!({"replicas": 2})), "helm", true, T2).expect("forced");
    assert_eq!(fields_of(&forced, "before-first-apply", "Update"), json!({"f:spec": {"f:paused": {}}}));
}

#[test]
fn invalid_apply_configurations() {
    let mut with_managed_fields = bare_deployment();
    with_managed_fields["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    let cases: Vec<(Value, &str, u16)> = vec![
        (json!([1]), "invalid apply configuration: expected an object", 400),
        (json!({"kind": "Deployment", "metadata": {"name": "web"}}), "apiVersion must be set", 400),
        (json!({"apiVersion": "apps/v1", "metadata": {"name": "web"}}), "kind must be set", 400),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}),
            "does not match the resource kind",
            400,
        ),
        (with_managed_fields, "metadata.managedFields must be nil", 400),
        (with_containers(json!([{"name": "a"}, {"name": "a"}])), "duplicate entries for key [name=\"a\"]", 422),
        (with_containers(json!([{"image": "a"}])), "omits key field \"name\"", 422),
    ];
    for (config, expected, status) in cases {
        let err = apply(None, &config, "helm", false, T1, DEPLOYMENT).expect_err("invalid");
        assert!(err.to_string().contains(expected), "{err} should contain {expected}");
        assert_eq!(err.http_status(), status, "{err}");
    }
    let err = apply(None, &bare_deployment(), "", false, T1, DEPLOYMENT).expect_err("no manager");
    assert_eq!(err, ApplyError::FieldManagerRequired);
}

#[test]
fn status_apply_owns_only_status() {
    let live = apply_ok(None, &deployment(json!({"replicas": 2})), "helm");
    let mut config = deployment(json!({"replicas": 9}));
    config["status"] = json!({"readyReplicas": 2});
    let updated =
        apply_in_scope(Scope::Status, Some(&live), &config, "controller", false, T2, DEPLOYMENT).expect("applies");
    assert_eq!(updated["spec"]["replicas"], 2, "a status write changes nothing else");
    assert_eq!(updated["status"]["readyReplicas"], 2);
    let status_entry = entry(&updated, "controller", "Apply").expect("entry");
    assert_eq!(status_entry["subresource"], "status");
    assert_eq!(status_entry["fieldsV1"], json!({"f:status": {"f:readyReplicas": {}}}));
}

#[test]
fn main_resource_apply_does_not_own_status_or_server_metadata() {
    let mut config = deployment(json!({"replicas": 1}));
    config["status"] = json!({"replicas": 1});
    config["metadata"]["resourceVersion"] = json!("5");
    config["metadata"]["uid"] = json!("u-1");
    let created = apply_ok(None, &config, "helm");
    assert_eq!(fields_of(&created, "helm", "Apply"), json!({"f:spec": {"f:replicas": {}}}));
}

#[test]
fn create_tracks_every_field_set() {
    let mut created =
        deployment(json!({"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}));
    created["metadata"]["labels"] = json!({"app": "web"});
    created["status"] = json!({"replicas": 0});
    track_update(None, &mut created, "kubectl-create", "Update", "apps/v1", T1);
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
                "fieldsType": "FieldsV1", "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}])
    );
}

#[test]
fn updates_move_changed_fields_between_managers() {
    let mut v1 = deployment(json!({"replicas": 1, "paused": false}));
    v1["metadata"]["labels"] = json!({"a": "1"});
    track_update(None, &mut v1, "creator", "Update", "apps/v1", T1);

    // No change: nothing moves, no entry for the second writer, times untouched.
    let mut same = v1.clone();
    track_update(Some(&v1), &mut same, "editor", "Update", "apps/v1", T2);
    assert_eq!(same, v1);

    // A changed field moves; a new label joins the editor; a removed label leaves everyone.
    let mut v2 = v1.clone();
    v2["spec"]["replicas"] = json!(4);
    v2["metadata"]["labels"] = json!({"b": "2"});
    track_update(Some(&v1), &mut v2, "editor", "Update", "apps/v1", T2);
    assert_eq!(fields_of(&v2, "creator", "Update"), json!({"f:spec": {"f:paused": {}}}));
    assert_eq!(
        fields_of(&v2, "editor", "Update"),
        json!({"f:metadata": {"f:labels": {"f:b": {}}}, "f:spec": {"f:replicas": {}}})
    );
    assert_eq!(entry(&v2, "editor", "Update").expect("entry")["time"], T2);
    assert_eq!(entry(&v2, "creator", "Update").expect("entry")["time"], T1);

    // The creator's last field taken: its entry goes; the editor's entry merges the new change.
    let mut v3 = v2.clone();
    v3["spec"]["paused"] = json!(true);
    track_update(Some(&v2), &mut v3, "editor", "Update", "apps/v1", T2);
    assert_eq!(managers_of(&v3), ["editor/Update"]);
    assert_eq!(
        fields_of(&v3, "editor", "Update"),
        json!({"f:metadata": {"f:labels": {"f:b": {}}}, "f:spec": {"f:paused": {}, "f:replicas": {}}})
    );
}

#[test]
fn update_entries_are_per_api_version() {
    let mut v1 = deployment(json!({"replicas": 1}));
    track_update(None, &mut v1, "m", "Update", "apps/v1", T1);
    let mut v2 = v1.clone();
    v2["spec"]["paused"] = json!(true);
    track_update(Some(&v1), &mut v2, "m", "Update", "apps/v1beta2", T2);
    let versions: Vec<&str> = v2["metadata"]["managedFields"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["apiVersion"].as_str().expect("apiVersion"))
        .collect();
    assert_eq!(versions, ["apps/v1", "apps/v1beta2"]);
}

#[test]
fn empty_managed_fields_in_a_write_reset_ownership() {
    let live = apply_ok(None, &deployment(json!({"replicas": 2})), "helm");
    for reset in [json!([]), json!([{}])] {
        let mut new = live.clone();
        new["metadata"]["managedFields"] = reset.clone();
        track_update(Some(&live), &mut new, "kubectl-patch", "Update", "apps/v1", T2);
        assert_eq!(new["metadata"].get("managedFields"), None, "reset with {reset}");
        // Reset together with a change: only the change is owned.
        let mut changed = live.clone();
        changed["metadata"]["managedFields"] = reset;
        changed["spec"]["paused"] = json!(true);
        track_update(Some(&live), &mut changed, "kubectl-patch", "Update", "apps/v1", T2);
        assert_eq!(managers_of(&changed), ["kubectl-patch/Update"]);
        assert_eq!(fields_of(&changed, "kubectl-patch", "Update"), json!({"f:spec": {"f:paused": {}}}));
    }
}

#[test]
fn a_write_without_managed_fields_keeps_the_stored_ones() {
    let live = apply_ok(None, &deployment(json!({"replicas": 2})), "helm");
    let mut put_body = deployment(json!({"replicas": 2, "paused": true}));
    track_update(Some(&live), &mut put_body, "kubectl-replace", "Update", "apps/v1", T2);
    assert_eq!(managers_of(&put_body), ["helm/Apply", "kubectl-replace/Update"]);
    assert_eq!(fields_of(&put_body, "helm", "Apply"), json!({"f:spec": {"f:replicas": {}}}));
}

#[test]
fn status_updates_track_status_only() {
    let live = apply_ok(None, &deployment(json!({"replicas": 2})), "helm");
    let mut new = live.clone();
    new["status"] = json!({"replicas": 2});
    track_update_in_scope(Scope::Status, Some(&live), &mut new, "deployment-controller", "Update", "apps/v1", T2);
    let status_entry = entry(&new, "deployment-controller", "Update").expect("entry");
    assert_eq!(status_entry["subresource"], "status");
    assert_eq!(status_entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    // A main-resource apply never conflicts with status owners.
    let reapplied = apply_at(Some(&new), &deployment(json!({"replicas": 3})), "helm", false, T2).expect("no conflict");
    assert_eq!(reapplied["status"]["replicas"], 2);
}

#[test]
fn apply_and_update_work_on_custom_resources() {
    let config = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "finalizers": ["a"]},
                        "spec": {"size": 1, "items": [1, 2]}});
    let created = apply(None, &config, "helm", false, T1, ("example.com", "Widget")).expect("applies");
    assert_eq!(
        fields_of(&created, "helm", "Apply"),
        json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}}, "f:spec": {"f:items": {}, "f:size": {}}})
    );
    let mut edited = created.clone();
    edited["spec"]["items"] = json!([3]);
    track_update(Some(&created), &mut edited, "kubectl-edit", "Update", "example.com/v1", T2);
    let err = apply(Some(&edited), &config, "helm", false, T2, ("example.com", "Widget")).expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using example.com/v1: .spec.items"
    );
}

#[test]
fn finalizers_merge_as_a_set() {
    let mut alpha = bare_deployment();
    alpha["metadata"]["finalizers"] = json!(["a/one"]);
    let first = apply_ok(None, &alpha, "alpha");
    let mut beta = bare_deployment();
    beta["metadata"]["finalizers"] = json!(["b/two"]);
    let second = apply_ok(Some(&first), &beta, "beta");
    assert_eq!(second["metadata"]["finalizers"], json!(["a/one", "b/two"]));
    alpha["metadata"]["finalizers"] = json!([]);
    let third = apply_ok(Some(&second), &alpha, "alpha");
    assert_eq!(third["metadata"]["finalizers"], json!(["b/two"]));
}
