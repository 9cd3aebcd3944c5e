//! Validation of the smaller kinds: PersistentVolumeClaim, Lease, Endpoints, Event,
//! PodDisruptionBudget and RBAC objects, and the cron schedule format of CronJobs.
//!
//! Pure; must not depend on the store or the HTTP layer.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::fields::{
    array_of, child, dns1123_label_errors, go_value, index, normalized, quote, str_of, valid_port, Causes,
    PORT_RANGE_MSG,
};
use super::quantity::Quantity;

const PVC_UPDATE_MSG: &str =
    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";

pub(super) fn validate_pvc(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let modes = array_of(spec, "accessModes");
    let has_data_source = ["dataSource", "dataSourceRef"].iter().any(|k| spec.get(*k).is_some_and(|v| !v.is_null()));
    if modes.is_empty() && !has_data_source {
        c.required("spec.accessModes", "at least 1 access mode is required");
    }
    const MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];
    for (i, mode) in modes.iter().enumerate() {
        let m = mode.as_str().unwrap_or("");
        if !MODES.contains(&m) {
            c.not_supported(&index("spec.accessModes", i), m, MODES);
        }
    }
    c.optional_one_of(spec, "volumeMode", "spec.volumeMode", &["Block", "Filesystem"]);
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => c.required("spec.resources[storage]", ""),
        Some(v) => {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            match Quantity::parse(&text) {
                Ok(q) if q.nanos <= 0 => {
                    c.invalid("spec.resources[storage]", &quote(&text), "must be greater than zero")
                }
                Ok(_) => {}
                Err(e) => c.invalid("spec.resources[storage]", &quote(&text), &e.to_string()),
            }
        }
    }
    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&Value::Null);
        let strip = |s: &Value, keep_volume_name: bool| {
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut() {
                o.remove("volumeAttributesClassName");
                if !keep_volume_name {
                    o.remove("volumeName");
                }
                if let Some(r) = o.get_mut("resources").and_then(Value::as_object_mut) {
                    r.remove("requests");
                }
            }
            normalized(Some(&s))
        };
        let volume_name_set = !str_of(old_spec, "volumeName").is_empty();
        if strip(spec, volume_name_set) != strip(old_spec, volume_name_set) {
            c.forbidden("spec", PVC_UPDATE_MSG);
        }
    }
}

