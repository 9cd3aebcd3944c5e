//! API errors and the Kubernetes `Status` objects they are answered with: every failure a client sees
//! carries the HTTP code, a `reason` from the upstream catalogue and a readable message.
//!
//! Must not depend on the HTTP server or the store.

use serde_json::{json, Value};

/// One field-level problem of an invalid object (`details.causes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

/// A request the API refuses, with what the client needs to know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` for errors about one object.
    pub details: Option<Details>,
    /// Seconds the client should wait before retrying (503, 429).
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Details {
    pub name: String,
    pub group: String,
    pub kind: String,
    pub causes: Vec<Cause>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None, retry_after: None }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details = Some(Details { name: name.into(), group: group.into(), kind: kind.into(), causes: Vec::new() });
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// `pods "web" not found`; `resource` is the (group-qualified) plural name.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(group, resource)))
            .with_details(group, resource, name)
    }

    /// A path that names no resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(group, resource)))
            .with_details(group, resource, name)
    }

    /// Optimistic-concurrency failure.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// A server-side apply that would take fields other managers own (`force` overrides).
    pub fn apply_conflict(group: &str, resource: &str, name: &str, message: String, causes: Vec<Cause>) -> Self {
        let mut e = Self::new(409, "Conflict", message).with_details(group, resource, name);
        if let Some(d) = e.details.as_mut() {
            d.causes = causes;
        }
        e
    }

    /// A request refused with the given code and reason (for errors of other modules that carry
    /// their own HTTP status).
    pub fn with_code(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, reason, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"))
    }

    /// 422 with field causes, worded like upstream: `Pod "x" is invalid: spec.containers: Required value`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let message = if summary.len() == 1 {
            format!("{kind} \"{name}\" is invalid: {}", summary[0])
        } else {
            format!("{kind} \"{name}\" is invalid: [{}]", summary.join(", "))
        };
        let mut e = Self::new(422, "Invalid", message).with_details(group, kind, name);
        if let Some(d) = e.details.as_mut() {
            d.causes = causes;
        }
        e
    }

    /// The namespace is being deleted, or absent.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        let mut e = Self::new(504, "Timeout", message);
        e.retry_after = Some(1);
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            let mut details = json!({ "name": d.name, "kind": d.kind });
            if !d.group.is_empty() {
                details["group"] = json!(d.group);
            }
            if !d.causes.is_empty() {
                details["causes"] = d
                    .causes
                    .iter()
                    .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
                    .collect();
            }
            if let Some(secs) = self.retry_after {
                details["retryAfterSeconds"] = json!(secs);
            }
            status["details"] = details;
        } else if let Some(secs) = self.retry_after {
            status["details"] = json!({ "retryAfterSeconds": secs });
        }
        status
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A success `Status` (used by deletes of collections and by evictions).
pub fn success(code: u16) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code })
}

impl From<raft_store::StoreError> for ApiError {
    fn from(e: raft_store::StoreError) -> Self {
        use raft_store::{RequestError, StoreError};
        match e {
            StoreError::Request(RequestError::Compacted { requested, compact_revision }) => ApiError::gone(format!(
                "The resourceVersion for the provided list is too old (requested {requested}, compacted to {compact_revision})"
            )),
            StoreError::Request(RequestError::FutureRevision { requested, current }) => ApiError::timeout(format!(
                "Too large resource version: {requested}, current resource version: {current}"
            )),
            StoreError::Request(RequestError::TooLarge { size, limit }) => {
                ApiError::too_large(format!("request is too large: {size} bytes, limit {limit}"))
            }
            StoreError::Request(other) => ApiError::bad_request(other.to_string()),
            StoreError::NoLeader | StoreError::Timeout(_) | StoreError::PeerUnreachable { .. } => {
                ApiError::unavailable(format!("the store cannot commit writes right now: {e}"))
            }
            StoreError::ShuttingDown => ApiError::unavailable("the replica is shutting down"),
            other => ApiError::internal(format!("store: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_upstream() {
        let nf = ApiError::not_found("", "pods", "nope").to_status();
        assert_eq!(nf["message"], "pods \"nope\" not found");
        assert_eq!(nf["code"], 404);
        assert_eq!(nf["reason"], "NotFound");
        assert_eq!(nf["details"]["name"], "nope");
        let c = ApiError::conflict("apps", "deployments", "web", "the object has been modified").to_status();
        assert_eq!(
            c["message"],
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified"
        );
        let inv = ApiError::invalid(
            "",
            "Pod",
            "p",
            vec![Cause {
                reason: "FieldValueRequired",
                field: "spec.containers".into(),
                message: "Required value".into(),
            }],
        );
        assert_eq!(inv.to_status()["message"], "Pod \"p\" is invalid: spec.containers: Required value");
        assert_eq!(inv.to_status()["details"]["causes"][0]["field"], "spec.containers");
        let u = ApiError::unavailable("no quorum").to_status();
        assert_eq!(u["details"]["retryAfterSeconds"], 1);
    }
}
