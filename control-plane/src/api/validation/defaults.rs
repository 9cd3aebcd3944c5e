//! The defaults the upstream API server fills in on create and update (`SetDefaults_*` of
//! `pkg/apis/*/v1/defaults.go`), i.e. the fields users see in `kubectl get -o yaml` without having
//! set them. Fields already set (non-null) are never touched.
//!
//! Pure; must not depend on the store or the HTTP layer.

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Fills in the defaults of `kind`'s fields. Unknown kinds are left alone.
pub fn default_object(group: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Pod") => {
            let spec = spec_mut(obj);
            default_pod_spec(spec);
            set(spec, "enableServiceLinks", json!(true));
            requests_from_limits(spec);
        }
        ("apps", "Deployment") => {
            let spec = spec_mut(obj);
            set(spec, "replicas", json!(1));
            set(spec, "revisionHistoryLimit", json!(10));
            set(spec, "progressDeadlineSeconds", json!(600));
            let strategy = entry(spec, "strategy");
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let rolling = entry(strategy, "rollingUpdate");
                set(rolling, "maxUnavailable", json!("25%"));
                set(rolling, "maxSurge", json!("25%"));
            }
            default_template(spec);
        }
        ("apps", "ReplicaSet") => {
            let spec = spec_mut(obj);
            set(spec, "replicas", json!(1));
            default_template(spec);
        }
        ("apps", "StatefulSet") => {
            let spec = spec_mut(obj);
            set(spec, "replicas", json!(1));
            set(spec, "revisionHistoryLimit", json!(10));
            set(spec, "podManagementPolicy", json!("OrderedReady"));
            let strategy = entry(spec, "updateStrategy");
            if is_unset(strategy.get("type")) {
                set(strategy, "type", json!("RollingUpdate"));
                entry(strategy, "rollingUpdate");
            }
            if strategy["type"] == "RollingUpdate" {
                if let Some(rolling) = strategy.get_mut("rollingUpdate").filter(|r| r.is_object()) {
                    set(rolling, "partition", json!(0));
                }
            }
            let retention = entry(spec, "persistentVolumeClaimRetentionPolicy");
            set(retention, "whenDeleted", json!("Retain"));
            set(retention, "whenScaled", json!("Retain"));
            if let Some(claims) = spec.get_mut("volumeClaimTemplates").and_then(Value::as_array_mut) {
                claims.iter_mut().filter(|c| c.is_object()).for_each(default_claim);
            }
            default_template(spec);
        }
        ("apps", "DaemonSet") => {
            let spec = spec_mut(obj);
            set(spec, "revisionHistoryLimit", json!(10));
            let strategy = entry(spec, "updateStrategy");
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let rolling = entry(strategy, "rollingUpdate");
                set(rolling, "maxUnavailable", json!(1));
                set(rolling, "maxSurge", json!(0));
            }
            default_template(spec);
        }
        ("batch", "Job") => default_job(obj),
        ("batch", "CronJob") => {
            let spec = spec_mut(obj);
            set(spec, "concurrencyPolicy", json!("Allow"));
            set(spec, "suspend", json!(false));
            set(spec, "successfulJobsHistoryLimit", json!(3));
            set(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(job_spec) = spec.get_mut("jobTemplate").and_then(|t| t.get_mut("spec")) {
                if job_spec.is_object() {
                    default_template(job_spec);
                }
            }
        }
        ("", "Service") => default_service(obj),
        ("", "Secret") => {
            set(obj, "type", json!("Opaque"));
            merge_string_data(obj);
        }
        ("", "Namespace") => {
            set(spec_mut(obj), "finalizers", json!(["kubernetes"]));
            set(entry(obj, "status"), "phase", json!("Active"));
        }
        ("", "PersistentVolumeClaim") => default_claim(obj),
        ("", "PersistentVolume") => {
            let spec = spec_mut(obj);
            set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            set(spec, "volumeMode", json!("Filesystem"));
            set(entry(obj, "status"), "phase", json!("Pending"));
        }
        ("", "Endpoints") => {
            for subset in array_mut(obj, "subsets") {
                array_mut(subset, "ports").for_each(|p| set(p, "protocol", json!("TCP")));
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => array_mut(obj, "ports").for_each(|p| set(p, "protocol", json!("TCP"))),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            for subject in array_mut(obj, "subjects") {
                let group = if subject["kind"] == "ServiceAccount" { "" } else { "rbac.authorization.k8s.io" };
                set(subject, "apiGroup", json!(group));
            }
        }
        _ => {}
    }
}

