//! Table-driven tests of defaulting and validation over realistic manifests.

use serde_json::{json, Value};

use super::{default_object, generate_job_selector, validate_object};

/// `(field, reason)` of every cause.
pub(super) fn causes(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<(String, &'static str)> {
    validate_object(group, kind, obj, old).into_iter().map(|c| (c.field, c.reason)).collect()
}

pub(super) fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
    default_object(group, kind, &mut obj);
    obj
}

/// A Deployment as `kubectl create deployment web --image=nginx:1.27 --port=80 -o json --dry-run=client` prints it.
fn kubectl_deployment() -> Value {
    json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": { "name": "web", "creationTimestamp": null, "labels": { "app": "web" } },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "creationTimestamp": null, "labels": { "app": "web" } },
                "spec": {
                    "containers": [{ "name": "nginx", "image": "nginx:1.27", "ports": [{ "containerPort": 80 }], "resources": {} }]
                }
            },
            "strategy": {}
        },
        "status": {}
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "p", "namespace": "default" },
        "spec": {
            "initContainers": [{ "name": "init", "image": "busybox", "command": ["true"] }],
            "containers": [{
                "name": "app", "image": "registry.local:5000/app",
                "ports": [{ "name": "http", "containerPort": 8080 }],
                "env": [{ "name": "MY.ENV-name", "value": "1" }, { "name": "POD", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }],
                "resources": { "requests": { "cpu": "100m", "memory": "64Mi" }, "limits": { "cpu": 1, "memory": "128Mi" } },
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }, { "name": "cfg", "mountPath": "/etc/cfg" }],
                "readinessProbe": { "httpGet": { "port": 8080 } }
            }],
            "volumes": [{ "name": "data", "emptyDir": {} }, { "name": "cfg", "configMap": { "name": "c" } }]
        }
    })
}

#[test]
fn deployment_defaults_match_upstream() {
    let d = defaulted("apps", "Deployment", kubectl_deployment());
    assert_eq!(
        d["spec"]["strategy"],
        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } })
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    let pod_spec = &d["spec"]["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Always");
    assert_eq!(pod_spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod_spec["schedulerName"], "default-scheduler");
    assert_eq!(pod_spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod_spec["securityContext"], json!({}));
    assert!(pod_spec.get("enableServiceLinks").is_none(), "only Pods get enableServiceLinks");
    let c = &pod_spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(causes("apps", "Deployment", &d, None), vec![]);
    // Defaulting is idempotent and never overrides what the user set.
    assert_eq!(defaulted("apps", "Deployment", d.clone()), d);
    let mut recreate = kubectl_deployment();
    recreate["spec"]["strategy"] = json!({ "type": "Recreate" });
    recreate["spec"]["replicas"] = json!(0);
    let recreate = defaulted("apps", "Deployment", recreate);
    assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());
    assert_eq!(recreate["spec"]["replicas"], 0);
}

#[test]
fn pod_defaults_match_upstream() {
    let p = defaulted("", "Pod", pod());
    assert_eq!(p["spec"]["enableServiceLinks"], true);
    let app = &p["spec"]["containers"][0];
    assert_eq!(app["imagePullPolicy"], "Always", "untagged image on a registry with a port");
    assert_eq!(p["spec"]["initContainers"][0]["imagePullPolicy"], "Always");
    assert_eq!(app["env"][1]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(
        app["readinessProbe"],
        json!({ "httpGet": { "port": 8080, "path": "/", "scheme": "HTTP" },
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3 })
    );
    assert_eq!(p["spec"]["volumes"][1]["configMap"]["defaultMode"], 420);
    assert_eq!(causes("", "Pod", &p, None), vec![]);

    let mut limits_only = pod();
    limits_only["spec"]["containers"][0]["resources"] = json!({ "limits": { "cpu": "2", "memory": "1Gi" } });
    limits_only["spec"]["volumes"][0] = json!({ "name": "data" });
    let p = defaulted("", "Pod", limits_only);
    assert_eq!(p["spec"]["containers"][0]["resources"]["requests"], json!({ "cpu": "2", "memory": "1Gi" }));
    assert_eq!(p["spec"]["volumes"][0]["emptyDir"], json!({}));
    for (image, policy) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.2", "IfNotPresent"),
        ("a/b@sha256:ab", "IfNotPresent"),
    ] {
        let p = defaulted("", "Pod", json!({ "spec": { "containers": [{ "name": "c", "image": image }] } }));
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], policy, "{image}");
    }
}

