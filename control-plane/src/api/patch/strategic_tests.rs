//! Scenario tests of strategic merge patch through [`apply_patch`], on built-in kinds: the patches
//! kubectl sends (client-side apply, cordon, label, scale) and the directive cases of upstream's
//! strategicpatch tests, re-expressed on real Kubernetes fields.

use serde_json::{json, Value};

use super::{apply_patch, PatchError, PatchKind};

fn try_smp(group: &str, kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let body = serde_json::to_vec(patch).expect("serializes");
    apply_patch(PatchKind::StrategicMerge, original, &body, group, kind)
}

fn smp(group: &str, kind: &str, original: &Value, patch: &Value) -> Value {
    let patched = try_smp(group, kind, original, patch).expect("strategic merge patch applies");
    assert_no_directives(&patched);
    patched
}

fn assert_no_directives(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, nested) in map {
                assert!(!key.starts_with('$'), "directive {key} left in the result");
                assert_no_directives(nested);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_directives),
        _ => {}
    }
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().expect("a list").iter().map(|item| item["name"].as_str().expect("a name")).collect()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.25",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}]
                        },
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        },
        "status": {"conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True"}
        ]}
    })
}

#[test]
fn kubectl_client_side_apply_patch() {
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"$patch": "delete", "name": "B"}],
                    "image": "nginx:1.27",
                    "name": "nginx"
                }]
            }}
        }
    });
    let original = deployment();
    let patched = smp("apps", "Deployment", &original, &patch);

    assert_eq!(patched["spec"]["replicas"], 3);
    assert_eq!(patched["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"], "{}");
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web"}));
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["nginx", "sidecar"]);
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(containers[0]["ports"], original["spec"]["template"]["spec"]["containers"][0]["ports"]);
    assert_eq!(containers[1], original["spec"]["template"]["spec"]["containers"][1]);
    assert_eq!(patched["spec"]["strategy"], original["spec"]["strategy"]);
    assert_eq!(patched["status"], original["status"]);
}