/// Gives a Job (created without `spec.manualSelector: true`) the selector and pod labels upstream
/// generates from its uid. Call after `metadata.uid` is set (after `prepare_create`) and before
/// `validate_object`; does nothing without a uid.
pub fn generate_job_selector(obj: &mut Value) {
    let meta = obj.get("metadata");
    let uid = meta.and_then(|m| m.get("uid")).and_then(Value::as_str).unwrap_or("").to_string();
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    if uid.is_empty() || spec.get("manualSelector") == Some(&json!(true)) {
        return;
    }
    let selector = entry(spec, "selector");
    set(entry(selector, "matchLabels"), "batch.kubernetes.io/controller-uid", json!(uid));
    let labels = entry(entry(entry(spec, "template"), "metadata"), "labels");
    set(labels, "batch.kubernetes.io/controller-uid", json!(uid));
    set(labels, "batch.kubernetes.io/job-name", json!(name));
    set(labels, "controller-uid", json!(uid));
    set(labels, "job-name", json!(name));
}

fn default_job(obj: &mut Value) {
    let template_labels = obj.pointer("/spec/template/metadata/labels").filter(|l| l.is_object()).cloned();
    let spec = spec_mut(obj);
    if is_unset(spec.get("completions")) && is_unset(spec.get("parallelism")) {
        set(spec, "completions", json!(1));
        set(spec, "parallelism", json!(1));
    }
    set(spec, "parallelism", json!(1));
    let backoff = if is_unset(spec.get("backoffLimitPerIndex")) { 6 } else { i64::from(i32::MAX) };
    set(spec, "backoffLimit", json!(backoff));
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    let replacement = if is_unset(spec.get("podFailurePolicy")) { "TerminatingOrFailed" } else { "Failed" };
    set(spec, "podReplacementPolicy", json!(replacement));
    default_template(spec);
    if let Some(labels) = template_labels {
        if let Some(meta) = entry(obj, "metadata").as_object_mut() {
            if meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty) {
                meta.insert("labels".into(), labels);
            }
        }
    }
}

