//! The one error type of server-side apply and field ownership tracking, worded like upstream, with
//! the HTTP status and `Status.reason` the API answers each case with.
//!
//! Owns only the error values and their messages. Must not depend on the HTTP layer: the caller builds
//! the `Status` from [`ApplyError::http_status`], [`ApplyError::reason`], the message and, for
//! conflicts, [`FieldConflict::cause_message`] / [`FieldConflict::path`] as `details.causes`
//! (`type: FieldManagerConflict`).

use thiserror::Error;

/// One field another manager owns with a different value than the apply request sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The owning manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion of the owner's entry (shown for `Update` owners only).
    pub api_version: String,
    /// The subresource the owner wrote through (`status`), if any.
    pub subresource: Option<String>,
    /// The field in upstream notation, e.g. `.spec.replicas`.
    pub path: String,
}

impl FieldConflict {
    /// The owner as upstream prints it: `"kubectl"` for appliers, `"kubectl-edit" using apps/v1` for
    /// updaters, with ` with subresource "status"` when written through a subresource.
    pub fn describe_manager(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            out.push_str(&format!(" with subresource {subresource:?}"));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The `details.causes[].message` of this conflict: `conflict with "kubectl" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.describe_manager())
    }
}

/// Why an apply request (or an ownership update) failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change (upstream: 409 Conflict). Sorted by manager, then
    /// by field.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<FieldConflict>),

    /// An apply PATCH without `?fieldManager=` (upstream: 422 on `PatchOptions`).
    #[error("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")]
    FieldManagerRequired,

    /// A `fieldManager` that is too long or has non-printable characters (upstream: 422).
    #[error("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: {0}")]
    FieldManagerInvalid(String),

    /// `force=true` on a patch that is not an apply (upstream: 422).
    #[error("PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch")]
    ForceWithoutApply,

    /// The apply body is not a usable object: not a map, no apiVersion or kind (upstream: 400).
    #[error("invalid apply configuration: {0}")]
    InvalidConfig(String),

    /// The apply body sets `metadata.managedFields` (upstream: 400).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsInConfig,

    /// An associative list in the apply body repeats a key, or an item lacks a key field
    /// (upstream: 422).
    #[error("{path}: {reason}")]
    InvalidListItem { path: String, reason: String },

    /// Stored `managedFields` that cannot be decoded. Callers of the public functions never see it:
    /// undecodable stored ownership is dropped, as upstream does.
    #[error("invalid managed fields: {0}")]
    InvalidManagedFields(String),
}

impl ApplyError {
    /// The HTTP status code of the Kubernetes `Status` to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            ApplyError::Conflict(_) => 409,
            ApplyError::FieldManagerRequired
            | ApplyError::FieldManagerInvalid(_)
            | ApplyError::ForceWithoutApply
            | ApplyError::InvalidListItem { .. } => 422,
            ApplyError::InvalidConfig(_) | ApplyError::ManagedFieldsInConfig => 400,
            ApplyError::InvalidManagedFields(_) => 500,
        }
    }

    /// The `Status.reason` matching [`ApplyError::http_status`].
    pub fn reason(&self) -> &'static str {
        match self.http_status() {
            409 => "Conflict",
            422 => "Invalid",
            400 => "BadRequest",
            _ => "InternalError",
        }
    }
}

/// `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`, or for several:
/// `Apply failed with 2 conflicts: conflicts with "m" using apps/v1:` followed by `- .path` lines.
fn conflict_message(conflicts: &[FieldConflict]) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: {}: {}", only.cause_message(), only.path);
    }
    let mut managers: Vec<String> = conflicts.iter().map(FieldConflict::describe_manager).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in &managers {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(conflicts.iter().filter(|c| &c.describe_manager() == manager).map(|c| format!("- {}", c.path)));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(manager: &str, operation: &str, path: &str) -> FieldConflict {
        FieldConflict {
            manager: manager.into(),
            operation: operation.into(),
            api_version: "apps/v1".into(),
            subresource: None,
            path: path.into(),
        }
    }

    #[test]
    fn one_conflict_message() {
        let err = ApplyError::Conflict(vec![conflict("kubectl-client-side-apply", "Update", ".spec.replicas")]);
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        assert_eq!((err.http_status(), err.reason()), (409, "Conflict"));
    }

    #[test]
    fn several_conflicts_grouped_by_manager() {
        let err = ApplyError::Conflict(vec![
            conflict("helm", "Apply", ".spec.replicas"),
            conflict("helm", "Apply", ".spec.paused"),
            conflict("kubectl-edit", "Update", ".metadata.labels.app"),
        ]);
        assert_eq!(
            err.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"helm\":\n- .spec.replicas\n- .spec.paused\n\
             conflicts with \"kubectl-edit\" using apps/v1:\n- .metadata.labels.app"
        );
    }

    #[test]
    fn subresource_owner_is_named() {
        let mut c = conflict("kube-controller-manager", "Update", ".status.replicas");
        c.subresource = Some("status".into());
        assert_eq!(
            c.cause_message(),
            "conflict with \"kube-controller-manager\" with subresource \"status\" using apps/v1"
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(ApplyError::FieldManagerRequired.http_status(), 422);
        assert_eq!(ApplyError::ManagedFieldsInConfig.reason(), "BadRequest");
        assert_eq!(ApplyError::InvalidListItem { path: ".x".into(), reason: "y".into() }.reason(), "Invalid");
    }
}
