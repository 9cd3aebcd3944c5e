//! Object metadata rules shared by every resource: type checks against the URL, names and
//! `generateName`, system fields (`uid`, `creationTimestamp`, `generation`), what an update may
//! change (spec vs status), and basic defaults.
//!
//! Pure (time and randomness are passed in); must not depend on the HTTP server or the store.

use serde_json::{json, Map, Value};

use super::resources::ResourceDef;
use super::status::{ApiError, Cause};

/// Fields the server sets on create.
pub struct SystemFields {
    pub uid: String,
    /// RFC 3339, second precision, UTC.
    pub now: String,
    /// Five characters for `generateName`.
    pub suffix: String,
}

impl SystemFields {
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let suffix: String = (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect();
        Self { uid: uuid::Uuid::new_v4().to_string(), now: now_rfc3339(), suffix }
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn meta(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

pub fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    meta(v).and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    match v.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

/// Labels of an object as a sorted map (non-string values ignored).
pub fn labels(v: &Value) -> std::collections::BTreeMap<String, String> {
    meta(v)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|l| l.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// Parses `metadata.resourceVersion` (empty: `None`).
pub fn resource_version(v: &Value) -> Result<Option<i64>, ApiError> {
    match meta_str(v, "resourceVersion") {
        "" => Ok(None),
        s => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}: must be a number"))),
    }
}

/// Checks the body's `apiVersion`/`kind` against the URL, filling them in when absent.
pub fn check_type(def: &ResourceDef, group: &str, version: &str, kind: &str, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    let expected_av = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(expected_av),
        Some(av) if av == expected_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({expected_av})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(kind),
        Some(k) if k == kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({kind}) for {}",
                def.qualified()
            )))
        }
    }
    Ok(())
}

/// Makes the body's namespace agree with the URL's.
pub fn check_namespace(def: &ResourceDef, url_ns: Option<&str>, obj: &mut Value) -> Result<(), ApiError> {
    let body_ns = meta_str(obj, "namespace").to_string();
    if !def.namespaced {
        if !body_ns.is_empty() {
            meta_mut(obj).remove("namespace");
        }
        return Ok(());
    }
    let Some(ns) = url_ns else {
        return Err(ApiError::bad_request(format!("{} must be created in a namespace", def.qualified())));
    };
    if body_ns.is_empty() {
        meta_mut(obj).insert("namespace".into(), json!(ns));
    } else if body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Name rules: DNS-1123 labels for namespaces and services, subdomains for the rest; RBAC objects
/// only exclude `/` and `%` and the path segments `.` and `..`, as upstream.
pub fn validate_name(def: &ResourceDef, name: &str) -> Vec<Cause> {
    let (ok, rule) = match def.resource {
        "namespaces" | "services" => (is_dns1123_label(name), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
        "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings" => (
            !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%'),
            "may not contain '/' or '%' and may not be '.' or '..'",
        ),
        _ => (is_dns1123_subdomain(name), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
    };
    if ok {
        Vec::new()
    } else {
        vec![Cause {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            message: format!("Invalid value: {name:?}: {rule}"),
        }]
    }
}

/// Label keys and values, and annotation keys, as upstream validates them.
pub fn validate_labels(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(m) = meta(obj) else { return causes };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    };
    let key_ok = |k: &str| match k.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && name_ok(name),
        None => name_ok(k),
    };
    for (field, check_value) in [("labels", true), ("annotations", false)] {
        let Some(map) = m.get(field) else { continue };
        let Some(map) = map.as_object() else {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: format!("metadata.{field}"),
                message: "must be a map of strings".into(),
            });
            continue;
        };
        for (k, v) in map {
            if !key_ok(k) {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: format!("metadata.{field}"),
                    message: format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                });
            }
            match v.as_str() {
                Some(s) if check_value && !s.is_empty() && !name_ok(s) => causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: "metadata.labels".to_string(),
                    message: format!("Invalid value: {s:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                }),
                Some(_) => {}
                None => causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: format!("metadata.{field}.{k}"),
                    message: "must be a string".into(),
                }),
            }
        }
    }
    causes
}

/// Prepares a new object for storage: name (or `generateName`), system fields, defaults.
/// Returns the final name.
pub fn prepare_create(def: &ResourceDef, obj: &mut Value, sys: &SystemFields) -> Result<String, ApiError> {
    let mut name = meta_str(obj, "name").to_string();
    let generate = meta_str(obj, "generateName").to_string();
    if name.is_empty() {
        if generate.is_empty() {
            return Err(ApiError::invalid(
                def.group,
                def.kind,
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                }],
            ));
        }
        name = format!("{generate}{}", sys.suffix);
    }
    let mut causes = validate_name(def, &name);
    causes.extend(validate_labels(obj));
    if !causes.is_empty() {
        return Err(ApiError::invalid(def.group, def.kind, &name, causes));
    }
    let m = meta_mut(obj);
    m.insert("name".into(), json!(name));
    m.insert("uid".into(), json!(sys.uid));
    m.insert("creationTimestamp".into(), json!(sys.now));
    m.remove("resourceVersion");
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    if obj.get("spec").is_some() || def.kind == "Pod" {
        meta_mut(obj).insert("generation".into(), json!(1));
    } else {
        meta_mut(obj).remove("generation");
    }
    apply_defaults(def, obj);
    Ok(name)
}