fn default_service(obj: &mut Value) {
    let spec = spec_mut(obj);
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    if spec["sessionAffinity"] == "ClientIP" {
        set(entry(entry(spec, "sessionAffinityConfig"), "clientIP"), "timeoutSeconds", json!(10800));
    }
    let svc_type = spec["type"].as_str().unwrap_or("").to_string();
    for port in array_mut(spec, "ports") {
        set(port, "protocol", json!("TCP"));
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if target_unset {
            if let Some(p) = port.get("port").cloned() {
                port["targetPort"] = p;
            }
        }
    }
    if svc_type != "ExternalName" {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
        let headless_without_selector = spec.get("clusterIP") == Some(&json!("None"))
            && spec.get("selector").and_then(Value::as_object).is_none_or(Map::is_empty);
        let policy = if headless_without_selector { "RequireDualStack" } else { "SingleStack" };
        set(spec, "ipFamilyPolicy", json!(policy));
        set(spec, "ipFamilies", json!(["IPv4"]));
    }
    if svc_type == "NodePort" || svc_type == "LoadBalancer" {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if svc_type == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// `stringData` is write-only: upstream merges it into `data` (base64) and never stores it.
fn merge_string_data(obj: &mut Value) {
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else { return };
    let Some(data) = entry(obj, "data").as_object_mut() else { return };
    for (k, v) in string_data {
        if let Some(s) = v.as_str() {
            data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
        }
    }
}

fn default_claim(claim: &mut Value) {
    set(spec_mut(claim), "volumeMode", json!("Filesystem"));
    set(entry(claim, "status"), "phase", json!("Pending"));
}

/// `spec.template.spec` of a workload.
fn default_template(spec: &mut Value) {
    if let Some(pod_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")).filter(|s| s.is_object()) {
        default_pod_spec(pod_spec);
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything inside it.
fn default_pod_spec(spec: &mut Value) {
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "securityContext", json!({}));
    set(spec, "schedulerName", json!("default-scheduler"));
    let host_network = spec.get("hostNetwork") == Some(&json!(true));
    for list in ["containers", "initContainers"] {
        for container in array_mut(spec, list) {
            default_container(container, host_network);
        }
    }
    for volume in array_mut(spec, "volumes") {
        default_volume(volume);
    }
}

fn default_container(c: &mut Value, host_network: bool) {
    let policy = pull_policy_for(c.get("image").and_then(Value::as_str).unwrap_or(""));
    set(c, "imagePullPolicy", json!(policy));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    set(c, "resources", json!({}));
    for port in array_mut(c, "ports") {
        set(port, "protocol", json!("TCP"));
        if host_network {
            if let Some(p) = port.get("containerPort").cloned() {
                set(port, "hostPort", p);
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            default_http_get(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
        lifecycle.values_mut().filter(|h| h.is_object()).for_each(default_http_get);
    }
    for env in array_mut(c, "env") {
        if let Some(field_ref) = env.get_mut("valueFrom").and_then(|v| v.get_mut("fieldRef")).filter(|f| f.is_object())
        {
            set(field_ref, "apiVersion", json!("v1"));
        }
    }
}

fn default_http_get(handler: &mut Value) {
    if let Some(get) = handler.get_mut("httpGet").filter(|g| g.is_object()) {
        set(get, "path", json!("/"));
        set(get, "scheme", json!("HTTP"));
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` for tags and digests.
fn pull_policy_for(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The volume source fields of `v1.VolumeSource`.
pub(super) const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

fn default_volume(v: &mut Value) {
    if !VOLUME_SOURCES.iter().any(|s| !is_unset(v.get(*s))) {
        v["emptyDir"] = json!({});
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).filter(|s| s.is_object()) {
            set(s, "defaultMode", json!(420));
        }
    }
    if let Some(host_path) = v.get_mut("hostPath").filter(|h| h.is_object()) {
        set(host_path, "type", json!(""));
    }
    if let Some(downward) = v.get_mut("downwardAPI") {
        for item in array_mut(downward, "items") {
            if let Some(f) = item.get_mut("fieldRef").filter(|f| f.is_object()) {
                set(f, "apiVersion", json!("v1"));
            }
        }
    }
}

/// `SetDefaults_Pod`: requests default to limits, per resource.
fn requests_from_limits(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        for c in array_mut(spec, list) {
            let Some(limits) = c.pointer("/resources/limits").and_then(Value::as_object).cloned() else { continue };
            let requests = entry(entry(c, "resources"), "requests");
            for (name, q) in limits {
                set(requests, &name, q);
            }
        }
    }
}

fn is_unset(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

/// Sets `obj[key]` when `obj` is an object and the key is absent or null.
fn set(obj: &mut Value, key: &str, value: Value) {
    if let Some(o) = obj.as_object_mut() {
        match o.get(key) {
            None | Some(Value::Null) => {
                o.insert(key.to_string(), value);
            }
            Some(_) => {}
        }
    }
}

/// `obj[key]`, made an empty object first when absent or null. A non-object `obj` is returned
/// itself, so chains of [`set`] and `entry` on values of the wrong type (which decoding rejects)
/// change nothing.
fn entry<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    if obj.is_object() {
        set(obj, key, json!({}));
        &mut obj[key]
    } else {
        obj
    }
}

fn spec_mut(obj: &mut Value) -> &mut Value {
    entry(obj, "spec")
}

fn array_mut<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter(|v| v.is_object())
}
