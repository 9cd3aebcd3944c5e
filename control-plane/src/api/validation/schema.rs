//! Schema checks by round-tripping a body through the `k8s-openapi` struct of its kind: fields
//! the struct does not know are "unknown fields", and values of the wrong JSON type are decode
//! errors worded like Go's `encoding/json`.
//!
//! Why a round trip: the generated deserializers ignore unknown keys and the serializers write back
//! every known one, so a key present in the input and absent from the output is exactly a key the
//! schema does not know. Free-keyed maps (labels, data, nodeSelector, ...) round-trip whole.
//! `serde_json::Value` keeps only the last of duplicate keys, so duplicates are not reported.
//!
//! Must not depend on the store or the HTTP layer.

use std::fmt::Write as _;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};

use super::mode::{warnings, FieldValidation, ValidationError};

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Decodes a document into the kind's struct and serializes it back.
type Decoder = fn(&str) -> Result<Value, serde_json::Error>;

fn typed<T: DeserializeOwned + Serialize>(text: &str) -> Result<Value, serde_json::Error> {
    let decoded: T = serde_json::from_str(text)?;
    serde_json::to_value(decoded)
}

/// The struct of every kind the API serves (and of the subresource bodies it accepts).
fn decoder(group: &str, version: &str, kind: &str) -> Option<Decoder> {
    use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, discovery, policy, rbac};
    let d: Decoder = match (group, version, kind) {
        ("", "v1", "Binding") => typed::<core::v1::Binding>,
        ("", "v1", "ConfigMap") => typed::<core::v1::ConfigMap>,
        ("", "v1", "Endpoints") => typed::<core::v1::Endpoints>,
        ("", "v1", "Event") => typed::<core::v1::Event>,
        ("", "v1", "Namespace") => typed::<core::v1::Namespace>,
        ("", "v1", "Node") => typed::<core::v1::Node>,
        ("", "v1", "PersistentVolumeClaim") => typed::<core::v1::PersistentVolumeClaim>,
        ("", "v1", "PersistentVolume") => typed::<core::v1::PersistentVolume>,
        ("", "v1", "Pod") => typed::<core::v1::Pod>,
        ("", "v1", "Secret") => typed::<core::v1::Secret>,
        ("", "v1", "ServiceAccount") => typed::<core::v1::ServiceAccount>,
        ("", "v1", "Service") => typed::<core::v1::Service>,
        ("apps", "v1", "DaemonSet") => typed::<apps::v1::DaemonSet>,
        ("apps", "v1", "Deployment") => typed::<apps::v1::Deployment>,
        ("apps", "v1", "ReplicaSet") => typed::<apps::v1::ReplicaSet>,
        ("apps", "v1", "StatefulSet") => typed::<apps::v1::StatefulSet>,
        ("batch", "v1", "CronJob") => typed::<batch::v1::CronJob>,
        ("batch", "v1", "Job") => typed::<batch::v1::Job>,
        ("coordination.k8s.io", "v1", "Lease") => typed::<coordination::v1::Lease>,
        ("discovery.k8s.io", "v1", "EndpointSlice") => typed::<discovery::v1::EndpointSlice>,
        ("policy", "v1", "PodDisruptionBudget") => typed::<policy::v1::PodDisruptionBudget>,
        ("policy", "v1", "Eviction") => typed::<policy::v1::Eviction>,
        ("autoscaling", "v1", "Scale") => typed::<autoscaling::v1::Scale>,
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => typed::<rbac::v1::ClusterRoleBinding>,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => typed::<rbac::v1::ClusterRole>,
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => typed::<rbac::v1::RoleBinding>,
        ("rbac.authorization.k8s.io", "v1", "Role") => typed::<rbac::v1::Role>,
        _ => return None,
    };
    Some(d)
}

