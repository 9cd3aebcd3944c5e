//! Validation of a pod spec (of Pods and of every pod template) and of Pod updates, following
//! upstream's `ValidatePodSpec` and `ValidatePodUpdate`.
//!
//! Pure; must not depend on the store or the HTTP layer.

use std::collections::BTreeSet;

use serde_json::Value;

use super::defaults::VOLUME_SOURCES;
use super::fields::{
    array_of, child, dns1123_label_errors, dns1123_subdomain_errors, index, key, normalized, object_of,
    port_name_errors, quote, str_of, valid_port, Causes, PORT_RANGE_MSG,
};
use super::quantity::{Quantity, QUANTITY_FORMAT};

/// Validates a pod spec found at `path` (`spec`, `spec.template.spec`, ...).
pub(super) fn validate_pod_spec(spec: Option<&Value>, path: &str, c: &mut Causes) {
    let empty = Value::Null;
    let spec = spec.unwrap_or(&empty);
    let volumes = validate_volumes(spec, path, c);
    let containers = array_of(spec, "containers");
    if containers.is_empty() {
        c.required(&child(path, "containers"), "");
    }
    let mut names = BTreeSet::new();
    for (i, ctr) in containers.iter().enumerate() {
        let p = index(&child(path, "containers"), i);
        validate_container(ctr, &p, &volumes, &mut names, c);
        if ctr.get("restartPolicy").is_some_and(|v| !v.is_null()) {
            c.forbidden(&child(&p, "restartPolicy"), "may not be set for non-init containers");
        }
    }
    for (i, ctr) in array_of(spec, "initContainers").iter().enumerate() {
        let p = index(&child(path, "initContainers"), i);
        validate_container(ctr, &p, &volumes, &mut names, c);
        if let Some(policy) = ctr.get("restartPolicy").and_then(Value::as_str) {
            if policy != "Always" {
                c.not_supported(&child(&p, "restartPolicy"), policy, &["Always"]);
            }
        }
    }
    c.one_of(&child(path, "restartPolicy"), str_of(spec, "restartPolicy"), &["Always", "OnFailure", "Never"]);
    let dns_policy = str_of(spec, "dnsPolicy");
    c.one_of(&child(path, "dnsPolicy"), dns_policy, &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]);
    if dns_policy == "None" && spec.get("dnsConfig").is_none_or(Value::is_null) {
        c.required(&child(path, "dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None");
    }
    if let Some(n) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if !(1..=i64::from(i32::MAX)).contains(&n) {
            c.invalid(
                &child(path, "activeDeadlineSeconds"),
                &n.to_string(),
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    for field in ["hostname", "subdomain"] {
        let v = str_of(spec, field);
        if !v.is_empty() {
            for msg in dns1123_label_errors(v) {
                c.invalid(&child(path, field), &quote(v), &msg);
            }
        }
    }
    let sa = str_of(spec, "serviceAccountName");
    if !sa.is_empty() {
        for msg in dns1123_subdomain_errors(sa) {
            c.invalid(&child(path, "serviceAccountName"), &quote(sa), &msg);
        }
    }
    validate_tolerations(spec, path, c);
}

fn validate_container(
    ctr: &Value,
    path: &str,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    c: &mut Causes,
) {
    let name = str_of(ctr, "name");
    let name_path = child(path, "name");
    if name.is_empty() {
        c.required(&name_path, "");
    } else {
        for msg in dns1123_label_errors(name) {
            c.invalid(&name_path, &quote(name), &msg);
        }
        if !names.insert(name.to_string()) {
            c.duplicate(&name_path, &quote(name));
        }
    }
    if str_of(ctr, "image").trim().is_empty() {
        c.required(&child(path, "image"), "");
    }
    if let Some(policy) = ctr.get("imagePullPolicy").and_then(Value::as_str) {
        c.one_of(&child(path, "imagePullPolicy"), policy, &["Always", "IfNotPresent", "Never"]);
    }
    c.optional_one_of(
        ctr,
        "terminationMessagePolicy",
        &child(path, "terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    );
    validate_ports(ctr, path, c);
    validate_env(ctr, path, c);
    validate_resources(ctr, path, c);
    let mut mount_paths = BTreeSet::new();
    for (i, m) in array_of(ctr, "volumeMounts").iter().enumerate() {
        let p = index(&child(path, "volumeMounts"), i);
        let vol = str_of(m, "name");
        if vol.is_empty() {
            c.required(&child(&p, "name"), "");
        } else if !volumes.contains(vol) {
            c.not_found(&child(&p, "name"), &quote(vol));
        }
        let mount_path = str_of(m, "mountPath");
        if mount_path.is_empty() {
            c.required(&child(&p, "mountPath"), "");
        } else if !mount_paths.insert(mount_path.to_string()) {
            c.invalid(&child(&p, "mountPath"), &quote(mount_path), "must be unique");
        }
    }
}

fn validate_ports(ctr: &Value, path: &str, c: &mut Causes) {
    let mut port_names = BTreeSet::new();
    for (i, port) in array_of(ctr, "ports").iter().enumerate() {
        let p = index(&child(path, "ports"), i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            for msg in port_name_errors(name) {
                c.invalid(&child(&p, "name"), &quote(name), msg);
            }
            if !port_names.insert(name.to_string()) {
                c.duplicate(&child(&p, "name"), &quote(name));
            }
        }
        match port.get("containerPort").and_then(Value::as_i64).unwrap_or(0) {
            0 => c.required(&child(&p, "containerPort"), ""),
            n if !valid_port(n) => c.invalid(&child(&p, "containerPort"), &n.to_string(), PORT_RANGE_MSG),
            _ => {}
        }
        let host_port = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
        if host_port != 0 && !valid_port(host_port) {
            c.invalid(&child(&p, "hostPort"), &host_port.to_string(), PORT_RANGE_MSG);
        }
        if let Some(protocol) = port.get("protocol").and_then(Value::as_str) {
            c.one_of(&child(&p, "protocol"), protocol, &["SCTP", "TCP", "UDP"]);
        }
    }
}

const ENV_SOURCES: &[&str] = &["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef"];

fn validate_env(ctr: &Value, path: &str, c: &mut Causes) {
    for (i, env) in array_of(ctr, "env").iter().enumerate() {
        let p = index(&child(path, "env"), i);
        let name = str_of(env, "name");
        if name.is_empty() {
            c.required(&child(&p, "name"), "");
        } else if !name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=') {
            c.invalid(
                &child(&p, "name"),
                &quote(name),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            );
        }
        let Some(from) = env.get("valueFrom").filter(|v| !v.is_null()) else { continue };
        let from_path = child(&p, "valueFrom");
        if !str_of(env, "value").is_empty() {
            c.invalid(&from_path, "\"\"", "may not be specified when `value` is not empty");
        }
        match ENV_SOURCES.iter().filter(|s| from.get(**s).is_some_and(|v| !v.is_null())).count() {
            0 => c.invalid(
                &from_path,
                "\"\"",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ),
            1 => {}
            _ => c.invalid(&from_path, "\"\"", "may not have more than one field specified at a time"),
        }
    }
}

fn is_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || name.split_once('/').is_some_and(|(domain, _)| {
            !domain.is_empty() && domain != "kubernetes.io" && !domain.ends_with(".kubernetes.io")
        })
}

fn validate_resources(ctr: &Value, path: &str, c: &mut Causes) {
    let Some(res) = ctr.get("resources").filter(|r| r.is_object()) else { return };
    let res_path = child(path, "resources");
    let parsed = |kind: &str, c: &mut Causes| -> Vec<(String, String, Quantity)> {
        let mut out = Vec::new();
        for (name, v) in object_of(res, kind).into_iter().flatten() {
            let p = key(&child(&res_path, kind), name);
            if !is_container_resource(name) {
                c.invalid(&p, &quote(name), "must be a standard resource for containers");
            }
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match Quantity::parse(&text) {
                Ok(q) if q.is_negative() => c.invalid(&p, &quote(&text), "must be greater than or equal to 0"),
                Ok(q) => out.push((name.clone(), text, q)),
                Err(_) => c.invalid(&p, &quote(&text), QUANTITY_FORMAT),
            }
        }
        out
    };
    let limits = parsed("limits", c);
    let requests = parsed("requests", c);
    for (name, text, q) in &requests {
        if let Some((_, limit_text, limit)) = limits.iter().find(|(n, _, _)| n == name) {
            if q > limit {
                c.invalid(
                    &key(&child(&res_path, "requests"), name),
                    &quote(text),
                    &format!("must be less than or equal to {name} limit of {limit_text}"),
                );
            }
        }
    }
}

/// Validates volumes and returns their names (for `volumeMounts`).
fn validate_volumes(spec: &Value, path: &str, c: &mut Causes) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, vol) in array_of(spec, "volumes").iter().enumerate() {
        let p = index(&child(path, "volumes"), i);
        let name = str_of(vol, "name");
        if name.is_empty() {
            c.required(&child(&p, "name"), "");
        } else {
            for msg in dns1123_label_errors(name) {
                c.invalid(&child(&p, "name"), &quote(name), &msg);
            }
            if !names.insert(name.to_string()) {
                c.duplicate(&child(&p, "name"), &quote(name));
            }
        }
        let sources: Vec<&str> =
            VOLUME_SOURCES.iter().copied().filter(|s| vol.get(*s).is_some_and(|v| !v.is_null())).collect();
        match sources.as_slice() {
            [] => c.required(&p, "must specify a volume type"),
            [_] => {}
            [_, rest @ ..] => {
                for extra in rest {
                    c.forbidden(&child(&p, extra), "may not specify more than 1 volume type");
                }
            }
        }
    }
    names
}

