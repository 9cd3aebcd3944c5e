//! JSON patch (RFC 6902) and JSON merge patch (RFC 7396) bodies, applied with the `json-patch` crate
//! and its errors mapped to [`PatchError`] the way the upstream API server maps them: an undecodable
//! body is 400, an operation that fails on the object is 422.
//!
//! Owns only these two formats. Must not depend on the HTTP layer, the store or the strategic merge
//! patch code.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

use super::error::PatchError;

const JSON_PATCH: &str = "json patch";
const MERGE_PATCH: &str = "merge patch";

/// Applies an RFC 6902 JSON patch body to a copy of `original`. All operations apply or none does.
pub fn apply_json_patch(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|err| PatchError::Malformed { format: JSON_PATCH, reason: err.to_string() })?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &patch.0).map_err(|err| {
        let index = err.operation;
        let path = err.path.to_string();
        let op = patch.0.get(index).map_or("unknown", op_name);
        match err.kind {
            PatchErrorKind::TestFailed => PatchError::TestFailed { index, path },
            PatchErrorKind::InvalidPointer | PatchErrorKind::InvalidFromPointer => {
                PatchError::PathNotFound { index, op, path }
            }
            other => PatchError::OperationFailed { index, op, path, reason: other.to_string() },
        }
    })?;
    Ok(doc)
}

/// Applies an RFC 7396 merge patch body to a copy of `original`. Like upstream, the body must be a
/// JSON object: a patch replacing the whole object by a non-object is refused as malformed.
pub fn apply_merge_patch(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|err| PatchError::Malformed { format: MERGE_PATCH, reason: err.to_string() })?;
    if !patch.is_object() {
        return Err(PatchError::Malformed {
            format: MERGE_PATCH,
            reason: format!("expected a json object, got {patch}"),
        });
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}
        })
    }

    #[test]
    fn json_patch_add_remove_replace_test() {
        let body = br#"[
            {"op": "test", "path": "/metadata/name", "value": "web"},
            {"op": "add", "path": "/metadata/labels/tier", "value": "frontend"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.27"},
            {"op": "remove", "path": "/metadata/labels/app"},
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "sidecar", "image": "busybox"}},
            {"op": "copy", "from": "/metadata/name", "path": "/metadata/generateName"},
            {"op": "move", "from": "/metadata/generateName", "path": "/metadata/annotations"}
        ]"#;
        let patched = apply_json_patch(&pod(), body).expect("applies");
        assert_eq!(patched["metadata"]["labels"], json!({"tier": "frontend"}));
        assert_eq!(patched["spec"]["containers"][0]["image"], "nginx:1.27");
        assert_eq!(patched["spec"]["containers"][1]["name"], "sidecar");
        assert_eq!(patched["metadata"]["annotations"], "web");
        assert!(patched["metadata"].get("generateName").is_none());
    }

    #[test]
    fn json_patch_failing_test_op_is_distinct_and_atomic() {
        let original = pod();
        let body = br#"[
            {"op": "replace", "path": "/metadata/name", "value": "other"},
            {"op": "test", "path": "/spec/containers/0/image", "value": "nginx:1.27"}
        ]"#;
        let err = apply_json_patch(&original, body).expect_err("test fails");
        assert_eq!(err, PatchError::TestFailed { index: 1, path: "/spec/containers/0/image".into() });
        assert_eq!(err.http_status(), 422);
        assert!(err.to_string().contains("/spec/containers/0/image"), "{err}");
    }

    #[test]
    fn json_patch_missing_path() {
        let cases: &[(&[u8], usize, &str, &str)] = &[
            (br#"[{"op": "remove", "path": "/metadata/annotations"}]"#, 0, "remove", "/metadata/annotations"),
            (br#"[{"op": "replace", "path": "/spec/replicas", "value": 2}]"#, 0, "replace", "/spec/replicas"),
            (br#"[{"op": "add", "path": "/nope/deeper", "value": 1}]"#, 0, "add", "/nope/deeper"),
            (br#"[{"op": "add", "path": "/spec/containers/5", "value": {}}]"#, 0, "add", "/spec/containers/5"),
        ];
        for (body, index, op, path) in cases {
            let err = apply_json_patch(&pod(), body).expect_err("missing path");
            assert_eq!(err, PatchError::PathNotFound { index: *index, op, path: (*path).into() }, "{path}");
            assert_eq!(err.reason(), "Invalid");
        }
    }

    #[test]
    fn json_patch_malformed_bodies() {
        let bodies: &[&[u8]] = &[
            b"",
            b"{",
            br#"{"op": "add", "path": "/a", "value": 1}"#,
            br#"[{"op": "frobnicate", "path": "/a"}]"#,
            br#"[{"op": "add", "value": 1}]"#,
        ];
        for body in bodies {
            let err = apply_json_patch(&pod(), body).expect_err("malformed");
            assert!(matches!(err, PatchError::Malformed { format: "json patch", .. }), "{err}");
            assert_eq!(err.http_status(), 400);
        }
    }

    /// The examples of RFC 7396 appendix A whose patch is an object.
    #[test]
    fn merge_patch_rfc7396_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (original, patch, expected) in cases {
            let body = serde_json::to_vec(&patch).expect("serializes");
            assert_eq!(apply_merge_patch(&original, &body).expect("applies"), expected, "{patch}");
        }
    }

    #[test]
    fn merge_patch_labels_and_null_delete() {
        let patched = apply_merge_patch(&pod(), br#"{"metadata":{"labels":{"tier":"web","app":null}}}"#).expect("ok");
        assert_eq!(patched["metadata"]["labels"], json!({"tier": "web"}));
        // Lists are replaced wholesale by a merge patch.
        let patched = apply_merge_patch(&pod(), br#"{"spec":{"containers":[{"name":"x"}]}}"#).expect("ok");
        assert_eq!(patched["spec"]["containers"], json!([{"name": "x"}]));
    }

    #[test]
    fn merge_patch_non_object_or_invalid_body_is_malformed() {
        for body in [&b"[\"c\"]"[..], b"null", b"\"bar\"", b"{not json"] {
            let err = apply_merge_patch(&pod(), body).expect_err("malformed");
            assert!(matches!(err, PatchError::Malformed { format: "merge patch", .. }), "{err}");
        }
    }
}