/// What the create strategy sets that is not a field default (those are `validation::default_object`'s):
/// a new pod starts Pending and runs as the namespace's default service account.
fn apply_defaults(def: &ResourceDef, obj: &mut Value) {
    if (def.group, def.kind) != ("", "Pod") {
        return;
    }
    if obj.get("status").and_then(|s| s.get("phase")).is_none() {
        obj["status"] = json!({ "phase": "Pending", "qosClass": "BestEffort" });
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("serviceAccountName").or_insert(json!("default"));
    }
}

/// What an update may change. `status` subresource updates take only the status from `new`; main
/// resource updates keep the stored status of kinds that have a status subresource. System fields
/// always come from `current`; `generation` is bumped when anything outside metadata and status changed.
pub fn prepare_update(def: &ResourceDef, current: &Value, new: &mut Value, subresource: Option<&str>) {
    if subresource == Some("status") {
        let status = new.get("status").cloned();
        let mut merged = current.clone();
        match status {
            Some(s) => merged["status"] = s,
            None => {
                if let Some(o) = merged.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        *new = merged;
        return;
    }
    if def.subresource("status").is_some() {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    let keep = [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "name",
        "namespace",
    ];
    let cur_meta = meta(current).cloned().unwrap_or_default();
    let m = meta_mut(new);
    for k in keep {
        match cur_meta.get(k) {
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
    if spec_changed(current, new) {
        let gen = cur_meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
        if gen > 0 {
            meta_mut(new).insert("generation".into(), json!(gen + 1));
        }
    }
}

/// True when anything but `metadata` and `status` differs.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            o.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::find;

    fn sys() -> SystemFields {
        SystemFields { uid: "u-1".into(), now: "2026-01-01T00:00:00Z".into(), suffix: "x7k2q".into() }
    }

    #[test]
    fn create_sets_system_fields_and_generates_names() {
        let pods = find("", "v1", "pods").expect("pods");
        let mut pod =
            json!({ "metadata": { "generateName": "web-", "resourceVersion": "5" }, "spec": { "containers": [] } });
        let name = prepare_create(pods, &mut pod, &sys()).expect("create");
        assert_eq!(name, "web-x7k2q");
        assert_eq!(pod["metadata"]["uid"], "u-1");
        assert_eq!(pod["metadata"]["generation"], 1);
        assert!(pod["metadata"].get("resourceVersion").is_none());
        assert_eq!(pod["status"]["phase"], "Pending");
        let mut nameless = json!({ "metadata": {} });
        let err = prepare_create(pods, &mut nameless, &sys()).expect_err("no name");
        assert_eq!(err.code, 422);
        let mut bad = json!({ "metadata": { "name": "Web_1" } });
        assert_eq!(prepare_create(pods, &mut bad, &sys()).expect_err("bad name").code, 422);
        let mut bad_label = json!({ "metadata": { "name": "ok", "labels": { "app": "not ok!" } } });
        assert_eq!(prepare_create(pods, &mut bad_label, &sys()).expect_err("bad label").code, 422);
    }

    #[test]
    fn type_and_namespace_checks() {
        let cms = find("", "v1", "configmaps").expect("configmaps");
        let mut cm = json!({ "metadata": { "name": "a" } });
        check_type(cms, "", "v1", "ConfigMap", &mut cm).expect("filled in");
        assert_eq!((cm["apiVersion"].as_str(), cm["kind"].as_str()), (Some("v1"), Some("ConfigMap")));
        let mut wrong = json!({ "apiVersion": "apps/v1", "kind": "ConfigMap" });
        assert_eq!(check_type(cms, "", "v1", "ConfigMap", &mut wrong).expect_err("mismatch").code, 400);
        check_namespace(cms, Some("ns1"), &mut cm).expect("namespace filled");
        assert_eq!(cm["metadata"]["namespace"], "ns1");
        assert_eq!(check_namespace(cms, Some("ns2"), &mut cm).expect_err("mismatch").code, 400);
    }

    #[test]
    fn updates_bump_generation_only_on_spec_changes_and_respect_status() {
        let deploy = find("apps", "v1", "deployments").expect("deployments");
        let current = json!({
            "metadata": { "name": "web", "uid": "u", "generation": 3, "creationTimestamp": "t" },
            "spec": { "replicas": 1 }, "status": { "replicas": 1 }
        });
        let mut label_only = current.clone();
        label_only["metadata"]["labels"] = json!({ "a": "b" });
        label_only["metadata"]["uid"] = json!("forged");
        prepare_update(deploy, &current, &mut label_only, None);
        assert_eq!(label_only["metadata"]["generation"], 3);
        assert_eq!(label_only["metadata"]["uid"], "u");
        let mut scaled = current.clone();
        scaled["spec"]["replicas"] = json!(3);
        scaled["status"]["replicas"] = json!(99);
        prepare_update(deploy, &current, &mut scaled, None);
        assert_eq!(scaled["metadata"]["generation"], 4);
        assert_eq!(scaled["status"]["replicas"], 1, "main resource updates ignore status");
        let mut status = json!({ "spec": { "replicas": 50 }, "status": { "replicas": 2 } });
        prepare_update(deploy, &current, &mut status, Some("status"));
        assert_eq!(status["spec"]["replicas"], 1, "status updates ignore spec");
        assert_eq!(status["status"]["replicas"], 2);
    }
}
