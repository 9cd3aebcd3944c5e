//! Validation of the workload controllers' objects: Deployment, ReplicaSet, StatefulSet,
//! DaemonSet, Job and CronJob (selectors against template labels, strategies, counts, and what
//! an update may change).
//!
//! Pure; must not depend on the store or the HTTP layer.

use serde_json::Value;

use super::fields::{
    child, go_label_selector, go_value, normalized, quote, selector_is_empty, selector_matches, str_of, string_map,
    validate_label_selector, Causes,
};
use super::pod::validate_pod_spec;

/// Which restart policies a kind's pod template may have.
const RESTART_ALWAYS: &[&str] = &["Always"];
const RESTART_JOB: &[&str] = &["OnFailure", "Never"];

fn spec(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

/// `spec.selector` required and non-empty, valid, and selecting the template's labels.
fn validate_selector_and_template(spec: &Value, path: &str, kind_word: &str, restart: &[&str], c: &mut Causes) {
    let sel_path = child(path, "selector");
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => c.required(&sel_path, ""),
        Some(sel) => {
            validate_label_selector(sel, &sel_path, c);
            if selector_is_empty(sel) {
                c.invalid(
                    &sel_path,
                    &go_label_selector(Some(sel)),
                    &format!("empty selector is invalid for {kind_word}"),
                );
            }
        }
    }
    validate_template(spec, path, restart, c);
}

fn validate_template(spec: &Value, path: &str, restart: &[&str], c: &mut Causes) {
    let template = spec.get("template");
    let template_path = child(path, "template");
    let labels = template.and_then(|t| t.get("metadata")).and_then(|m| m.get("labels"));
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null() && !selector_is_empty(s)) {
        if !selector_matches(sel, &string_map(labels)) {
            let shown = labels.map_or("map[string]string(nil)".to_string(), go_value);
            c.invalid(&child(&template_path, "metadata.labels"), &shown, "`selector` does not match template `labels`");
        }
    }
    let pod_spec = template.and_then(|t| t.get("spec"));
    let pod_path = child(&template_path, "spec");
    validate_pod_spec(pod_spec, &pod_path, c);
    let policy = pod_spec.map_or("", |s| str_of(s, "restartPolicy"));
    if !policy.is_empty() && !restart.contains(&policy) {
        // validate_pod_spec already reported values that are not restart policies at all.
        if ["Always", "OnFailure", "Never"].contains(&policy) {
            c.not_supported(&child(&pod_path, "restartPolicy"), policy, restart);
        }
    }
}