#[test]
fn node_cordon_and_label_merge() {
    let node = json!({
        "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"podCIDR": "10.0.0.0/24"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    });
    let cordoned = smp("", "Node", &node, &json!({"spec": {"unschedulable": true}}));
    assert_eq!(cordoned["spec"], json!({"podCIDR": "10.0.0.0/24", "unschedulable": true}));
    assert_eq!(cordoned["status"], node["status"]);

    let labelled = smp("", "Node", &node, &json!({"metadata": {"labels": {"tier": "web"}}}));
    assert_eq!(labelled["metadata"]["labels"], json!({"kubernetes.io/hostname": "n1", "tier": "web"}));
}

#[test]
fn null_deletes_keys() {
    let patched = smp(
        "apps",
        "Deployment",
        &deployment(),
        &json!({"metadata": {"labels": {"app": null, "absent": null}}, "spec": {"strategy": null}}),
    );
    assert_eq!(patched["metadata"]["labels"], json!({}));
    assert!(patched["spec"].get("strategy").is_none());
    assert_eq!(patched["spec"]["replicas"], 1);
}

#[test]
fn patch_replace_on_a_list() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"},
        {"name": "only", "image": "alpine"}
    ]}}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert_eq!(patched["spec"]["template"]["spec"]["containers"], json!([{"name": "only", "image": "alpine"}]));

    // A replace item alone empties the list (upstream "delete all items from merging list").
    let patch = json!({"spec": {"template": {"spec": {"volumes": [{"$patch": "replace"}]}}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert_eq!(patched["spec"]["template"]["spec"]["volumes"], json!([]));
}

#[test]
fn patch_replace_and_delete_on_a_map() {
    let patch = json!({"metadata": {"labels": {"$patch": "replace", "new": "x"}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert_eq!(patched["metadata"]["labels"], json!({"new": "x"}));

    // Upstream leaves an emptied map ("delete map from nested map" → `{}`).
    let patch = json!({"spec": {"selector": {"$patch": "delete"}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert_eq!(patched["spec"]["selector"], json!({}));

    // A map the original lacks is not created by a delete.
    let patch = json!({"metadata": {"annotations": {"$patch": "delete"}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert!(patched["metadata"].get("annotations").is_none());

    // At the root, replace keeps only the patch.
    let patched = smp("", "ConfigMap", &json!({"data": {"a": "1"}}), &json!({"$patch": "replace", "data": {"b": "2"}}));
    assert_eq!(patched, json!({"data": {"b": "2"}}));
}

#[test]
fn retain_keys_switches_deployment_strategy() {
    // What kubectl apply sends when the strategy changes from RollingUpdate to Recreate.
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));

    // Without the directive the stale rollingUpdate would survive.
    let patched = smp("apps", "Deployment", &deployment(), &json!({"spec": {"strategy": {"type": "Recreate"}}}));
    assert!(patched["spec"]["strategy"].get("rollingUpdate").is_some());

    // A patched field outside $retainKeys is refused.
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "RollingUpdate", "rollingUpdate": {}}}});
    let err = try_smp("apps", "Deployment", &deployment(), &patch).expect_err("invalid");
    assert!(matches!(err, PatchError::InvalidStrategicPatch { ref path, .. } if path == "spec.strategy"), "{err}");
}

#[test]
fn retain_keys_on_a_volume_switches_its_source() {
    let patch = json!({"spec": {"template": {"spec": {"volumes": [
        {"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}
    ]}}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert_eq!(patched["spec"]["template"]["spec"]["volumes"], json!([{"name": "data", "configMap": {"name": "cfg"}}]));
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let pod = json!({"metadata": {"name": "p", "finalizers": ["a.example.com/x", "b.example.com/y"]}});
    // Upstream order: the patch's items in patch order, a server-only item placed before the first
    // patch item that follows it on the server; an item new to the server never does, so it leads.
    let patched = smp("", "Pod", &pod, &json!({"metadata": {"finalizers": ["c.example.com/z", "a.example.com/x"]}}));
    assert_eq!(patched["metadata"]["finalizers"], json!(["c.example.com/z", "a.example.com/x", "b.example.com/y"]));
    let patched = smp("", "Pod", &pod, &json!({"metadata": {"finalizers": ["b.example.com/y"]}}));
    assert_eq!(patched["metadata"]["finalizers"], pod["metadata"]["finalizers"]);
    let ints = json!({"spec": {"podCIDRs": ["1", "2", "3"]}});
    let patched = smp("", "Node", &ints, &json!({"spec": {"podCIDRs": ["3", "1"]}}));
    assert_eq!(patched["spec"]["podCIDRs"], json!(["2", "3", "1"]));

    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x", "absent"]}});
    let patched = smp("", "Pod", &pod, &patch);
    assert_eq!(patched["metadata"]["finalizers"], json!(["b.example.com/y"]));

    // Deleting from a list the object lacks adds nothing.
    let patched = smp("", "Pod", &json!({"metadata": {"name": "p"}}), &patch);
    assert!(patched["metadata"].get("finalizers").is_none());

    // kubectl's form: order list, deletions and additions together.
    let patch = json!({"metadata": {
        "$setElementOrder/finalizers": ["b.example.com/y", "d"],
        "$deleteFromPrimitiveList/finalizers": ["a.example.com/x"],
        "finalizers": ["d"]
    }});
    let patched = smp("", "Pod", &pod, &patch);
    assert_eq!(patched["metadata"]["finalizers"], json!(["b.example.com/y", "d"]));
}

#[test]
fn container_ports_merge_by_container_port() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "nginx",
        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443, "protocol": "TCP"}]
    }]}}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443, "protocol": "TCP"}])
    );
    // The merge key matches numerically, as Go's float64 does.
    let patch = json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80.0, "name": "web"}]}]}});
    let pod = json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}});
    let patched = smp("", "Pod", &pod, &patch);
    assert_eq!(patched["spec"]["containers"][0]["ports"].as_array().map(Vec::len), Some(1));
}

#[test]
fn service_ports_merge_by_port() {
    let service = json!({
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "https", "port": 443, "targetPort": 8443}
        ]}
    });
    let patch = json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"port": 9090, "name": "metrics"}]}});
    let patched = smp("", "Service", &service, &patch);
    assert_eq!(
        patched["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "https", "port": 443, "targetPort": 9443},
            {"port": 9090, "name": "metrics"}
        ])
    );
    let patched = smp("", "Service", &service, &json!({"spec": {"ports": [{"$patch": "delete", "port": 80}]}}));
    assert_eq!(names(&patched["spec"]["ports"]), ["https"]);
}

#[test]
fn lists_without_merge_strategy_are_replaced() {
    let pod = json!({"spec": {
        "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
        "containers": [{"name": "c", "args": ["x", "y"], "envFrom": [{"configMapRef": {"name": "one"}}]}]
    }});
    let patch = json!({"spec": {
        "tolerations": [{"key": "c", "operator": "Exists"}],
        "containers": [{"name": "c", "args": ["z"], "envFrom": [{"secretRef": {"name": "two"}}]}]
    }});
    let patched = smp("", "Pod", &pod, &patch);
    assert_eq!(patched["spec"]["tolerations"], json!([{"key": "c", "operator": "Exists"}]));
    assert_eq!(patched["spec"]["containers"][0]["args"], json!(["z"]));
    assert_eq!(patched["spec"]["containers"][0]["envFrom"], json!([{"secretRef": {"name": "two"}}]));

    let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
    let patched = smp("", "Node", &node, &json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}));
    assert_eq!(patched["spec"]["taints"], json!([{"key": "b", "effect": "NoExecute"}]));

    let role = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
    let rules = json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]);
    let patched = smp("rbac.authorization.k8s.io", "Role", &role, &json!({"rules": rules}));
    assert_eq!(patched["rules"], rules);
}