/// Decodes `obj` against the schema of `group/version, Kind=kind` and returns the paths of the
/// fields it does not know, in upstream form without a leading dot
/// (`spec.template.spec.containers[0].imagee`). A value of the wrong type is a
/// [`ValidationError::Decode`] (upstream: 400 BadRequest). Kinds without a known schema pass with
/// no unknown fields. `apiVersion` and `kind` are not checked here (`objects::check_type` does).
pub fn check_schema(group: &str, version: &str, kind: &str, obj: &Value) -> Result<Vec<String>, ValidationError> {
    let Some(decode) = decoder(group, version, kind) else { return Ok(Vec::new()) };
    let input = prepared(group, version, kind, obj);
    let (text, lines) = emit(&input);
    match decode(&text) {
        Ok(output) => {
            let mut unknown = Vec::new();
            diff(&input, &output, &mut Vec::new(), &mut unknown);
            Ok(unknown)
        }
        Err(e) => {
            let path = e.line().checked_sub(1).and_then(|l| lines.get(l)).cloned().unwrap_or_default();
            let detail = go_detail(decode, &input, kind, &path, &e);
            Err(ValidationError::Decode { kind: kind.to_string(), version: version.to_string(), detail })
        }
    }
}

/// The unknown fields of `obj` (see [`check_schema`]); empty when the body does not decode at all,
/// which [`check_schema`] reports.
pub fn unknown_fields(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<String> {
    check_schema(group, version, kind, obj).unwrap_or_default()
}

/// What the request gets for its unknown fields under `mode`: `Ok` with the `Warning` header texts
/// (`unknown field "spec.foo"`; none under `Ignore`), or the 400 [`ValidationError::Strict`].
/// Upstream drops unknown fields before storing under every mode; see [`prune_unknown_fields`].
pub fn unknown_field_outcome(
    mode: FieldValidation,
    kind: &str,
    version: &str,
    fields: Vec<String>,
) -> Result<Vec<String>, ValidationError> {
    match mode {
        _ if fields.is_empty() => Ok(Vec::new()),
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(warnings(&fields)),
        FieldValidation::Strict => {
            Err(ValidationError::Strict { kind: kind.to_string(), version: version.to_string(), fields })
        }
    }
}

/// Removes the fields the kind's schema does not know from `obj`, as upstream's decoder drops them.
/// Leaves `obj` untouched when it does not decode.
pub fn prune_unknown_fields(group: &str, version: &str, kind: &str, obj: &mut Value) {
    let Some(decode) = decoder(group, version, kind) else { return };
    let input = prepared(group, version, kind, obj);
    let Ok(output) = decode(&emit(&input).0) else { return };
    prune(obj, &output);
}

fn prune(input: &mut Value, output: &Value) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            i.retain(|k, v| v.is_null() || o.contains_key(k));
            for (k, v) in i.iter_mut() {
                if let Some(ov) = o.get(k) {
                    prune(v, ov);
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (iv, ov) in i.iter_mut().zip(o) {
                prune(iv, ov);
            }
        }
        _ => {}
    }
}

/// A copy of `obj` as the decoder should see it: Go decodes `null` as the zero value, so nulls are
/// dropped, and `apiVersion`/`kind` are set to the expected ones (checked elsewhere).
fn prepared(group: &str, version: &str, kind: &str, obj: &Value) -> Value {
    let mut input = obj.clone();
    strip_nulls(&mut input);
    if let Some(o) = input.as_object_mut() {
        let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        o.insert("apiVersion".into(), Value::String(api_version));
        o.insert("kind".into(), Value::String(kind.to_string()));
    }
    input
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|_, v| !v.is_null());
            o.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Keys in `input` that `output` lacks, recursively.
fn diff(input: &Value, output: &Value, path: &mut Vec<Seg>, unknown: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                path.push(Seg::Key(k.clone()));
                match o.get(k) {
                    None => unknown.push(display(path)),
                    Some(ov) => diff(v, ov, path, unknown),
                }
                path.pop();
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                path.push(Seg::Index(n));
                diff(iv, ov, path, unknown);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `spec.containers[0].image`.
fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// Writes `v` as JSON with every member and element on its own line, and returns the path each
/// line belongs to, so a decode error's line number names the field it is about.
fn emit(v: &Value) -> (String, Vec<Vec<Seg>>) {
    let mut text = String::new();
    let mut lines = vec![Vec::new()];
    emit_into(v, &mut Vec::new(), &mut text, &mut lines);
    (text, lines)
}

fn emit_into(v: &Value, path: &mut Vec<Seg>, text: &mut String, lines: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Object(o) => {
            text.push('{');
            for (n, (k, child)) in o.iter().enumerate() {
                if n > 0 {
                    text.push(',');
                }
                path.push(Seg::Key(k.clone()));
                text.push('\n');
                lines.push(path.clone());
                text.push_str(&Value::String(k.clone()).to_string());
                text.push(':');
                emit_into(child, path, text, lines);
                path.pop();
            }
            if !o.is_empty() {
                text.push('\n');
                lines.push(path.clone());
            }
            text.push('}');
        }
        Value::Array(a) => {
            text.push('[');
            for (n, child) in a.iter().enumerate() {
                if n > 0 {
                    text.push(',');
                }
                path.push(Seg::Index(n));
                text.push('\n');
                lines.push(path.clone());
                emit_into(child, path, text, lines);
                path.pop();
            }
            if !a.is_empty() {
                text.push('\n');
                lines.push(path.clone());
            }
            text.push(']');
        }
        scalar => text.push_str(&scalar.to_string()),
    }
}

