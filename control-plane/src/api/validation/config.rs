//! Validation of ConfigMaps and Secrets: key formats, total size, secret types, and the
//! `immutable` flag.
//!
//! Pure; must not depend on the store or the HTTP layer.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::fields::{config_key_errors, key, normalized, object_of, quote, str_of, Causes};

/// Upstream's limit on the data of one ConfigMap or Secret.
const MAX_SIZE: usize = 1024 * 1024;
const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

fn check_keys(map: Option<&Map<String, Value>>, path: &str, seen: &mut BTreeSet<String>, c: &mut Causes) {
    for k in map.into_iter().flat_map(Map::keys) {
        for msg in config_key_errors(k) {
            c.invalid(&key(path, k), &quote(k), &msg);
        }
        if !seen.insert(k.clone()) {
            c.invalid(&key(path, k), &quote(k), "duplicate of key present in data");
        }
    }
}

/// Decoded length of a base64 value (the decode check already rejected malformed ones).
fn decoded_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD.decode(s).map_or(s.len(), |b| b.len())
}

fn check_immutable(obj: &Value, old: Option<&Value>, fields: &[&str], c: &mut Causes) {
    let Some(old) = old else { return };
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    if obj.get("immutable") != Some(&Value::Bool(true)) {
        c.forbidden("immutable", IMMUTABLE_MSG);
    }
    for field in fields {
        if normalized(obj.get(*field)) != normalized(old.get(*field)) {
            c.forbidden(field, IMMUTABLE_MSG);
        }
    }
}

pub(super) fn validate_config_map(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let mut seen = BTreeSet::new();
    let data = object_of(obj, "data");
    let binary = object_of(obj, "binaryData");
    check_keys(data, "data", &mut seen, c);
    check_keys(binary, "binaryData", &mut seen, c);
    let size: usize = data.into_iter().flatten().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum::<usize>()
        + binary.into_iter().flatten().map(|(k, v)| k.len() + decoded_len(v)).sum::<usize>();
    if size > MAX_SIZE {
        c.too_long("", MAX_SIZE);
    }
    check_immutable(obj, old, &["data", "binaryData"], c);
}

pub(super) fn validate_secret(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let data = object_of(obj, "data");
    check_keys(data, "data", &mut BTreeSet::new(), c);
    let size: usize = data.into_iter().flatten().map(|(_, v)| decoded_len(v)).sum();
    if size > MAX_SIZE {
        c.too_long("data", MAX_SIZE);
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let secret_type = str_of(obj, "type");
    let required_keys: &[&str] = match secret_type {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => &["username", "password"],
        _ => &[],
    };
    for k in required_keys.iter().filter(|k| !has(k)) {
        c.required(&key("data", k), "");
    }
    if secret_type == "kubernetes.io/service-account-token" {
        let annotation = obj.pointer("/metadata/annotations").and_then(|a| a.get("kubernetes.io/service-account.name"));
        if annotation.and_then(Value::as_str).unwrap_or("").is_empty() {
            c.required("metadata.annotations[kubernetes.io/service-account.name]", "");
        }
    }
    if let Some(old) = old {
        if let Some(old_type) = old.get("type").and_then(Value::as_str) {
            if old_type != secret_type {
                c.invalid("type", &quote(secret_type), "field is immutable");
            }
        }
    }
    check_immutable(obj, old, &["data"], c);
}