/// A `maxSurge`/`maxUnavailable` value: its integer or percentage, if well-formed.
fn int_or_percent(v: Option<&Value>, path: &str, c: &mut Causes) -> Option<(i64, bool)> {
    match v? {
        Value::Number(n) => {
            let n = n.as_i64()?;
            if n < 0 {
                c.invalid(path, &n.to_string(), "must be greater than or equal to 0");
            }
            Some((n, false))
        }
        Value::String(s) => {
            let digits = s.strip_suffix('%').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match digits.and_then(|d| d.parse::<i64>().ok()) {
                Some(n) => Some((n, true)),
                None => {
                    c.invalid(path, &quote(s), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')");
                    None
                }
            }
        }
        _ => None,
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "0".to_string(),
    }
}

fn check_max_unavailable(rolling: &Value, path: &str, c: &mut Causes) -> Option<i64> {
    let p = child(path, "maxUnavailable");
    let (n, percent) = int_or_percent(rolling.get("maxUnavailable"), &p, c)?;
    if percent && n > 100 {
        c.invalid(&p, &quote(&format!("{n}%")), "must not be greater than 100%");
    }
    Some(n)
}

pub(super) fn validate_deployment(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let s = spec(obj);
    c.non_negative(s, "replicas", "spec.replicas");
    c.non_negative(s, "minReadySeconds", "spec.minReadySeconds");
    c.non_negative(s, "revisionHistoryLimit", "spec.revisionHistoryLimit");
    if let Some(deadline) = s.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        let min_ready = s.get("minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
        if deadline <= min_ready {
            c.invalid("spec.progressDeadlineSeconds", &deadline.to_string(), "must be greater than minReadySeconds");
        }
    }
    validate_selector_and_template(s, "spec", "deployment", RESTART_ALWAYS, c);
    let strategy = s.get("strategy").unwrap_or(&Value::Null);
    let strategy_type = str_of(strategy, "type");
    c.one_of("spec.strategy.type", strategy_type, &["Recreate", "RollingUpdate"]);
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match (strategy_type, rolling) {
        ("Recreate", Some(_)) => {
            c.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
        }
        ("RollingUpdate", Some(r)) => {
            let path = "spec.strategy.rollingUpdate";
            let unavailable = check_max_unavailable(r, path, c);
            let surge = int_or_percent(r.get("maxSurge"), &child(path, "maxSurge"), c).map(|(n, _)| n);
            if unavailable.unwrap_or(0) == 0 && surge.unwrap_or(0) == 0 && (unavailable.is_some() || surge.is_some()) {
                c.invalid(
                    &child(path, "maxUnavailable"),
                    &show(r.get("maxUnavailable")),
                    "may not be 0 when `maxSurge` is 0",
                );
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        c.immutable("spec.selector", s.get("selector"), spec(old).get("selector"));
    }
}

pub(super) fn validate_replica_set(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let s = spec(obj);
    c.non_negative(s, "replicas", "spec.replicas");
    c.non_negative(s, "minReadySeconds", "spec.minReadySeconds");
    validate_selector_and_template(s, "spec", "replicaset", RESTART_ALWAYS, c);
    if let Some(old) = old {
        c.immutable("spec.selector", s.get("selector"), spec(old).get("selector"));
    }
}

const STS_UPDATE_MSG: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

pub(super) fn validate_stateful_set(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let s = spec(obj);
    c.non_negative(s, "replicas", "spec.replicas");
    c.non_negative(s, "minReadySeconds", "spec.minReadySeconds");
    c.non_negative(s, "revisionHistoryLimit", "spec.revisionHistoryLimit");
    c.optional_one_of(s, "podManagementPolicy", "spec.podManagementPolicy", &["OrderedReady", "Parallel"]);
    let strategy = s.get("updateStrategy").unwrap_or(&Value::Null);
    let strategy_type = str_of(strategy, "type");
    c.one_of("spec.updateStrategy.type", strategy_type, &["RollingUpdate", "OnDelete"]);
    if let Some(r) = strategy.get("rollingUpdate").filter(|r| !r.is_null()) {
        if strategy_type == "OnDelete" {
            c.invalid(
                "spec.updateStrategy.rollingUpdate",
                &go_value(r),
                "only allowed for updateStrategy 'RollingUpdate'",
            );
        }
        c.non_negative(r, "partition", "spec.updateStrategy.rollingUpdate.partition");
    }
    for (field, key) in [
        ("spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "whenDeleted"),
        ("spec.persistentVolumeClaimRetentionPolicy.whenScaled", "whenScaled"),
    ] {
        if let Some(policy) = s.get("persistentVolumeClaimRetentionPolicy") {
            c.optional_one_of(policy, key, field, &["Retain", "Delete"]);
        }
    }
    validate_selector_and_template(s, "spec", "statefulset", RESTART_ALWAYS, c);
    if let Some(old) = old {
        let mutable = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                mutable.iter().for_each(|k| {
                    o.remove(*k);
                });
            }
            normalized(Some(&v))
        };
        if strip(s) != strip(spec(old)) {
            c.forbidden("spec", STS_UPDATE_MSG);
        }
    }
}

pub(super) fn validate_daemon_set(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let s = spec(obj);
    c.non_negative(s, "minReadySeconds", "spec.minReadySeconds");
    c.non_negative(s, "revisionHistoryLimit", "spec.revisionHistoryLimit");
    validate_selector_and_template(s, "spec", "daemonset", RESTART_ALWAYS, c);
    let strategy = s.get("updateStrategy").unwrap_or(&Value::Null);
    let strategy_type = str_of(strategy, "type");
    c.one_of("spec.updateStrategy.type", strategy_type, &["OnDelete", "RollingUpdate"]);
    if let (Some(r), "RollingUpdate") = (strategy.get("rollingUpdate").filter(|r| !r.is_null()), strategy_type) {
        let path = "spec.updateStrategy.rollingUpdate";
        let unavailable = check_max_unavailable(r, path, c).unwrap_or(0);
        let surge = int_or_percent(r.get("maxSurge"), &child(path, "maxSurge"), c).map_or(0, |(n, _)| n);
        if unavailable != 0 && surge != 0 {
            c.invalid(
                &child(path, "maxSurge"),
                &show(r.get("maxSurge")),
                "may not be set when maxUnavailable is non-zero",
            );
        }
        if unavailable == 0 && surge == 0 {
            c.invalid(&child(path, "maxUnavailable"), &show(r.get("maxUnavailable")), "cannot be 0 when maxSurge is 0");
        }
    }
    if let Some(old) = old {
        c.immutable("spec.selector", s.get("selector"), spec(old).get("selector"));
    }
}

/// Job fields shared by Jobs and CronJob job templates.
fn validate_job_spec(s: &Value, path: &str, c: &mut Causes) {
    for field in ["parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished", "backoffLimitPerIndex"] {
        c.non_negative(s, field, &child(path, field));
    }
    c.positive(s, "activeDeadlineSeconds", &child(path, "activeDeadlineSeconds"));
    c.optional_one_of(s, "completionMode", &child(path, "completionMode"), &["NonIndexed", "Indexed"]);
    if str_of(s, "completionMode") == "Indexed" && s.get("completions").is_none_or(Value::is_null) {
        c.required(&child(path, "completions"), "when completion mode is Indexed");
    }
    c.optional_one_of(
        s,
        "podReplacementPolicy",
        &child(path, "podReplacementPolicy"),
        &["TerminatingOrFailed", "Failed"],
    );
    if let Some(sel) = s.get("selector").filter(|v| !v.is_null()) {
        validate_label_selector(sel, &child(path, "selector"), c);
    }
    validate_template(s, path, RESTART_JOB, c);
}

/// A Job created without `manualSelector: true` gets its selector from `generate_job_selector`
/// after its uid is known; until then a missing selector is not an error.
pub(super) fn validate_job(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let s = spec(obj);
    let manual = s.get("manualSelector") == Some(&Value::Bool(true));
    let selector = s.get("selector").filter(|v| !v.is_null());
    if manual && selector.is_none() {
        c.required("spec.selector", "");
    }
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    if let (false, Some(sel), None, false) = (manual, selector, old, uid.is_empty()) {
        let generated =
            string_map(sel.get("matchLabels")).get("batch.kubernetes.io/controller-uid") == Some(&uid.to_string());
        if !generated {
            c.invalid("spec.selector", &go_label_selector(Some(sel)), "`selector` not auto-generated");
        }
    }
    validate_job_spec(s, "spec", c);
    if let Some(old) = old {
        let old_spec = spec(old);
        c.immutable("spec.selector", s.get("selector"), old_spec.get("selector"));
        c.immutable("spec.completionMode", s.get("completionMode"), old_spec.get("completionMode"));
        c.immutable("spec.podFailurePolicy", s.get("podFailurePolicy"), old_spec.get("podFailurePolicy"));
        if str_of(old_spec, "completionMode") != "Indexed" {
            c.immutable("spec.completions", s.get("completions"), old_spec.get("completions"));
        }
        let suspended = old_spec.get("suspend") == Some(&Value::Bool(true));
        if !suspended {
            c.immutable("spec.template", s.get("template"), old_spec.get("template"));
        }
    }
}

pub(super) fn validate_cron_job(obj: &Value, c: &mut Causes) {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name.len() > 52 {
        c.invalid("metadata.name", &quote(name), "must be no more than 52 characters");
    }
    let s = spec(obj);
    let schedule = str_of(s, "schedule");
    if schedule.is_empty() {
        c.required("spec.schedule", "");
    } else if let Err(msg) = super::misc::check_cron_schedule(schedule) {
        c.invalid("spec.schedule", &quote(schedule), &msg);
    }
    c.optional_one_of(s, "concurrencyPolicy", "spec.concurrencyPolicy", &["Allow", "Forbid", "Replace"]);
    for field in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        c.non_negative(s, field, &child("spec", field));
    }
    let job_spec = s.get("jobTemplate").and_then(|t| t.get("spec")).unwrap_or(&Value::Null);
    validate_job_spec(job_spec, "spec.jobTemplate.spec", c);
}