/// The decode error in Go's words where it maps (`json: cannot unmarshal string into Go struct
/// field DeploymentSpec.spec.replicas of type int32`), else serde's message with the field path.
fn go_detail(decode: Decoder, input: &Value, kind: &str, path: &[Seg], err: &serde_json::Error) -> String {
    let full = err.to_string();
    let msg = full.rfind(" at line ").map_or(full.as_str(), |at| &full[..at]);
    let Some((got, expected)) = msg.strip_prefix("invalid type: ").and_then(|m| m.split_once(", expected ")) else {
        return format!("error decoding {}: {msg}", display(path));
    };
    let go_got = if got.starts_with("string") {
        "string".to_string()
    } else if let Some(f) = got.strip_prefix("floating point `") {
        format!("number {}", f.trim_end_matches('`'))
    } else if got.starts_with("integer") {
        "number".to_string()
    } else if got.starts_with("boolean") {
        "bool".to_string()
    } else if got.starts_with("map") {
        "object".to_string()
    } else if got.starts_with("sequence") {
        "array".to_string()
    } else {
        got.to_string()
    };
    let go_type = match expected {
        "i32" => "int32".to_string(),
        "i64" => "int64".to_string(),
        "f64" => "float64".to_string(),
        "a string" => "string".to_string(),
        "a boolean" => "bool".to_string(),
        "a sequence" => "[]interface {}".to_string(),
        "a map" => "map[string]string".to_string(),
        name if is_type_name(name) => format!("v1.{name}"),
        other => other.to_string(),
    };
    let (struct_name, field_keys) = enclosing_struct(decode, input, kind, path);
    format!("json: cannot unmarshal {go_got} into Go struct field {struct_name}.{field_keys} of type {go_type}")
}

fn is_type_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The Go struct holding the failing field and the field's key path without indices, found by
/// replacing candidate parents with `true` and reading which type the decoder expected there.
fn enclosing_struct(decode: Decoder, input: &Value, kind: &str, path: &[Seg]) -> (String, String) {
    let key_positions: Vec<usize> =
        path.iter().enumerate().filter(|(_, s)| matches!(s, Seg::Key(_))).map(|(n, _)| n).collect();
    let keys = |upto: usize| -> String {
        path[..=upto]
            .iter()
            .filter_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .collect::<Vec<_>>()
            .join(".")
    };
    for &last in key_positions.iter().rev() {
        let parent = &path[..last];
        if parent.is_empty() {
            return (kind.to_string(), keys(last));
        }
        let mut probe = input.clone();
        if let Some(slot) = node_mut(&mut probe, parent) {
            *slot = Value::Bool(true);
        }
        if let Err(e) = decode(&emit(&probe).0) {
            let text = e.to_string();
            let expected = text.split(", expected ").nth(1).and_then(|r| r.split(" at line ").next()).unwrap_or("");
            if is_type_name(expected) {
                return (expected.to_string(), keys(last));
            }
        }
    }
    (kind.to_string(), display(path))
}