pub(super) fn validate_lease(obj: &Value, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    c.positive(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds");
    c.non_negative(spec, "leaseTransitions", "spec.leaseTransitions");
    if spec.get("preferredHolder").is_some_and(|v| !v.is_null()) && spec.get("strategy").is_none_or(Value::is_null) {
        c.forbidden("spec.preferredHolder", "can only be set if strategy is set");
    }
}

pub(super) fn validate_endpoints(obj: &Value, c: &mut Causes) {
    for (i, subset) in array_of(obj, "subsets").iter().enumerate() {
        let p = index("subsets", i);
        for list in ["addresses", "notReadyAddresses"] {
            for (j, addr) in array_of(subset, list).iter().enumerate() {
                let ip = str_of(addr, "ip");
                if ip.parse::<IpAddr>().is_err() {
                    c.invalid(&child(&index(&child(&p, list), j), "ip"), &quote(ip), "must be a valid IP address");
                }
            }
        }
        let ports = array_of(subset, "ports");
        let mut names = BTreeSet::new();
        for (j, port) in ports.iter().enumerate() {
            let pp = index(&child(&p, "ports"), j);
            let name = str_of(port, "name");
            if name.is_empty() {
                if ports.len() > 1 {
                    c.required(&child(&pp, "name"), "");
                }
            } else {
                for msg in dns1123_label_errors(name) {
                    c.invalid(&child(&pp, "name"), &quote(name), &msg);
                }
                if !names.insert(name) {
                    c.duplicate(&child(&pp, "name"), &quote(name));
                }
            }
            let n = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            if !valid_port(n) {
                c.invalid(&child(&pp, "port"), &n.to_string(), PORT_RANGE_MSG);
            }
            c.optional_one_of(port, "protocol", &child(&pp, "protocol"), &["SCTP", "TCP", "UDP"]);
        }
    }
}

/// Legacy (`v1`) events: the involved object lives in the event's namespace.
pub(super) fn validate_event(obj: &Value, c: &mut Causes) {
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let involved_ns = obj.pointer("/involvedObject/namespace").and_then(Value::as_str).unwrap_or("");
    if !involved_ns.is_empty() && !ns.is_empty() && involved_ns != ns {
        c.invalid("involvedObject.namespace", &quote(involved_ns), "does not match event.namespace");
    }
    c.non_negative(obj, "count", "count");
}

pub(super) fn validate_pdb(obj: &Value, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let set = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    if set("minAvailable") && set("maxUnavailable") {
        c.invalid("spec", &go_value(spec), "minAvailable and maxUnavailable cannot be both set");
    }
    c.optional_one_of(
        spec,
        "unhealthyPodEvictionPolicy",
        "spec.unhealthyPodEvictionPolicy",
        &["AlwaysAllow", "IfHealthyBudget"],
    );
}

pub(super) fn validate_role(obj: &Value, c: &mut Causes) {
    for (i, rule) in array_of(obj, "rules").iter().enumerate() {
        let p = index("rules", i);
        if array_of(rule, "verbs").is_empty() {
            c.required(&child(&p, "verbs"), "verbs must contain at least one value");
        }
        let has_urls = !array_of(rule, "nonResourceURLs").is_empty();
        if !has_urls && array_of(rule, "apiGroups").is_empty() {
            c.required(&child(&p, "apiGroups"), "resource rules must supply at least one api group");
        }
    }
}

pub(super) fn validate_role_binding(obj: &Value, old: Option<&Value>, namespaced: bool, c: &mut Causes) {
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let kinds: &[&str] = if namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    c.one_of("roleRef.kind", str_of(role_ref, "kind"), kinds);
    if str_of(role_ref, "apiGroup") != "rbac.authorization.k8s.io" {
        c.not_supported("roleRef.apiGroup", str_of(role_ref, "apiGroup"), &["rbac.authorization.k8s.io"]);
    }
    if str_of(role_ref, "name").is_empty() {
        c.required("roleRef.name", "");
    }
    for (i, subject) in array_of(obj, "subjects").iter().enumerate() {
        let p = index("subjects", i);
        c.one_of(&child(&p, "kind"), str_of(subject, "kind"), &["ServiceAccount", "User", "Group"]);
        if str_of(subject, "name").is_empty() {
            c.required(&child(&p, "name"), "");
        }
    }
    if let Some(old) = old {
        if normalized(obj.get("roleRef")) != normalized(old.get("roleRef")) {
            c.invalid("roleRef", &go_value(role_ref), "cannot change roleRef");
        }
    }
}

/// Checks a cron schedule as the CronJob controller's parser accepts it: five fields or a
/// `@`-descriptor, no time zone prefix.
pub(super) fn check_cron_schedule(schedule: &str) -> Result<(), String> {
    if schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if let Some(descriptor) = schedule.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
            d if d.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {schedule}")),
        };
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: {schedule}", fields.len()));
    }
    const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str]); 5] = [(0, 59, &[]), (0, 23, &[]), (1, 31, &[]), (1, 12, MONTHS), (0, 6, DAYS)];
    for (field, (min, max, names)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            let (range, step) = part.split_once('/').map_or((part, None), |(r, s)| (r, Some(s)));
            if let Some(step) = step {
                if step.parse::<u32>().map_or(true, |s| s == 0) {
                    return Err(format!("failed to parse int from {step}: {schedule}"));
                }
            }
            if range == "*" || range == "?" {
                continue;
            }
            let value = |s: &str| -> Result<u32, String> {
                let lower = s.to_ascii_lowercase();
                let n = match names.iter().position(|n| *n == lower) {
                    Some(pos) => pos as u32 + if names.len() == 12 { 1 } else { 0 },
                    None => s.parse::<u32>().map_err(|_| format!("failed to parse int from {s}: {schedule}"))?,
                };
                if n < min || n > max {
                    return Err(format!("value ({n}) out of range [{min}, {max}]: {schedule}"));
                }
                Ok(n)
            };
            let (lo, hi) = range.split_once('-').map_or((range, range), |(a, b)| (a, b));
            if value(lo)? > value(hi)? {
                return Err(format!("beginning of range after end: {schedule}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules() {
        for ok in ["*/5 * * * *", "0 0 * * 0", "30 2 1-15 jan,JUL mon-fri", "@hourly", "@every 5m", "0 */2 * * *"] {
            assert_eq!(check_cron_schedule(ok), Ok(()), "{ok}");
        }
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "TZ=UTC * * * * *",
            "@sometimes",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
        ] {
            assert!(check_cron_schedule(bad).is_err(), "{bad}");
        }
    }
}