fn validate_tolerations(spec: &Value, path: &str, c: &mut Causes) {
    for (i, t) in array_of(spec, "tolerations").iter().enumerate() {
        let p = index(&child(path, "tolerations"), i);
        let operator = str_of(t, "operator");
        match operator {
            "" | "Equal" => {}
            "Exists" if !str_of(t, "value").is_empty() => c.invalid(
                &child(&p, "operator"),
                &quote(str_of(t, "value")),
                "value must be empty when `operator` is 'Exists'",
            ),
            "Exists" => {}
            other => c.not_supported(&child(&p, "operator"), other, &["Equal", "Exists"]),
        }
        if str_of(t, "key").is_empty() && operator != "Exists" {
            c.invalid(
                &child(&p, "operator"),
                &quote(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        let effect = str_of(t, "effect");
        if !effect.is_empty() {
            c.one_of(&child(&p, "effect"), effect, &["NoSchedule", "PreferNoSchedule", "NoExecute"]);
        }
    }
}

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// What a Pod update may change in the spec: images, `activeDeadlineSeconds` (set or lowered),
/// additions to tolerations, removal of scheduling gates, `nodeName` while unset, and
/// `terminationGracePeriodSeconds` from negative to 1. Status-only updates always pass.
pub(super) fn validate_pod_update(new: &Value, old: &Value, c: &mut Causes) {
    let (Some(new_spec), Some(old_spec)) = (new.get("spec"), old.get("spec")) else { return };
    let mut munged = new_spec.clone();
    let Some(m) = munged.as_object_mut() else { return };
    for list in ["containers", "initContainers"] {
        let old_list = array_of(old_spec, list);
        if let Some(new_list) = m.get_mut(list).and_then(Value::as_array_mut) {
            if new_list.len() == old_list.len() {
                for (n, o) in new_list.iter_mut().zip(old_list) {
                    if let (Some(n), Some(img)) = (n.as_object_mut(), o.get("image")) {
                        n.insert("image".into(), img.clone());
                    }
                }
            }
        }
    }
    let new_deadline = new_spec.get("activeDeadlineSeconds").and_then(Value::as_i64);
    let old_deadline = old_spec.get("activeDeadlineSeconds").and_then(Value::as_i64);
    match (old_deadline, new_deadline) {
        (_, None) | (None, Some(_)) => {}
        (Some(o), Some(n)) if n <= o => {}
        (Some(o), Some(n)) => c.invalid(
            "spec.activeDeadlineSeconds",
            &n.to_string(),
            &format!("must be less than or equal to previous value {o}"),
        ),
    }
    if new_deadline.is_some() {
        copy_from(m, old_spec, "activeDeadlineSeconds");
    }
    let old_tolerations = array_of(old_spec, "tolerations");
    let new_tolerations = array_of(new_spec, "tolerations");
    let strip_seconds = |t: &Value| {
        let mut t = t.clone();
        if let Some(o) = t.as_object_mut() {
            o.remove("tolerationSeconds");
        }
        normalized(Some(&t))
    };
    if old_tolerations.iter().all(|o| new_tolerations.iter().any(|n| strip_seconds(n) == strip_seconds(o))) {
        copy_from(m, old_spec, "tolerations");
    }
    let old_gates = array_of(old_spec, "schedulingGates");
    if array_of(new_spec, "schedulingGates").iter().all(|g| old_gates.contains(g)) {
        copy_from(m, old_spec, "schedulingGates");
    }
    if str_of(old_spec, "nodeName").is_empty() {
        copy_from(m, old_spec, "nodeName");
    }
    let old_grace = old_spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0)
        && new_spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64) == Some(1)
    {
        copy_from(m, old_spec, "terminationGracePeriodSeconds");
    }
    if normalized(Some(&munged)) != normalized(Some(old_spec)) {
        c.forbidden("spec", POD_UPDATE_MSG);
    }
}

/// Makes `m[field]` what `old[field]` is (absent when absent).
fn copy_from(m: &mut serde_json::Map<String, Value>, old: &Value, field: &str) {
    match old.get(field) {
        Some(v) => {
            m.insert(field.to_string(), v.clone());
        }
        None => {
            m.remove(field);
        }
    }
}
