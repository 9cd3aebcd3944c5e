//! The one error type of PATCH application, with the HTTP status and Kubernetes `Status.reason`
//! upstream answers for each case.
//!
//! Owns only the error values. Must not depend on the HTTP layer (the caller builds the `Status`
//! body from [`PatchError::http_status`], [`PatchError::reason`] and the message).

use thiserror::Error;

/// Why a PATCH body could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatchError {
    /// The body is not valid JSON, or not the shape its patch format requires (upstream: 400).
    #[error("malformed {format} body: {reason}")]
    Malformed { format: &'static str, reason: String },

    /// A strategic merge patch that is valid JSON but breaks the directive rules: unknown `$patch`
    /// value, list item without its merge key, `$setElementOrder` not matching the list, field
    /// outside `$retainKeys`, mixed list element types (answered 400 here).
    #[error("invalid strategic merge patch at {path}: {reason}")]
    InvalidStrategicPatch { path: String, reason: String },

    /// A JSON patch `test` operation found a different value (upstream: 422).
    #[error("json patch operation {index} (test) failed: the value at path {path:?} does not match")]
    TestFailed { index: usize, path: String },

    /// A JSON patch operation referenced a location that does not exist (upstream: 422).
    #[error("json patch operation {index} ({op}) failed: path {path:?} does not exist")]
    PathNotFound { index: usize, op: &'static str, path: String },

    /// A JSON patch operation failed for another reason, e.g. moving a value into itself (upstream: 422).
    #[error("json patch operation {index} ({op}) failed at path {path:?}: {reason}")]
    OperationFailed { index: usize, op: &'static str, path: String, reason: String },

    /// Strategic merge patch on a kind without patch metadata, e.g. a custom resource (upstream: 415).
    #[error("strategic merge patch format is not supported for kind {kind:?} in group {group:?}")]
    StrategicMergeUnsupported { group: String, kind: String },

    /// The stored object handed in is not a JSON object: a caller bug, not a client error.
    #[error("original object is not a json object")]
    OriginalNotObject,
}

impl PatchError {
    /// The HTTP status code of the Kubernetes `Status` to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::Malformed { .. } | PatchError::InvalidStrategicPatch { .. } => 400,
            PatchError::TestFailed { .. } | PatchError::PathNotFound { .. } | PatchError::OperationFailed { .. } => 422,
            PatchError::StrategicMergeUnsupported { .. } => 415,
            PatchError::OriginalNotObject => 500,
        }
    }

    /// The `Status.reason` matching [`PatchError::http_status`].
    pub fn reason(&self) -> &'static str {
        match self.http_status() {
            400 => "BadRequest",
            422 => "Invalid",
            415 => "UnsupportedMediaType",
            _ => "InternalError",
        }
    }

    pub(crate) fn invalid(path: &str, reason: impl Into<String>) -> PatchError {
        let path = if path.is_empty() { "the object root".to_owned() } else { path.to_owned() };
        PatchError::InvalidStrategicPatch { path, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_and_reasons() {
        let cases = [
            (PatchError::Malformed { format: "json patch", reason: "eof".into() }, 400, "BadRequest"),
            (PatchError::invalid("spec", "x"), 400, "BadRequest"),
            (PatchError::TestFailed { index: 0, path: "/a".into() }, 422, "Invalid"),
            (PatchError::PathNotFound { index: 1, op: "remove", path: "/a".into() }, 422, "Invalid"),
            (
                PatchError::OperationFailed { index: 1, op: "move", path: "/a".into(), reason: "x".into() },
                422,
                "Invalid",
            ),
            (
                PatchError::StrategicMergeUnsupported { group: "x".into(), kind: "Y".into() },
                415,
                "UnsupportedMediaType",
            ),
            (PatchError::OriginalNotObject, 500, "InternalError"),
        ];
        for (err, status, reason) in cases {
            assert_eq!((err.http_status(), err.reason()), (status, reason), "{err}");
        }
    }

    #[test]
    fn messages_name_the_path() {
        assert_eq!(
            PatchError::invalid("spec.containers", "boom").to_string(),
            "invalid strategic merge patch at spec.containers: boom"
        );
        assert_eq!(
            PatchError::invalid("", "boom").to_string(),
            "invalid strategic merge patch at the object root: boom"
        );
        let unsupported = PatchError::StrategicMergeUnsupported { group: "example.com".into(), kind: "Widget".into() };
        assert!(unsupported.to_string().starts_with("strategic merge patch format is not supported"));
    }
}