#[test]
fn other_kinds_get_upstream_defaults() {
    let cases: Vec<(&str, &str, Value, &str, Value)> = vec![
        ("apps", "ReplicaSet", json!({ "spec": {} }), "/spec/replicas", json!(1)),
        ("apps", "StatefulSet", json!({ "spec": {} }), "/spec/podManagementPolicy", json!("OrderedReady")),
        (
            "apps",
            "StatefulSet",
            json!({ "spec": {} }),
            "/spec/updateStrategy",
            json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } }),
        ),
        (
            "apps",
            "StatefulSet",
            json!({ "spec": { "updateStrategy": { "type": "OnDelete" } } }),
            "/spec/updateStrategy",
            json!({ "type": "OnDelete" }),
        ),
        (
            "apps",
            "StatefulSet",
            json!({ "spec": { "volumeClaimTemplates": [{ "metadata": { "name": "d" }, "spec": {} }] } }),
            "/spec/volumeClaimTemplates/0/spec/volumeMode",
            json!("Filesystem"),
        ),
        (
            "apps",
            "DaemonSet",
            json!({ "spec": {} }),
            "/spec/updateStrategy",
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } }),
        ),
        ("batch", "Job", json!({ "spec": {} }), "/spec/completions", json!(1)),
        ("batch", "Job", json!({ "spec": { "parallelism": 3 } }), "/spec/completions", Value::Null),
        ("batch", "Job", json!({ "spec": {} }), "/spec/backoffLimit", json!(6)),
        ("batch", "Job", json!({ "spec": {} }), "/spec/completionMode", json!("NonIndexed")),
        ("batch", "Job", json!({ "spec": {} }), "/spec/suspend", json!(false)),
        (
            "batch",
            "Job",
            json!({ "spec": { "template": { "metadata": { "labels": { "a": "b" } } } } }),
            "/metadata/labels",
            json!({ "a": "b" }),
        ),
        ("batch", "CronJob", json!({ "spec": {} }), "/spec/concurrencyPolicy", json!("Allow")),
        ("batch", "CronJob", json!({ "spec": {} }), "/spec/successfulJobsHistoryLimit", json!(3)),
        ("batch", "CronJob", json!({ "spec": {} }), "/spec/failedJobsHistoryLimit", json!(1)),
        (
            "batch",
            "CronJob",
            json!({ "spec": { "jobTemplate": { "spec": { "template": { "spec": { "containers": [] } } } } } }),
            "/spec/jobTemplate/spec/template/spec/dnsPolicy",
            json!("ClusterFirst"),
        ),
        (
            "",
            "Service",
            json!({ "spec": { "ports": [{ "port": 80 }] } }),
            "/spec/ports/0",
            json!({ "port": 80, "targetPort": 80, "protocol": "TCP" }),
        ),
        ("", "Service", json!({ "spec": {} }), "/spec/type", json!("ClusterIP")),
        ("", "Service", json!({ "spec": {} }), "/spec/sessionAffinity", json!("None")),
        ("", "Service", json!({ "spec": {} }), "/spec/ipFamilyPolicy", json!("SingleStack")),
        ("", "Service", json!({ "spec": {} }), "/spec/internalTrafficPolicy", json!("Cluster")),
        ("", "Service", json!({ "spec": { "type": "NodePort" } }), "/spec/externalTrafficPolicy", json!("Cluster")),
        ("", "Service", json!({ "spec": { "type": "ExternalName" } }), "/spec/ipFamilyPolicy", Value::Null),
        ("", "Secret", json!({}), "/type", json!("Opaque")),
        (
            "",
            "Secret",
            json!({ "stringData": { "k": "hi" }, "data": { "j": "AA==" } }),
            "/data",
            json!({ "j": "AA==", "k": "aGk=" }),
        ),
        ("", "Namespace", json!({}), "/spec/finalizers", json!(["kubernetes"])),
        ("", "Namespace", json!({}), "/status/phase", json!("Active")),
        ("", "PersistentVolumeClaim", json!({ "spec": {} }), "/spec/volumeMode", json!("Filesystem")),
        (
            "",
            "Endpoints",
            json!({ "subsets": [{ "ports": [{ "port": 80 }] }] }),
            "/subsets/0/ports/0/protocol",
            json!("TCP"),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({ "subjects": [{ "kind": "User", "name": "u" }] }),
            "/subjects/0/apiGroup",
            json!("rbac.authorization.k8s.io"),
        ),
    ];
    for (group, kind, obj, pointer, want) in cases {
        let got = defaulted(group, kind, obj.clone());
        assert_eq!(got.pointer(pointer).cloned().unwrap_or(Value::Null), want, "{kind} {obj} at {pointer}");
    }
    let s = defaulted("", "Secret", json!({ "stringData": { "k": "v" } }));
    assert!(s.get("stringData").is_none());
}