#[test]
fn status_conditions_merge_by_type() {
    let patch = json!({"status": {"conditions": [
        {"type": "Progressing", "status": "False", "reason": "Stuck"},
        {"type": "ReplicaFailure", "status": "True"}
    ]}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    assert_eq!(
        patched["status"]["conditions"],
        json!([
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "False", "reason": "Stuck"},
            {"type": "ReplicaFailure", "status": "True"}
        ])
    );
    let node = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
    let patch = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
    let patched = smp("", "Node", &node, &patch);
    assert_eq!(patched["status"]["addresses"].as_array().map(Vec::len), Some(2));
}

#[test]
fn owner_references_merge_by_uid_and_env_by_name_in_a_cronjob() {
    let cronjob = json!({
        "metadata": {"ownerReferences": [{"uid": "u1", "kind": "A", "name": "a"}]},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
            {"name": "job", "env": [{"name": "X", "value": "1"}]}
        ]}}}}}
    });
    let patch = json!({
        "metadata": {"ownerReferences": [{"uid": "u2", "kind": "B", "name": "b"}]},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
            {"name": "job", "env": [{"name": "Y", "value": "2"}]}
        ]}}}}}
    });
    let patched = smp("batch", "CronJob", &cronjob, &patch);
    assert_eq!(patched["metadata"]["ownerReferences"].as_array().map(Vec::len), Some(2));
    // Without $setElementOrder upstream puts items new to the server first.
    let env = &patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env, &json!([{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]));
}

/// Upstream's ordering cases ("preserve the order from the patch", "merge lists of maps",
/// "$setElementOrder contains item that is not present") on `spec.containers`.
#[test]
fn element_order() {
    let c = |name: &str| json!({"name": name});
    let cv = |name: &str, image: &str| json!({"name": name, "image": image});
    let cases = [
        // The patch order wins over the server order for the items it names.
        (vec![c("1"), cv("2", "b"), c("3")], json!([cv("3", "c"), cv("1", "a"), cv("2", "x")]), vec!["3", "1", "2"]),
        // Server-only items stay before the patch items that follow them on the server.
        (vec![c("1"), cv("2", "b"), c("3")], json!([cv("3", "c"), cv("1", "a")]), vec!["2", "3", "1"]),
        // Items new to the server come first, as in upstream (kubectl docs: `kubectl patch` adding a
        // container lists it first); kubectl apply sends $setElementOrder to place them.
        (vec![c("1"), c("2")], json!([c("4"), c("3")]), vec!["4", "3", "1", "2"]),
        (vec![c("1"), c("2")], json!([c("2"), c("5")]), vec!["1", "2", "5"]),
    ];
    for (original, containers, expected) in cases {
        let pod = json!({"spec": {"containers": original}});
        let patched = smp("", "Pod", &pod, &json!({"spec": {"containers": containers}}));
        assert_eq!(names(&patched["spec"]["containers"]), expected, "{containers}");
    }

    // $setElementOrder places new items where it says.
    let pod = json!({"spec": {"containers": [c("1"), cv("2", "b")]}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [c("4"), c("1"), c("2"), c("3")],
        "containers": [cv("4", "d"), cv("3", "c")]
    }});
    let patched = smp("", "Pod", &pod, &patch);
    assert_eq!(names(&patched["spec"]["containers"]), ["4", "1", "2", "3"]);
    assert_eq!(patched["spec"]["containers"][1], c("1"));

    // $setElementOrder may name items absent from the result.
    let pod = json!({"spec": {"containers": [c("1"), c("3")]}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [c("3"), c("2"), c("1")],
        "containers": [cv("3", "x"), cv("1", "y")]
    }});
    let patched = smp("", "Pod", &pod, &patch);
    assert_eq!(patched["spec"]["containers"], json!([cv("3", "x"), cv("1", "y")]));

    // Only an order: the list is reordered, contents untouched.
    let pod = json!({"spec": {"containers": [cv("a", "1"), cv("b", "2")]}});
    let patched = smp("", "Pod", &pod, &json!({"spec": {"$setElementOrder/containers": [c("b"), c("a")]}}));
    assert_eq!(patched["spec"]["containers"], json!([cv("b", "2"), cv("a", "1")]));

    // Primitive lists: order without patch items.
    let pod = json!({"metadata": {"finalizers": ["1", "3"]}});
    let patched = smp("", "Pod", &pod, &json!({"metadata": {"$setElementOrder/finalizers": ["3", "2", "1"]}}));
    assert_eq!(patched["metadata"]["finalizers"], json!(["3", "1"]));
}