fn node_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |node, seg| match seg {
        Seg::Key(k) => node.as_object_mut().and_then(|o: &mut Map<String, Value>| o.get_mut(k)),
        Seg::Index(i) => node.as_array_mut().and_then(|a| a.get_mut(*i)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "web", "creationTimestamp": null, "labels": { "app": "web", "x.io/any-key": "v" } },
            "spec": {
                "replicas": 2,
                "selector": { "matchLabels": { "app": "web" } },
                "strategy": {},
                "template": {
                    "metadata": { "creationTimestamp": null, "labels": { "app": "web" } },
                    "spec": {
                        "containers": [{
                            "name": "nginx", "image": "nginx:1.27", "resources": {},
                            "ports": [{ "containerPort": 80 }],
                            "env": [{ "name": "A", "value": "b" }]
                        }],
                        "nodeSelector": { "disk": "ssd" }
                    }
                }
            },
            "status": {}
        })
    }

    #[test]
    fn known_fields_nulls_and_free_maps_pass() {
        assert_eq!(check_schema("apps", "v1", "Deployment", &deployment()), Ok(vec![]));
        let cm = json!({ "metadata": { "name": "c" }, "data": { "any key": "v" }, "binaryData": { "b": "AAE=" } });
        assert_eq!(unknown_fields("", "v1", "ConfigMap", &cm), Vec::<String>::new());
        let svc = json!({ "metadata": { "name": "s" }, "spec": { "ports": [{ "port": 80, "targetPort": "http" }], "selector": { "a": "b" } } });
        assert_eq!(unknown_fields("", "v1", "Service", &svc), Vec::<String>::new());
        let pod = json!({ "metadata": { "name": "p" }, "spec": { "containers": [{ "name": "c", "image": "i",
            "resources": { "limits": { "cpu": 1, "memory": "1Gi" } } }] } });
        assert_eq!(check_schema("", "v1", "Pod", &pod), Ok(vec![]));
    }

    #[test]
    fn unknown_fields_are_reported_with_upstream_paths() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
        d["spec"]["foo"] = json!({ "bar": 1 });
        d["metadata"]["labelz"] = json!({});
        d["bogus"] = json!(false);
        assert_eq!(
            unknown_fields("apps", "v1", "Deployment", &d),
            vec!["bogus", "metadata.labelz", "spec.foo", "spec.template.spec.containers[0].imagee"]
        );
        prune_unknown_fields("apps", "v1", "Deployment", &mut d);
        assert_eq!(d, deployment());
    }

    #[test]
    fn unknown_kinds_and_missing_type_fields_pass() {
        assert_eq!(check_schema("example.com", "v1", "Widget", &json!({ "x": 1 })), Ok(vec![]));
        let pod = json!({ "metadata": { "name": "p" }, "spec": { "containers": [] } });
        assert_eq!(check_schema("", "v1", "Pod", &pod), Ok(vec![]));
    }

    #[test]
    fn type_errors_read_like_go() {
        let cases: &[(&str, &str, Value, &str)] = &[
            (
                "Deployment",
                "apps",
                json!({ "spec": { "replicas": "three" } }),
                "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
            ),
            (
                "Deployment",
                "apps",
                json!({ "spec": { "template": { "spec": { "containers": [{ "name": "a" }, { "name": "b", "image": 5 }] } } } }),
                "json: cannot unmarshal number into Go struct field Container.spec.template.spec.containers.image of type string",
            ),
            (
                "Pod",
                "",
                json!({ "metadata": { "labels": { "app": 1 } } }),
                "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
            ),
            (
                "Pod",
                "",
                json!({ "spec": "x" }),
                "json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec",
            ),
            (
                "Service",
                "",
                json!({ "spec": { "ports": [{ "port": 1.5 }] } }),
                "json: cannot unmarshal number 1.5 into Go struct field ServicePort.spec.ports.port of type int32",
            ),
        ];
        for (kind, group, body, want) in cases {
            match check_schema(group, "v1", kind, body) {
                Err(ValidationError::Decode { detail, kind: k, .. }) => {
                    assert_eq!(&detail, want);
                    assert_eq!(&k, kind);
                }
                other => panic!("{body}: expected a decode error, got {other:?}"),
            }
        }
        let err = check_schema("apps", "v1", "Deployment", &json!({ "spec": { "replicas": "three" } }))
            .expect_err("type error");
        assert!(err.to_string().starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: json:"));
    }

    #[test]
    fn outcomes_follow_the_mode() {
        let f = || vec!["spec.foo".to_string()];
        assert_eq!(unknown_field_outcome(FieldValidation::Ignore, "Pod", "v1", f()), Ok(vec![]));
        assert_eq!(
            unknown_field_outcome(FieldValidation::Warn, "Pod", "v1", f()),
            Ok(vec!["unknown field \"spec.foo\"".to_string()])
        );
        let err = unknown_field_outcome(FieldValidation::Strict, "Pod", "v1", f()).expect_err("strict");
        assert_eq!(
            err.to_string(),
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.foo\""
        );
        assert_eq!(unknown_field_outcome(FieldValidation::Strict, "Pod", "v1", vec![]), Ok(vec![]));
    }
}