#[test]
fn job_selector_is_generated_from_the_uid() {
    let mut job = defaulted(
        "batch",
        "Job",
        json!({
            "metadata": { "name": "pi", "uid": "u-1" },
            "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "pi", "image": "perl" }] } } }
        }),
    );
    assert_eq!(causes("batch", "Job", &job, None), vec![], "a missing selector is generated later");
    generate_job_selector(&mut job);
    assert_eq!(job["spec"]["selector"], json!({ "matchLabels": { "batch.kubernetes.io/controller-uid": "u-1" } }));
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(causes("batch", "Job", &job, None), vec![]);
    let mut foreign = job.clone();
    foreign["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] = json!("other");
    assert_eq!(
        causes("batch", "Job", &foreign, None),
        vec![
            ("spec.selector".into(), "FieldValueInvalid"),
            ("spec.template.metadata.labels".into(), "FieldValueInvalid")
        ]
    );
    let mut always = job.clone();
    always["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    assert_eq!(
        causes("batch", "Job", &always, None),
        vec![("spec.template.spec.restartPolicy".into(), "FieldValueNotSupported")]
    );
    let mut manual = job.clone();
    manual["spec"]["manualSelector"] = json!(true);
    manual["spec"].as_object_mut().expect("spec").remove("selector");
    assert_eq!(causes("batch", "Job", &manual, None), vec![("spec.selector".into(), "FieldValueRequired")]);
    // Updates: the template is immutable unless suspended; parallelism may change.
    let mut scaled = job.clone();
    scaled["spec"]["parallelism"] = json!(5);
    assert_eq!(causes("batch", "Job", &scaled, Some(&job)), vec![]);
    let mut retemplated = job.clone();
    retemplated["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
    assert_eq!(causes("batch", "Job", &retemplated, Some(&job)), vec![("spec.template".into(), "FieldValueInvalid")]);
}

type Mutation = fn(&mut Value);

fn check_table(group: &str, kind: &str, base: fn() -> Value, table: &[(Mutation, &[(&str, &str)])]) {
    let valid = defaulted(group, kind, base());
    assert_eq!(causes(group, kind, &valid, None), vec![], "{kind} base is valid");
    for (n, (mutate, want)) in table.iter().enumerate() {
        let mut obj = base();
        mutate(&mut obj);
        let obj = defaulted(group, kind, obj);
        let got = causes(group, kind, &obj, None);
        let want: Vec<(String, &str)> = want.iter().map(|(f, r)| (f.to_string(), *r)).collect();
        assert_eq!(got, want, "{kind} case {n}: {obj}");
    }
}

#[test]
fn pod_spec_violations() {
    let table: &[(Mutation, &[(&str, &str)])] = &[
        (|p| p["spec"]["containers"][0]["name"] = json!("App_1"), &[("spec.containers[0].name", "FieldValueInvalid")]),
        (
            |p| p["spec"]["containers"][0]["name"] = json!("init"),
            &[("spec.initContainers[0].name", "FieldValueDuplicate")],
        ),
        (|p| p["spec"]["containers"][0]["name"] = json!(""), &[("spec.containers[0].name", "FieldValueRequired")]),
        (|p| p["spec"]["containers"][0]["image"] = json!(""), &[("spec.containers[0].image", "FieldValueRequired")]),
        (
            |p| p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(70000),
            &[("spec.containers[0].ports[0].containerPort", "FieldValueInvalid")],
        ),
        (
            |p| p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(0),
            &[("spec.containers[0].ports[0].containerPort", "FieldValueRequired")],
        ),
        (
            |p| p["spec"]["containers"][0]["ports"][0]["name"] = json!("8080"),
            &[("spec.containers[0].ports[0].name", "FieldValueInvalid")],
        ),
        (
            |p| {
                p["spec"]["containers"][0]["ports"] =
                    json!([{ "name": "a", "containerPort": 1 }, { "name": "a", "containerPort": 2 }])
            },
            &[("spec.containers[0].ports[1].name", "FieldValueDuplicate")],
        ),
        (
            |p| p["spec"]["containers"][0]["ports"][0]["protocol"] = json!("HTTP"),
            &[("spec.containers[0].ports[0].protocol", "FieldValueNotSupported")],
        ),
        (|p| p["spec"]["restartPolicy"] = json!("Sometimes"), &[("spec.restartPolicy", "FieldValueNotSupported")]),
        (|p| p["spec"]["dnsPolicy"] = json!("Google"), &[("spec.dnsPolicy", "FieldValueNotSupported")]),
        (|p| p["spec"]["dnsPolicy"] = json!("None"), &[("spec.dnsConfig", "FieldValueRequired")]),
        (
            |p| p["spec"]["containers"][0]["imagePullPolicy"] = json!("Maybe"),
            &[("spec.containers[0].imagePullPolicy", "FieldValueNotSupported")],
        ),
        (
            |p| p["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("2"),
            &[("spec.containers[0].resources.requests[cpu]", "FieldValueInvalid")],
        ),
        (
            |p| p["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("lots"),
            &[("spec.containers[0].resources.limits[memory]", "FieldValueInvalid")],
        ),
        (
            |p| p["spec"]["containers"][0]["resources"]["limits"]["storage"] = json!("1Gi"),
            &[
                ("spec.containers[0].resources.limits[storage]", "FieldValueInvalid"),
                ("spec.containers[0].resources.requests[storage]", "FieldValueInvalid"),
            ],
        ),
        (
            |p| p["spec"]["containers"][0]["resources"]["requests"]["memory"] = json!("-1"),
            &[("spec.containers[0].resources.requests[memory]", "FieldValueInvalid")],
        ),
        (
            |p| p["spec"]["containers"][0]["env"][0]["name"] = json!("A=B"),
            &[("spec.containers[0].env[0].name", "FieldValueInvalid")],
        ),
        (
            |p| p["spec"]["containers"][0]["env"][0]["name"] = json!(""),
            &[("spec.containers[0].env[0].name", "FieldValueRequired")],
        ),
        (
            |p| p["spec"]["containers"][0]["env"][1]["valueFrom"] = json!({}),
            &[("spec.containers[0].env[1].valueFrom", "FieldValueInvalid")],
        ),
        (
            |p| p["spec"]["volumes"][1]["name"] = json!("data"),
            &[
                ("spec.volumes[1].name", "FieldValueDuplicate"),
                ("spec.containers[0].volumeMounts[1].name", "FieldValueNotFound"),
            ],
        ),
        (
            |p| p["spec"]["volumes"][0]["hostPath"] = json!({ "path": "/x" }),
            &[("spec.volumes[0].hostPath", "FieldValueForbidden")],
        ),
        (
            |p| p["spec"]["containers"][0]["volumeMounts"][1]["name"] = json!("nope"),
            &[("spec.containers[0].volumeMounts[1].name", "FieldValueNotFound")],
        ),
        (
            |p| p["spec"]["containers"][0]["volumeMounts"][1]["mountPath"] = json!("/data"),
            &[("spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid")],
        ),
        (
            |p| p["spec"]["containers"][0]["restartPolicy"] = json!("Always"),
            &[("spec.containers[0].restartPolicy", "FieldValueForbidden")],
        ),
        (
            |p| p["spec"]["initContainers"][0]["restartPolicy"] = json!("Never"),
            &[("spec.initContainers[0].restartPolicy", "FieldValueNotSupported")],
        ),
        (|p| p["spec"]["activeDeadlineSeconds"] = json!(0), &[("spec.activeDeadlineSeconds", "FieldValueInvalid")]),
        (
            |p| p["spec"]["tolerations"] = json!([{ "key": "k", "operator": "Exists", "value": "v" }]),
            &[("spec.tolerations[0].operator", "FieldValueInvalid")],
        ),
    ];
    let mut empty = pod();
    empty["spec"]["containers"] = json!([]);
    let got = causes("", "Pod", &defaulted("", "Pod", empty), None);
    assert_eq!(got, vec![("spec.containers".to_string(), "FieldValueRequired")]);
    check_table("", "Pod", pod, table);
}

#[test]
fn messages_read_like_upstream() {
    let mut d = kubectl_deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({ "app": "other" });
    let d = defaulted("apps", "Deployment", d);
    let got = validate_object("apps", "Deployment", &d, None);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].field, "spec.template.metadata.labels");
    assert_eq!(
        got[0].message,
        "Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"
    );
    let mut p = pod();
    p["spec"]["restartPolicy"] = json!("Sometimes");
    let got = validate_object("", "Pod", &defaulted("", "Pod", p), None);
    assert_eq!(
        got[0].message,
        "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
    let mut p = pod();
    p["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("2");
    let got = validate_object("", "Pod", &defaulted("", "Pod", p), None);
    assert_eq!(got[0].message, "Invalid value: \"2\": must be less than or equal to cpu limit of 1");
}

#[test]
fn pod_updates_may_change_only_images_and_friends() {
    let old = defaulted("", "Pod", pod());
    let same = old.clone();
    assert_eq!(causes("", "Pod", &same, Some(&old)), vec![]);
    let ok: &[Mutation] = &[
        |p| p["spec"]["containers"][0]["image"] = json!("app:2"),
        |p| p["spec"]["initContainers"][0]["image"] = json!("busybox:1"),
        |p| p["spec"]["activeDeadlineSeconds"] = json!(30),
        |p| p["spec"]["tolerations"] = json!([{ "key": "k", "operator": "Exists" }]),
        |p| p["spec"]["nodeName"] = json!("node-1"),
        |p| p["status"] = json!({ "phase": "Running" }),
        |p| p["metadata"]["labels"] = json!({ "new": "label" }),
    ];
    for (n, mutate) in ok.iter().enumerate() {
        let mut new = old.clone();
        mutate(&mut new);
        assert_eq!(causes("", "Pod", &new, Some(&old)), vec![], "allowed update {n}");
    }
    let forbidden: &[Mutation] = &[
        |p| p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9090),
        |p| p["spec"]["restartPolicy"] = json!("Never"),
        |p| p["spec"]["schedulerName"] = json!("other-scheduler"),
    ];
    for (n, mutate) in forbidden.iter().enumerate() {
        let mut new = old.clone();
        mutate(&mut new);
        let got = validate_object("", "Pod", &new, Some(&old));
        assert_eq!(got.len(), 1, "forbidden update {n}: {got:?}");
        assert_eq!((got[0].field.as_str(), got[0].reason), ("spec", "FieldValueForbidden"));
        assert!(got[0]
            .message
            .starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));
    }
    let mut bound = old.clone();
    bound["spec"]["nodeName"] = json!("node-1");
    let mut moved = bound.clone();
    moved["spec"]["nodeName"] = json!("node-2");
    assert_eq!(causes("", "Pod", &moved, Some(&bound)), vec![("spec".into(), "FieldValueForbidden")]);
    let mut dropped = bound.clone();
    dropped["spec"]["tolerations"] = json!([{ "key": "k", "operator": "Exists" }]);
    let mut removed = dropped.clone();
    removed["spec"]["tolerations"] = json!([]);
    assert_eq!(causes("", "Pod", &removed, Some(&dropped)), vec![("spec".into(), "FieldValueForbidden")]);
}

#[test]
fn deployment_violations() {
    let table: &[(Mutation, &[(&str, &str)])] = &[
        (
            |d| d["spec"].as_object_mut().expect("spec").remove("selector").map(drop).unwrap_or(()),
            &[("spec.selector", "FieldValueRequired")],
        ),
        (|d| d["spec"]["selector"] = json!({}), &[("spec.selector", "FieldValueInvalid")]),
        (
            |d| d["spec"]["selector"]["matchLabels"]["app"] = json!("api"),
            &[("spec.template.metadata.labels", "FieldValueInvalid")],
        ),
        (|d| d["spec"]["replicas"] = json!(-1), &[("spec.replicas", "FieldValueInvalid")]),
        (|d| d["spec"]["strategy"] = json!({ "type": "Canary" }), &[("spec.strategy.type", "FieldValueNotSupported")]),
        (
            |d| d["spec"]["strategy"] = json!({ "type": "Recreate", "rollingUpdate": {} }),
            &[("spec.strategy.rollingUpdate", "FieldValueForbidden")],
        ),
        (
            |d| d["spec"]["strategy"] = json!({ "rollingUpdate": { "maxSurge": 0, "maxUnavailable": "0%" } }),
            &[("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid")],
        ),
        (
            |d| d["spec"]["strategy"] = json!({ "rollingUpdate": { "maxSurge": "x", "maxUnavailable": "150%" } }),
            &[
                ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"),
                ("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid"),
            ],
        ),
        (|d| d["spec"]["progressDeadlineSeconds"] = json!(5), &[]),
        (
            |d| {
                d["spec"]["progressDeadlineSeconds"] = json!(5);
                d["spec"]["minReadySeconds"] = json!(10)
            },
            &[("spec.progressDeadlineSeconds", "FieldValueInvalid")],
        ),
        (
            |d| d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never"),
            &[("spec.template.spec.restartPolicy", "FieldValueNotSupported")],
        ),
        (
            |d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(""),
            &[("spec.template.spec.containers[0].image", "FieldValueRequired")],
        ),
        (
            |d| {
                d["spec"]["selector"] =
                    json!({ "matchExpressions": [{ "key": "app", "operator": "In", "values": ["web", "api"] }] })
            },
            &[],
        ),
    ];
    check_table("apps", "Deployment", kubectl_deployment, table);
    let old = defaulted("apps", "Deployment", kubectl_deployment());
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    assert_eq!(causes("apps", "Deployment", &scaled, Some(&old)), vec![]);
    let mut reselected = old.clone();
    reselected["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
    reselected["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    let got = validate_object("apps", "Deployment", &reselected, Some(&old));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].field, "spec.selector");
    assert!(got[0].message.ends_with("field is immutable"), "{}", got[0].message);
}

fn stateful_set() -> Value {
    let mut d = kubectl_deployment();
    d["kind"] = json!("StatefulSet");
    d["spec"].as_object_mut().expect("spec").remove("strategy");
    d["spec"]["serviceName"] = json!("web");
    d
}

fn daemon_set() -> Value {
    let mut d = stateful_set();
    d["kind"] = json!("DaemonSet");
    d["spec"].as_object_mut().expect("spec").remove("replicas");
    d["spec"].as_object_mut().expect("spec").remove("serviceName");
    d
}

#[test]
fn statefulset_replicaset_daemonset_violations() {
    let sts: &[(Mutation, &[(&str, &str)])] = &[
        (
            |s| s["spec"]["podManagementPolicy"] = json!("Random"),
            &[("spec.podManagementPolicy", "FieldValueNotSupported")],
        ),
        (
            |s| s["spec"]["updateStrategy"] = json!({ "type": "OnDelete", "rollingUpdate": { "partition": 1 } }),
            &[("spec.updateStrategy.rollingUpdate", "FieldValueInvalid")],
        ),
        (
            |s| s["spec"]["updateStrategy"] = json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": -1 } }),
            &[("spec.updateStrategy.rollingUpdate.partition", "FieldValueInvalid")],
        ),
        (|s| s["spec"]["selector"] = json!(null), &[("spec.selector", "FieldValueRequired")]),
    ];
    check_table("apps", "StatefulSet", stateful_set, sts);
    let old = defaulted("apps", "StatefulSet", stateful_set());
    let mut ok = old.clone();
    ok["spec"]["replicas"] = json!(3);
    ok["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert_eq!(causes("apps", "StatefulSet", &ok, Some(&old)), vec![]);
    let mut renamed = old.clone();
    renamed["spec"]["serviceName"] = json!("other");
    assert_eq!(causes("apps", "StatefulSet", &renamed, Some(&old)), vec![("spec".into(), "FieldValueForbidden")]);

    let rs: &[(Mutation, &[(&str, &str)])] = &[
        (|s| s["spec"]["replicas"] = json!(-2), &[("spec.replicas", "FieldValueInvalid")]),
        (
            |s| s["spec"]["template"]["metadata"]["labels"] = json!(null),
            &[("spec.template.metadata.labels", "FieldValueInvalid")],
        ),
    ];
    fn replica_set() -> Value {
        let mut d = stateful_set();
        d["spec"].as_object_mut().expect("spec").remove("serviceName");
        d
    }
    check_table("apps", "ReplicaSet", replica_set, rs);

    let ds: &[(Mutation, &[(&str, &str)])] = &[
        (
            |s| s["spec"]["updateStrategy"] = json!({ "type": "Always" }),
            &[("spec.updateStrategy.type", "FieldValueNotSupported")],
        ),
        (
            |s| s["spec"]["updateStrategy"] = json!({ "rollingUpdate": { "maxUnavailable": 0, "maxSurge": 0 } }),
            &[("spec.updateStrategy.rollingUpdate.maxUnavailable", "FieldValueInvalid")],
        ),
        (
            |s| s["spec"]["updateStrategy"] = json!({ "rollingUpdate": { "maxUnavailable": 1, "maxSurge": "10%" } }),
            &[("spec.updateStrategy.rollingUpdate.maxSurge", "FieldValueInvalid")],
        ),
        (|s| s["spec"]["updateStrategy"] = json!({ "rollingUpdate": { "maxUnavailable": 0, "maxSurge": 1 } }), &[]),
    ];
    check_table("apps", "DaemonSet", daemon_set, ds);
}

fn cron_job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": { "name": "hello" },
        "spec": { "schedule": "*/1 * * * *", "jobTemplate": { "spec": { "template": { "spec": {
            "restartPolicy": "OnFailure", "containers": [{ "name": "hello", "image": "busybox:1.28", "command": ["date"] }] } } } } }
    })
}

#[test]
fn cronjob_violations() {
    let table: &[(Mutation, &[(&str, &str)])] = &[
        (|c| c["spec"]["schedule"] = json!(""), &[("spec.schedule", "FieldValueRequired")]),
        (|c| c["spec"]["schedule"] = json!("every minute"), &[("spec.schedule", "FieldValueInvalid")]),
        (
            |c| c["spec"]["concurrencyPolicy"] = json!("Sometimes"),
            &[("spec.concurrencyPolicy", "FieldValueNotSupported")],
        ),
        (
            |c| c["spec"]["successfulJobsHistoryLimit"] = json!(-1),
            &[("spec.successfulJobsHistoryLimit", "FieldValueInvalid")],
        ),
        (|c| c["metadata"]["name"] = json!("a".repeat(53)), &[("metadata.name", "FieldValueInvalid")]),
        (
            |c| c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always"),
            &[("spec.jobTemplate.spec.template.spec.restartPolicy", "FieldValueNotSupported")],
        ),
    ];
    check_table("batch", "CronJob", cron_job, table);
}

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "name": "http", "port": 80, "targetPort": "http" }, { "name": "https", "port": 443, "targetPort": 8443 }] }
    })
}

