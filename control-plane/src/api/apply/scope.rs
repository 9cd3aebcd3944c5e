//! Which part of an object a write through an endpoint may own: the main resource owns everything but
//! `status` and server-maintained metadata, the `status` subresource owns only `status`.
//!
//! Owns only this filter. Must not depend on values, the store or the HTTP layer.

use super::field_set::FieldSet;

/// The endpoint a write came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The resource itself (`/apis/apps/v1/.../deployments/web`).
    Main,
    /// The `status` subresource (`.../deployments/web/status`).
    Status,
}

/// Fields no manager owns whatever the endpoint: the type header and metadata the server maintains.
const NEVER_OWNED: &[&[&str]] = &[
    &["f:apiVersion"],
    &["f:kind"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:resourceVersion"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:deletionTimestamp"],
    &["f:metadata", "f:deletionGracePeriodSeconds"],
    &["f:metadata", "f:selfLink"],
    &["f:metadata", "f:managedFields"],
];

impl Scope {
    /// The subresource name recorded in `managedFields` entries.
    pub fn subresource(self) -> Option<String> {
        match self {
            Scope::Main => None,
            Scope::Status => Some("status".to_owned()),
        }
    }

    /// `set` without the fields this endpoint does not own.
    pub fn tracked(self, set: &FieldSet) -> FieldSet {
        let owned = set.without_prefixes(NEVER_OWNED);
        match self {
            Scope::Main => owned.without_prefixes(&[&["f:status"]]),
            Scope::Status => owned.only_under(&["f:status"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scopes_filter_fields() {
        let all = FieldSet::from_fields_v1(&json!({
            "f:apiVersion": {}, "f:kind": {},
            "f:metadata": {"f:name": {}, "f:uid": {}, "f:resourceVersion": {}, "f:managedFields": {}, "f:labels": {"f:a": {}}},
            "f:spec": {"f:replicas": {}},
            "f:status": {"f:replicas": {}}
        }))
        .expect("valid");
        assert_eq!(
            Scope::Main.tracked(&all).to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:replicas": {}}})
        );
        assert_eq!(Scope::Status.tracked(&all).to_fields_v1(), json!({"f:status": {"f:replicas": {}}}));
        assert_eq!(Scope::Status.subresource().as_deref(), Some("status"));
        assert_eq!(Scope::Main.subresource(), None);
    }
}
