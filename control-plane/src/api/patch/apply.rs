//! The entry point of PATCH handling: picks the patch format from the request's `Content-Type` and
//! applies the body to the stored object.
//!
//! Owns the format dispatch only. Pure: no I/O, no async. Must not depend on the HTTP layer or the
//! store; the caller decodes the stored object, calls [`apply_patch`] and validates/persists the result.

use serde_json::Value;

use super::error::PatchError;
use super::json::{apply_json_patch, apply_merge_patch};
use super::merge_keys::root_schema;
use super::strategic::strategic_merge;

/// The PATCH body formats Kubernetes accepts (server-side apply excepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json`: RFC 6902.
    Json,
    /// `application/merge-patch+json`: RFC 7396.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes strategic merge patch.
    StrategicMerge,
}

impl PatchKind {
    /// The patch format of a `Content-Type` header value; parameters (`; charset=utf-8`) and case are
    /// ignored. `None` for anything else, which the server answers with 415.
    pub fn from_content_type(content_type: &str) -> Option<PatchKind> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        [PatchKind::Json, PatchKind::Merge, PatchKind::StrategicMerge]
            .into_iter()
            .find(|kind| kind.content_type().eq_ignore_ascii_case(media_type))
    }

    /// The media type naming this format.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchKind::Json => "application/json-patch+json",
            PatchKind::Merge => "application/merge-patch+json",
            PatchKind::StrategicMerge => "application/strategic-merge-patch+json",
        }
    }
}

/// Applies `patch_body` in format `kind` to `original`, an object of kind `kind_name` in API group
/// `group` ("" for core), and returns the patched object. `original` is not modified.
pub fn apply_patch(
    kind: PatchKind,
    original: &Value,
    patch_body: &[u8],
    group: &str,
    kind_name: &str,
) -> Result<Value, PatchError> {
    match kind {
        PatchKind::Json => apply_json_patch(original, patch_body),
        PatchKind::Merge => apply_merge_patch(original, patch_body),
        PatchKind::StrategicMerge => {
            let schema = root_schema(group, kind_name).ok_or_else(|| PatchError::StrategicMergeUnsupported {
                group: group.to_owned(),
                kind: kind_name.to_owned(),
            })?;
            let malformed = |reason: String| PatchError::Malformed { format: "strategic merge patch", reason };
            let patch = match serde_json::from_slice(patch_body) {
                Ok(Value::Object(patch)) => patch,
                Ok(other) => return Err(malformed(format!("expected a json object, got {other}"))),
                Err(err) => return Err(malformed(err.to_string())),
            };
            let Value::Object(original) = original.clone() else {
                return Err(PatchError::OriginalNotObject);
            };
            strategic_merge(original, patch, schema).map(Value::Object)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn content_types() {
        let cases = [
            ("application/json-patch+json", Some(PatchKind::Json)),
            ("application/merge-patch+json", Some(PatchKind::Merge)),
            ("application/strategic-merge-patch+json", Some(PatchKind::StrategicMerge)),
            ("application/strategic-merge-patch+json; charset=utf-8", Some(PatchKind::StrategicMerge)),
            (" Application/Merge-Patch+JSON ;charset=UTF-8", Some(PatchKind::Merge)),
            ("application/apply-patch+yaml", None),
            ("application/json", None),
            ("", None),
        ];
        for (content_type, expected) in cases {
            assert_eq!(PatchKind::from_content_type(content_type), expected, "{content_type:?}");
        }
        for kind in [PatchKind::Json, PatchKind::Merge, PatchKind::StrategicMerge] {
            assert_eq!(PatchKind::from_content_type(kind.content_type()), Some(kind));
        }
    }

    #[test]
    fn dispatches_every_format() {
        let node = json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {}});
        let cases: [(PatchKind, &[u8]); 3] = [
            (PatchKind::Json, br#"[{"op":"add","path":"/spec/unschedulable","value":true}]"#),
            (PatchKind::Merge, br#"{"spec":{"unschedulable":true}}"#),
            (PatchKind::StrategicMerge, br#"{"spec":{"unschedulable":true}}"#),
        ];
        for (kind, body) in cases {
            let patched = apply_patch(kind, &node, body, "", "Node").expect("applies");
            assert_eq!(patched["spec"]["unschedulable"], true, "{kind:?}");
            assert_eq!(patched["metadata"]["name"], "n1");
        }
    }

    #[test]
    fn strategic_patch_on_unknown_kind_is_unsupported() {
        let widget = json!({"kind": "Widget", "metadata": {"name": "w"}});
        let err = apply_patch(PatchKind::StrategicMerge, &widget, b"{}", "example.com", "Widget").expect_err("415");
        assert_eq!(err, PatchError::StrategicMergeUnsupported { group: "example.com".into(), kind: "Widget".into() });
        assert_eq!(err.http_status(), 415);
        // The other formats work on any kind.
        let patched = apply_patch(PatchKind::Merge, &widget, br#"{"spec":{"size":2}}"#, "example.com", "Widget")
            .expect("merge patch works on custom resources");
        assert_eq!(patched["spec"]["size"], 2);
    }

    #[test]
    fn strategic_malformed_bodies() {
        let pod = json!({"metadata": {"name": "p"}});
        for body in [&b""[..], b"{", b"[]", b"\"x\"", b"null"] {
            let err = apply_patch(PatchKind::StrategicMerge, &pod, body, "", "Pod").expect_err("malformed");
            assert!(matches!(err, PatchError::Malformed { format: "strategic merge patch", .. }), "{err}");
            assert_eq!(err.http_status(), 400);
        }
    }

    #[test]
    fn strategic_on_non_object_original() {
        let err = apply_patch(PatchKind::StrategicMerge, &json!([1]), b"{}", "", "Pod").expect_err("not an object");
        assert_eq!(err, PatchError::OriginalNotObject);
    }
}