#[test]
fn service_violations() {
    let table: &[(Mutation, &[(&str, &str)])] = &[
        (|s| s["spec"]["ports"] = json!([]), &[("spec.ports", "FieldValueRequired")]),
        (
            |s| {
                s["spec"]["ports"] = json!([]);
                s["spec"]["clusterIP"] = json!("None")
            },
            &[],
        ),
        (|s| s["spec"] = json!({ "type": "ExternalName", "externalName": "example.com" }), &[]),
        (|s| s["spec"] = json!({ "type": "ExternalName" }), &[("spec.externalName", "FieldValueRequired")]),
        (|s| s["spec"]["ports"][0]["port"] = json!(0), &[("spec.ports[0].port", "FieldValueInvalid")]),
        (|s| s["spec"]["ports"][1]["name"] = json!("http"), &[("spec.ports[1].name", "FieldValueDuplicate")]),
        (
            |s| s["spec"]["ports"][1].as_object_mut().expect("port").remove("name").map(drop).unwrap_or(()),
            &[("spec.ports[1].name", "FieldValueRequired")],
        ),
        (|s| s["spec"]["ports"][1]["port"] = json!(80), &[("spec.ports[1]", "FieldValueDuplicate")]),
        (
            |s| s["spec"]["ports"][0]["protocol"] = json!("ICMP"),
            &[("spec.ports[0].protocol", "FieldValueNotSupported")],
        ),
        (
            |s| s["spec"]["ports"][0]["targetPort"] = json!("Not_A_Name"),
            &[("spec.ports[0].targetPort", "FieldValueInvalid")],
        ),
        (|s| s["spec"]["type"] = json!("Magic"), &[("spec.type", "FieldValueNotSupported")]),
        (|s| s["spec"]["ports"][0]["nodePort"] = json!(30080), &[("spec.ports[0].nodePort", "FieldValueForbidden")]),
        (
            |s| {
                s["spec"]["type"] = json!("NodePort");
                s["spec"]["ports"][0]["nodePort"] = json!(70000)
            },
            &[("spec.ports[0].nodePort", "FieldValueInvalid")],
        ),
        // Whether a node port is in the node port range is the allocator's check (the range is a flag).
        (
            |s| {
                s["spec"]["type"] = json!("NodePort");
                s["spec"]["ports"][0]["nodePort"] = json!(80)
            },
            &[],
        ),
        (
            |s| {
                s["spec"]["type"] = json!("NodePort");
                s["spec"]["ports"][0]["nodePort"] = json!(30080)
            },
            &[],
        ),
        (|s| s["spec"]["clusterIP"] = json!("10.0.0.300"), &[("spec.clusterIPs[0]", "FieldValueInvalid")]),
        (
            |s| {
                s["spec"]["clusterIP"] = json!("10.96.0.5");
                s["spec"]["clusterIPs"] = json!(["10.96.0.6"])
            },
            &[("spec.clusterIPs", "FieldValueInvalid")],
        ),
        (|s| s["spec"]["clusterIP"] = json!("fd00::5"), &[("spec.clusterIPs[0]", "FieldValueInvalid")]),
        (
            |s| s["spec"] = json!({ "type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.0.5" }),
            &[("spec.clusterIPs", "FieldValueForbidden")],
        ),
        (
            |s| s["spec"] = json!({ "type": "ExternalName", "externalName": "example.com", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack" }),
            &[("spec.ipFamilies", "FieldValueForbidden"), ("spec.ipFamilyPolicy", "FieldValueForbidden")],
        ),
        (|s| s["spec"]["sessionAffinity"] = json!("Cookie"), &[("spec.sessionAffinity", "FieldValueNotSupported")]),
    ];
    check_table("", "Service", service, table);
    let mut old = defaulted("", "Service", service());
    old["spec"]["clusterIP"] = json!("10.96.0.10");
    let mut changed = old.clone();
    changed["spec"]["clusterIP"] = json!("10.96.0.11");
    assert_eq!(causes("", "Service", &changed, Some(&old)), vec![("spec.clusterIPs[0]".into(), "FieldValueInvalid")]);
    let mut unset = old.clone();
    unset["spec"].as_object_mut().expect("spec").remove("clusterIP");
    assert_eq!(causes("", "Service", &unset, Some(&old)), vec![], "an omitted clusterIP keeps the allocated one");
}

#[test]
fn status_only_updates_of_workloads_pass() {
    for (group, kind, base) in [
        ("apps", "Deployment", kubectl_deployment()),
        ("apps", "StatefulSet", stateful_set()),
        ("apps", "DaemonSet", daemon_set()),
        ("", "Service", service()),
        ("", "Pod", pod()),
    ] {
        let old = defaulted(group, kind, base);
        let mut new = old.clone();
        new["status"] = json!({ "observedGeneration": 1, "replicas": 1 });
        assert_eq!(causes(group, kind, &new, Some(&old)), vec![], "{kind}");
    }
}

#[test]
fn unknown_kinds_have_no_rules() {
    let mut obj = json!({ "spec": { "anything": true } });
    default_object("example.com", "Widget", &mut obj);
    assert_eq!(obj, json!({ "spec": { "anything": true } }));
    assert!(validate_object("example.com", "Widget", &obj, None).is_empty());
    let mut not_object = json!("x");
    default_object("apps", "Deployment", &mut not_object);
    assert_eq!(not_object, json!("x"));
    // Wrong-typed nested values are left alone rather than panicking.
    let mut odd = json!({ "spec": "nope" });
    default_object("apps", "Deployment", &mut odd);
    assert_eq!(odd, json!({ "spec": "nope" }));
}

#[test]
fn updates_compare_against_a_defaulted_old_object() {
    // A pod stored without defaults, updated with a body that went through defaulting.
    let stored = pod();
    let mut new = defaulted("", "Pod", pod());
    new["metadata"]["labels"] = json!({ "a": "b" });
    assert_eq!(causes("", "Pod", &new, Some(&stored)), vec![]);
    new["spec"]["hostname"] = json!("h");
    assert_eq!(causes("", "Pod", &new, Some(&stored)), vec![("spec".into(), "FieldValueForbidden")]);
}
