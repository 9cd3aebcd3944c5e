//! Whether a namespace needs its `default` ServiceAccount created.
//!
//! Pure: must not depend on the API client.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};

/// The ServiceAccount every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Whether `namespace` (absent: deleted) lacks the ServiceAccount `existing` and should get it. A
/// terminating namespace gets nothing: the API would refuse the create, and it is being emptied.
pub fn needs_default(namespace: Option<&Namespace>, existing: Option<&ServiceAccount>) -> bool {
    let Some(ns) = namespace else { return false };
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    !terminating && existing.is_none_or(|sa| sa.metadata.deletion_timestamp.is_some())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn ns(deleting: bool, phase: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                deletion_timestamp: deleting.then(|| Time(Timestamp::now())),
                ..Default::default()
            },
            spec: None,
            status: Some(NamespaceStatus { phase: Some(phase.into()), ..Default::default() }),
        }
    }

    fn sa(deleting: bool) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
                deletion_timestamp: deleting.then(|| Time(Timestamp::now())),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn decides_from_namespace_and_account() {
        let cases = [
            ("active namespace without account", Some(ns(false, "Active")), None, true),
            ("active namespace with account", Some(ns(false, "Active")), Some(sa(false)), false),
            ("account being deleted is replaced", Some(ns(false, "Active")), Some(sa(true)), true),
            ("terminating phase", Some(ns(false, "Terminating")), None, false),
            ("deletion timestamp", Some(ns(true, "Active")), None, false),
            ("namespace gone", None, None, false),
        ];
        for (name, namespace, account, want) in cases {
            assert_eq!(needs_default(namespace.as_ref(), account.as_ref()), want, "{name}");
        }
    }
}
