//! The built-in resource types the API serves: their group, version, kind, scope, names and
//! subresources. Discovery, routing and storage keys are all derived from this one table.
//!
//! Pure data; must not depend on the HTTP layer or the store.

/// A subresource of a resource (`pods/status`, `deployments/scale`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    /// Group, version and kind of the subresource's request and response bodies.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// One resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    /// Plural lower-case name used in URLs (`pods`).
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
}

impl ResourceDef {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`, as upstream names resources in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Store key prefix for all objects of this resource (`/registry/core/pods/`).
    pub fn key_prefix(&self) -> String {
        let group = if self.group.is_empty() { "core" } else { self.group };
        format!("/registry/{group}/{}/", self.resource)
    }

    /// Store key prefix for one namespace (`/registry/core/pods/default/`).
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("{}{namespace}/", self.key_prefix())
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }

    /// Verbs the collection and item endpoints support.
    pub fn verbs(&self) -> &'static [&'static str] {
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const SCALE_VERBS: &[&str] = &["get", "patch", "update"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource { name: "status", group, version, kind, verbs: STATUS_VERBS }
}

const fn scale() -> Subresource {
    Subresource { name: "scale", group: "autoscaling", version: "v1", kind: "Scale", verbs: SCALE_VERBS }
}

#[allow(clippy::too_many_arguments)] // a table row; named fields would triple the table's length
const fn def(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceDef {
    ResourceDef { group, version, resource, singular, kind, namespaced, short_names, categories, subresources }
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const NO_SUB: &[Subresource] = &[];

/// Every served resource, in discovery order.
pub static RESOURCES: &[ResourceDef] = &[
    def("", "v1", "bindings", "binding", "Binding", true, NONE, NONE, NO_SUB),
    def("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], NONE, NO_SUB),
    def("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], NONE, NO_SUB),
    def("", "v1", "events", "event", "Event", true, &["ev"], NONE, NO_SUB),
    def("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], NONE, &[status("", "v1", "Namespace")]),
    def("", "v1", "nodes", "node", "Node", false, &["no"], NONE, &[status("", "v1", "Node")]),
    def(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        NONE,
        &[status("", "v1", "PersistentVolumeClaim")],
    ),
    def(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        NONE,
        &[status("", "v1", "PersistentVolume")],
    ),
    def(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        ALL,
        &[
            Subresource { name: "binding", group: "", version: "v1", kind: "Binding", verbs: &["create"] },
            Subresource { name: "eviction", group: "policy", version: "v1", kind: "Eviction", verbs: &["create"] },
            Subresource { name: "exec", group: "", version: "v1", kind: "PodExecOptions", verbs: &["create", "get"] },
            Subresource { name: "log", group: "", version: "v1", kind: "Pod", verbs: &["get"] },
            status("", "v1", "Pod"),
        ],
    ),
    def("", "v1", "secrets", "secret", "Secret", true, NONE, NONE, NO_SUB),
    def("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], NONE, NO_SUB),
    def("", "v1", "services", "service", "Service", true, &["svc"], ALL, &[status("", "v1", "Service")]),
    def("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, NONE, NONE, NO_SUB),
    def("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, &["ds"], ALL, &[status("apps", "v1", "DaemonSet")]),
    def(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        ALL,
        &[scale(), status("apps", "v1", "Deployment")],
    ),
    def(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        ALL,
        &[scale(), status("apps", "v1", "ReplicaSet")],
    ),
    def(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        ALL,
        &[scale(), status("apps", "v1", "StatefulSet")],
    ),
    def("batch", "v1", "cronjobs", "cronjob", "CronJob", true, &["cj"], ALL, &[status("batch", "v1", "CronJob")]),
    def("batch", "v1", "jobs", "job", "Job", true, NONE, ALL, &[status("batch", "v1", "Job")]),
    def("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, NONE, NONE, NO_SUB),
    def("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, NONE, NONE, NO_SUB),
    def(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        NONE,
        &[status("policy", "v1", "PodDisruptionBudget")],
    ),
    def(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        NONE,
        NONE,
        NO_SUB,
    ),
    def("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, NONE, NONE, NO_SUB),
    def("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, NONE, NONE, NO_SUB),
    def("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, NONE, NONE, NO_SUB),
];

/// The API groups other than core, in discovery order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// Resources of one group-version.
pub fn in_group_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static ResourceDef> + 'a {
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

/// Looks up a resource by group, version and plural name.
pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// Looks up a resource by group and kind.
pub fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.group == group && r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_keys_are_disjoint() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(!(a.group == b.group && a.resource == b.resource), "duplicate {}", a.qualified());
                assert!(!a.key_prefix().starts_with(&b.key_prefix()) && !b.key_prefix().starts_with(&a.key_prefix()));
            }
        }
    }

    #[test]
    fn keys_follow_scope() {
        let pods = find("", "v1", "pods").expect("pods");
        assert_eq!(pods.key(Some("default"), "web"), "/registry/core/pods/default/web");
        let nodes = find("", "v1", "nodes").expect("nodes");
        assert_eq!(nodes.key(None, "n1"), "/registry/core/nodes/n1");
        let deploy = find_kind("apps", "Deployment").expect("deployments");
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.qualified(), "deployments.apps");
        assert!(deploy.subresource("scale").is_some());
        assert!(groups().contains(&"rbac.authorization.k8s.io"));
    }
}
