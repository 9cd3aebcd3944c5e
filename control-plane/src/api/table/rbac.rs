//! Tables for `rbac.authorization.k8s.io`: roles and clusterroles print as upstream's default table
//! (name and RFC 3339 creation time, as there is no printer for them), bindings as `printRoleBinding`.
//!
//! Pure; depends only on the sibling column and format helpers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::columns::{col, wide, Column, Printer, Row, AGE, NAME};
use super::format::{age, list, name, text, time};

/// The printer for an RBAC resource.
pub(super) fn printer(resource: &str) -> Option<Printer> {
    match resource {
        "roles" | "clusterroles" => Some(Printer { columns: ROLE, row: role }),
        "rolebindings" | "clusterrolebindings" => Some(Printer { columns: BINDING, row: binding }),
        _ => None,
    }
}

const ROLE: &[Column] = &[
    NAME,
    col(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
];

fn role(role: &Value, _now: DateTime<Utc>) -> Row {
    // Go formats the zero time when there is none.
    let created = time(role, &["metadata", "creationTimestamp"])
        .map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    Row::from(vec![json!(name(role)), json!(created)])
}

const BINDING: &[Column] = &[
    NAME,
    col("Role", "string", "The role the binding grants, as Kind/name."),
    AGE,
    wide("Users", "string", "Users in the binding"),
    wide("Groups", "string", "Groups in the binding"),
    wide("ServiceAccounts", "string", "ServiceAccounts in the binding"),
];

fn binding(binding: &Value, now: DateTime<Utc>) -> Row {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list(binding, &["subjects"]) {
        let subject_name = text(subject, &["name"]);
        match text(subject, &["kind"]) {
            "User" => users.push(subject_name.to_owned()),
            "Group" => groups.push(subject_name.to_owned()),
            "ServiceAccount" => accounts.push(format!("{}/{subject_name}", text(subject, &["namespace"]))),
            _ => {}
        }
    }
    let role_ref = format!("{}/{}", text(binding, &["roleRef", "kind"]), text(binding, &["roleRef", "name"]));
    Row::from(vec![
        json!(name(binding)),
        json!(role_ref),
        json!(age(binding, now)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(accounts.join(", ")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").expect("time").with_timezone(&Utc)
    }

    #[test]
    fn roles_show_creation_time_and_bindings_their_subjects() {
        let r = json!({"metadata": {"name": "admin", "creationTimestamp": "2024-05-01T10:00:00.5+02:00"}});
        assert_eq!(role(&r, now()).cells, [json!("admin"), json!("2024-05-01T08:00:00Z")]);
        assert_eq!(role(&json!({}), now()).cells[1], "0001-01-01T00:00:00Z");

        let b = json!({
            "metadata": {"name": "ops", "creationTimestamp": "2024-04-30T12:00:00Z"},
            "roleRef": {"kind": "ClusterRole", "name": "admin", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [
                {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "system:masters"},
                {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"},
            ],
        });
        assert_eq!(
            binding(&b, now()).cells,
            [
                json!("ops"),
                json!("ClusterRole/admin"),
                json!("24h"),
                json!("alice, bob"),
                json!("system:masters"),
                json!("ci/deployer")
            ]
        );
    }
}