#[test]
fn new_fields_are_added_without_directives() {
    let patch = json!({"spec": {"template": {"spec": {
        "initContainers": [
            {"name": "init", "image": "busybox", "env": [{"name": "A", "value": "1"}, {"$patch": "delete", "name": "B"}]}
        ],
        "$setElementOrder/initContainers": [{"name": "init"}],
        "affinity": {"nodeAffinity": {"$patch": "replace", "requiredDuringSchedulingIgnoredDuringExecution": {}}},
        "securityContext": {"$patch": "delete"}
    }}}});
    let patched = smp("apps", "Deployment", &deployment(), &patch);
    let spec = &patched["spec"]["template"]["spec"];
    assert_eq!(
        spec["initContainers"],
        json!([{"name": "init", "image": "busybox", "env": [{"name": "A", "value": "1"}]}])
    );
    assert_eq!(spec["affinity"], json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}));
    assert!(spec.get("securityContext").is_none());
}

#[test]
fn other_kinds_merge_maps() {
    let secret = json!({"kind": "Secret", "data": {"a": "YQ=="}, "type": "Opaque"});
    let patched = smp("", "Secret", &secret, &json!({"data": {"b": "Yg==", "a": null}}));
    assert_eq!(patched["data"], json!({"b": "Yg=="}));

    let scale = json!({"kind": "Scale", "spec": {"replicas": 1}, "status": {"replicas": 1}});
    let patched = smp("autoscaling", "Scale", &scale, &json!({"spec": {"replicas": 5}}));
    assert_eq!(patched["spec"]["replicas"], 5);

    let lease = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    let patched = smp("coordination.k8s.io", "Lease", &lease, &json!({"spec": {"holderIdentity": "b"}}));
    assert_eq!(patched["spec"], json!({"holderIdentity": "b", "leaseDurationSeconds": 15}));
}

#[test]
fn invalid_strategic_patches() {
    let original = deployment();
    let containers = |list: Value| json!({"spec": {"template": {"spec": {"containers": list}}}});
    let cases = [
        // List item without its merge key (upstream "does not contain declared merge key").
        (containers(json!([{"image": "x"}])), "spec.template.spec.containers", "merge key"),
        // Delete directive without merge key.
        (containers(json!([{"$patch": "delete"}])), "spec.template.spec.containers", "merge key"),
        // Unknown directive values.
        (containers(json!([{"$patch": "merge", "name": "nginx"}])), "spec.template.spec.containers", "cannot yet"),
        (
            containers(json!([{"$patch": "frob", "name": "nginx"}])),
            "spec.template.spec.containers",
            "unknown patch type",
        ),
        (json!({"spec": {"selector": {"$patch": "frob"}}}), "spec.selector", "unknown patch type"),
        // Mixed element types and lists of lists.
        (containers(json!(["nginx"])), "spec.template.spec.containers", "not identical"),
        (containers(json!([["x"]])), "spec.template.spec.containers", "lists of lists"),
        // $setElementOrder contradicting the patch list order.
        (
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
                "containers": [{"name": "sidecar", "image": "a"}, {"name": "nginx", "image": "b"}]
            }}}}),
            "spec.template.spec.containers",
            "doesn't match",
        ),
        // Malformed directive keys and values.
        (json!({"metadata": {"$setElementOrderfinalizers": []}}), "metadata", "$setElementOrder"),
        (json!({"metadata": {"$setElementOrder/finalizers": "x"}}), "metadata.finalizers", "must be a list"),
        (json!({"spec": {"strategy": {"$retainKeys": "type"}}}), "spec.strategy", "retainKeys"),
        (json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}), "metadata", "$deleteFromPrimitiveList"),
    ];
    for (patch, path, reason) in cases {
        let err = try_smp("apps", "Deployment", &original, &patch).expect_err("invalid patch");
        let PatchError::InvalidStrategicPatch { path: got_path, reason: got_reason } = &err else {
            panic!("unexpected error {err} for {patch}");
        };
        assert_eq!(got_path, path, "{patch}");
        assert!(got_reason.contains(reason), "{got_reason:?} lacks {reason:?} for {patch}");
        assert_eq!(err.http_status(), 400);
    }
}

#[test]
fn original_is_not_modified() {
    let original = deployment();
    let snapshot = original.clone();
    let _ = smp("apps", "Deployment", &original, &json!({"spec": {"replicas": 7, "strategy": null}}));
    assert_eq!(original, snapshot);
}
