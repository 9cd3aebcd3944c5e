//! The kinds the garbage collector knows: those the shared informers cache. A kind maps to its API
//! resource (for live reads, patches and deletes through the dynamic API), its scope, and the cached
//! metadata of its objects.

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, PersistentVolumeClaim, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ApiResource;

use crate::runtime::{InformerSet, ObjectKey};

macro_rules! kinds {
    ($($variant:ident => $ty:ty, $field:ident, $namespaced:expr;)*) => {
        /// A kind cached by the shared informers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($variant,)*
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The API resource of the kind.
            pub fn api_resource(self) -> ApiResource {
                match self {
                    $(Kind::$variant => ApiResource::erase::<$ty>(&()),)*
                }
            }

            pub fn namespaced(self) -> bool {
                match self {
                    $(Kind::$variant => $namespaced,)*
                }
            }

            /// The cached metadata of the object `key` of this kind.
            pub fn cached_meta(self, informers: &InformerSet, key: &ObjectKey) -> Option<ObjectMeta> {
                match self {
                    $(Kind::$variant => informers.$field.get(key).map(|o| o.metadata.clone()),)*
                }
            }
        }
    };
}

kinds! {
    Pod => Pod, pods, true;
    Node => Node, nodes, false;
    Namespace => Namespace, namespaces, false;
    Service => Service, services, true;
    Endpoints => Endpoints, endpoints, true;
    EndpointSlice => EndpointSlice, endpoint_slices, true;
    ServiceAccount => ServiceAccount, service_accounts, true;
    PersistentVolumeClaim => PersistentVolumeClaim, persistent_volume_claims, true;
    ReplicaSet => ReplicaSet, replica_sets, true;
    Deployment => Deployment, deployments, true;
    DaemonSet => DaemonSet, daemon_sets, true;
    StatefulSet => StatefulSet, stateful_sets, true;
    ControllerRevision => ControllerRevision, controller_revisions, true;
    Job => Job, jobs, true;
    CronJob => CronJob, cron_jobs, true;
    PodDisruptionBudget => PodDisruptionBudget, pod_disruption_budgets, true;
    Lease => Lease, node_leases, true;
}

impl Kind {
    /// The kind an owner reference's `apiVersion` and `kind` name (any version of the group).
    pub fn of_reference(api_version: &str, kind: &str) -> Option<Kind> {
        let group = |v: &str| v.rsplit_once('/').map_or("", |(g, _)| g).to_string();
        let wanted = group(api_version);
        Kind::ALL.iter().copied().find(|k| {
            let r = k.api_resource();
            r.kind == kind && r.group == wanted
        })
    }

    /// The key of an object of this kind named `name`, referenced from an object in `namespace`.
    pub fn key(self, namespace: &str, name: &str) -> ObjectKey {
        if self.namespaced() {
            ObjectKey::new(namespace, name)
        } else {
            ObjectKey::cluster(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn owner_references_resolve_by_group_and_kind() {
        let cases = [
            ("apps/v1", "ReplicaSet", Some(Kind::ReplicaSet)),
            ("apps/v1beta2", "Deployment", Some(Kind::Deployment)),
            ("v1", "Node", Some(Kind::Node)),
            ("v1", "Pod", Some(Kind::Pod)),
            ("batch/v1", "Job", Some(Kind::Job)),
            ("example.com/v1", "ReplicaSet", None),
            ("v1", "ConfigMap", None),
        ];
        for (api_version, kind, want) in cases {
            assert_eq!(Kind::of_reference(api_version, kind), want, "{api_version} {kind}");
        }
        assert_eq!(Kind::Deployment.api_resource().plural, "deployments");
        assert_eq!(Kind::Endpoints.api_resource().plural, "endpoints");
        assert!(!Kind::Node.namespaced());
    }
}
