//! Strategic-merge-patch metadata of the built-in kinds: for each (type, JSON field) the patch strategy,
//! the merge key and the type of the nested value, transcribed from the upstream Go struct tags
//! (`patchStrategy:"merge" patchMergeKey:"name"`) of k8s.io/api core/v1, apps/v1, batch/v1 and
//! meta/v1.
//!
//! Owns only this static table and the (group, kind) → root type mapping. Must not depend on the
//! HTTP layer, the store or the patch algorithm itself (`strategic` reads this table, not the other
//! way round).
//!
//! Only fields whose strategy matters for patching are listed. Any other field is "opaque": a JSON
//! object there is merged key by key, a list there is replaced wholesale, exactly as upstream treats a
//! field without patch tags.

/// How a field is patched, from its `patchStrategy` tag (minus `retainKeys`, see [`FieldMeta`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// No tag: maps merge recursively, lists are replaced.
    Default,
    /// `patchStrategy:"merge"`: lists merge by merge key (or as a set for primitive lists).
    Merge,
    /// `patchStrategy:"replace"`, or a list documented `+listType=atomic` that we record explicitly.
    Replace,
}

/// Patch metadata of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    pub strategy: Strategy,
    /// `patchMergeKey`, for lists of objects with the merge strategy.
    pub merge_key: Option<&'static str>,
    /// `patchStrategy` includes `retainKeys`. Informational when applying: upstream honours a
    /// `$retainKeys` directive on any map; the tag only drives patch generation.
    pub retain_keys: bool,
    /// Type of the field's value, or of each element for a list.
    pub schema: Schema,
}

impl FieldMeta {
    /// A field without patch tags and without a known nested type.
    pub const OPAQUE: FieldMeta =
        FieldMeta { strategy: Strategy::Default, merge_key: None, retain_keys: false, schema: Schema::Opaque };
}

/// The type of a JSON value as far as patching is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// No patch metadata below this point.
    Opaque,
    /// A known struct type.
    Type(ApiType),
}

/// Struct types that carry patch metadata, either directly or further down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiType {
    Pod,
    Node,
    Namespace,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    Event,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Lease,
    EndpointSlice,
    PodDisruptionBudget,
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
    Scale,
    ObjectMeta,
    PodTemplateSpec,
    PodSpec,
    Container,
    PodStatus,
    NodeSpec,
    NodeStatus,
    ServiceSpec,
    DeploymentSpec,
    ReplicaSetSpec,
    StatefulSetSpec,
    DaemonSetSpec,
    JobSpec,
    JobTemplateSpec,
    CronJobSpec,
    /// Any status whose only patch-relevant field is `conditions` merged by `type` (Deployment,
    /// ReplicaSet, StatefulSet, DaemonSet, Job, Namespace, Service, PersistentVolumeClaim,
    /// PodDisruptionBudget).
    ConditionsStatus,
}

/// The root type of a kind, identified by API group ("" for core) and kind. `None` for kinds without
/// strategic merge patch support (custom resources and kinds not listed here).
pub fn root_schema(group: &str, kind: &str) -> Option<Schema> {
    use ApiType as T;
    let t = match (group, kind) {
        ("", "Pod") => T::Pod,
        ("", "Node") => T::Node,
        ("", "Namespace") => T::Namespace,
        ("", "Service") => T::Service,
        ("", "Endpoints") => T::Endpoints,
        ("", "ConfigMap") => T::ConfigMap,
        ("", "Secret") => T::Secret,
        ("", "Event") | ("events.k8s.io", "Event") => T::Event,
        ("", "ServiceAccount") => T::ServiceAccount,
        ("", "PersistentVolume") => T::PersistentVolume,
        ("", "PersistentVolumeClaim") => T::PersistentVolumeClaim,
        ("apps", "Deployment") => T::Deployment,
        ("apps", "ReplicaSet") => T::ReplicaSet,
        ("apps", "StatefulSet") => T::StatefulSet,
        ("apps", "DaemonSet") => T::DaemonSet,
        ("batch", "Job") => T::Job,
        ("batch", "CronJob") => T::CronJob,
        ("coordination.k8s.io", "Lease") => T::Lease,
        ("discovery.k8s.io", "EndpointSlice") => T::EndpointSlice,
        ("policy", "PodDisruptionBudget") => T::PodDisruptionBudget,
        ("rbac.authorization.k8s.io", "Role") => T::Role,
        ("rbac.authorization.k8s.io", "RoleBinding") => T::RoleBinding,
        ("rbac.authorization.k8s.io", "ClusterRole") => T::ClusterRole,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => T::ClusterRoleBinding,
        ("autoscaling", "Scale") => T::Scale,
        _ => return None,
    };
    Some(Schema::Type(t))
}

impl Schema {
    /// Metadata of `field` inside a value of this type; [`FieldMeta::OPAQUE`] when nothing is known.
    pub fn field(self, field: &str) -> FieldMeta {
        match self {
            Schema::Opaque => FieldMeta::OPAQUE,
            Schema::Type(t) => {
                fields(t).iter().find(|(name, _)| *name == field).map_or(FieldMeta::OPAQUE, |(_, meta)| *meta)
            }
        }
    }
}

const fn typed(t: ApiType) -> FieldMeta {
    FieldMeta { strategy: Strategy::Default, merge_key: None, retain_keys: false, schema: Schema::Type(t) }
}

const fn merge_by(key: &'static str) -> FieldMeta {
    FieldMeta { strategy: Strategy::Merge, merge_key: Some(key), retain_keys: false, schema: Schema::Opaque }
}

const fn merge_typed_by(key: &'static str, t: ApiType) -> FieldMeta {
    FieldMeta { strategy: Strategy::Merge, merge_key: Some(key), retain_keys: false, schema: Schema::Type(t) }
}

const fn merge_retain_by(key: &'static str) -> FieldMeta {
    FieldMeta { strategy: Strategy::Merge, merge_key: Some(key), retain_keys: true, schema: Schema::Opaque }
}

/// A primitive list merged as a set (`patchStrategy:"merge"` without a merge key).
const MERGE_PRIMITIVE: FieldMeta =
    FieldMeta { strategy: Strategy::Merge, merge_key: None, retain_keys: false, schema: Schema::Opaque };

/// An atomic list, replaced wholesale.
const REPLACE: FieldMeta =
    FieldMeta { strategy: Strategy::Replace, merge_key: None, retain_keys: false, schema: Schema::Opaque };

/// A map whose stale keys the client clears with `$retainKeys` (`patchStrategy:"retainKeys"`).
const RETAIN_KEYS: FieldMeta =
    FieldMeta { strategy: Strategy::Default, merge_key: None, retain_keys: true, schema: Schema::Opaque };

type Fields = &'static [(&'static str, FieldMeta)];

const METADATA: (&str, FieldMeta) = ("metadata", typed(ApiType::ObjectMeta));
const CONDITIONS_STATUS: (&str, FieldMeta) = ("status", typed(ApiType::ConditionsStatus));
const POD_TEMPLATE: (&str, FieldMeta) = ("template", typed(ApiType::PodTemplateSpec));

fn fields(t: ApiType) -> Fields {
    use ApiType as T;
    match t {
        T::Pod => const { &[METADATA, ("spec", typed(T::PodSpec)), ("status", typed(T::PodStatus))] },
        T::Node => const { &[METADATA, ("spec", typed(T::NodeSpec)), ("status", typed(T::NodeStatus))] },
        T::Service => const { &[METADATA, ("spec", typed(T::ServiceSpec)), CONDITIONS_STATUS] },
        T::Namespace | T::PersistentVolumeClaim | T::PodDisruptionBudget => const { &[METADATA, CONDITIONS_STATUS] },
        // Endpoints.subsets, EndpointSlice.endpoints/ports, Role/ClusterRole.rules and
        // (Cluster)RoleBinding.subjects carry no patch strategy: replaced wholesale.
        T::Endpoints => const { &[METADATA, ("subsets", REPLACE)] },
        T::EndpointSlice => const { &[METADATA, ("endpoints", REPLACE), ("ports", REPLACE)] },
        T::Role | T::ClusterRole => const { &[METADATA, ("rules", REPLACE)] },
        T::RoleBinding | T::ClusterRoleBinding => const { &[METADATA, ("subjects", REPLACE)] },
        T::ServiceAccount => const { &[METADATA, ("secrets", merge_by("name"))] },
        T::ConfigMap | T::Secret | T::Event | T::PersistentVolume | T::Lease | T::Scale => const { &[METADATA] },
        T::Deployment => const { &[METADATA, ("spec", typed(T::DeploymentSpec)), CONDITIONS_STATUS] },
        T::ReplicaSet => const { &[METADATA, ("spec", typed(T::ReplicaSetSpec)), CONDITIONS_STATUS] },
        T::StatefulSet => const { &[METADATA, ("spec", typed(T::StatefulSetSpec)), CONDITIONS_STATUS] },
        T::DaemonSet => const { &[METADATA, ("spec", typed(T::DaemonSetSpec)), CONDITIONS_STATUS] },
        T::Job => const { &[METADATA, ("spec", typed(T::JobSpec)), CONDITIONS_STATUS] },
        T::CronJob => const { &[METADATA, ("spec", typed(T::CronJobSpec))] },
        T::ObjectMeta => const { &[("finalizers", MERGE_PRIMITIVE), ("ownerReferences", merge_by("uid"))] },
        T::PodTemplateSpec => const { &[METADATA, ("spec", typed(T::PodSpec))] },
        T::PodSpec => {
            const {
                &[
                    ("volumes", merge_retain_by("name")),
                    ("initContainers", merge_typed_by("name", T::Container)),
                    ("containers", merge_typed_by("name", T::Container)),
                    ("ephemeralContainers", merge_typed_by("name", T::Container)),
                    ("imagePullSecrets", merge_by("name")),
                    ("hostAliases", merge_by("ip")),
                    ("topologySpreadConstraints", merge_by("topologyKey")),
                    ("schedulingGates", merge_by("name")),
                    ("resourceClaims", merge_retain_by("name")),
                    ("tolerations", REPLACE),
                    ("readinessGates", REPLACE),
                ]
            }
        }
        // Container and EphemeralContainer(Common) share their patch tags.
        T::Container => {
            const {
                &[
                    ("ports", merge_by("containerPort")),
                    ("env", merge_by("name")),
                    ("volumeMounts", merge_by("mountPath")),
                    ("volumeDevices", merge_by("devicePath")),
                    ("envFrom", REPLACE),
                    ("resizePolicy", REPLACE),
                ]
            }
        }
        T::PodStatus => {
            const {
                &[
                    ("conditions", merge_by("type")),
                    ("podIPs", merge_by("ip")),
                    ("hostIPs", merge_by("ip")),
                    ("resourceClaimStatuses", merge_retain_by("name")),
                    ("containerStatuses", REPLACE),
                    ("initContainerStatuses", REPLACE),
                    ("ephemeralContainerStatuses", REPLACE),
                ]
            }
        }
        // Upstream NodeSpec.taints has no patch strategy (atomic): a patch replaces the whole list.
        T::NodeSpec => const { &[("podCIDRs", MERGE_PRIMITIVE), ("taints", REPLACE)] },
        T::NodeStatus => const { &[("conditions", merge_by("type")), ("addresses", merge_by("type"))] },
        T::ServiceSpec => const { &[("ports", merge_by("port"))] },
        T::DeploymentSpec => const { &[POD_TEMPLATE, ("strategy", RETAIN_KEYS)] },
        T::ReplicaSetSpec | T::StatefulSetSpec | T::JobSpec => const { &[POD_TEMPLATE] },
        // Upstream DaemonSetSpec.updateStrategy has no retainKeys tag; a `$retainKeys` directive sent
        // there is honoured anyway, like on any map.
        T::DaemonSetSpec => const { &[POD_TEMPLATE] },
        T::JobTemplateSpec => const { &[METADATA, ("spec", typed(T::JobSpec))] },
        T::CronJobSpec => const { &[("jobTemplate", typed(T::JobTemplateSpec))] },
        T::ConditionsStatus => const { &[("conditions", merge_by("type"))] },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a dotted path of fields from the root of (group, kind).
    fn meta_at(group: &str, kind: &str, path: &str) -> FieldMeta {
        let mut schema = root_schema(group, kind).expect("known kind");
        let mut meta = FieldMeta::OPAQUE;
        for field in path.split('.') {
            meta = schema.field(field);
            schema = meta.schema;
        }
        meta
    }

    #[test]
    fn merge_keys_of_built_in_fields() {
        let cases: &[(&str, &str, &str, Strategy, Option<&str>)] = &[
            ("", "Pod", "metadata.finalizers", Strategy::Merge, None),
            ("", "Pod", "metadata.ownerReferences", Strategy::Merge, Some("uid")),
            ("", "Pod", "spec.containers", Strategy::Merge, Some("name")),
            ("", "Pod", "spec.initContainers", Strategy::Merge, Some("name")),
            ("", "Pod", "spec.ephemeralContainers", Strategy::Merge, Some("name")),
            ("", "Pod", "spec.containers.env", Strategy::Merge, Some("name")),
            ("", "Pod", "spec.containers.ports", Strategy::Merge, Some("containerPort")),
            ("", "Pod", "spec.containers.volumeMounts", Strategy::Merge, Some("mountPath")),
            ("", "Pod", "spec.containers.volumeDevices", Strategy::Merge, Some("devicePath")),
            ("", "Pod", "spec.containers.envFrom", Strategy::Replace, None),
            ("", "Pod", "spec.containers.resizePolicy", Strategy::Replace, None),
            ("", "Pod", "spec.containers.args", Strategy::Default, None),
            ("", "Pod", "spec.volumes", Strategy::Merge, Some("name")),
            ("", "Pod", "spec.imagePullSecrets", Strategy::Merge, Some("name")),
            ("", "Pod", "spec.hostAliases", Strategy::Merge, Some("ip")),
            ("", "Pod", "spec.tolerations", Strategy::Replace, None),
            ("", "Pod", "spec.topologySpreadConstraints", Strategy::Merge, Some("topologyKey")),
            ("", "Pod", "spec.readinessGates", Strategy::Replace, None),
            ("", "Pod", "status.conditions", Strategy::Merge, Some("type")),
            ("", "Pod", "status.containerStatuses", Strategy::Replace, None),
            ("", "Node", "spec.taints", Strategy::Replace, None),
            ("", "Node", "spec.podCIDRs", Strategy::Merge, None),
            ("", "Node", "status.conditions", Strategy::Merge, Some("type")),
            ("", "Node", "status.addresses", Strategy::Merge, Some("type")),
            ("", "Namespace", "status.conditions", Strategy::Merge, Some("type")),
            ("", "Service", "spec.ports", Strategy::Merge, Some("port")),
            ("", "Service", "status.loadBalancer", Strategy::Default, None),
            ("", "Endpoints", "subsets", Strategy::Replace, None),
            ("", "ServiceAccount", "secrets", Strategy::Merge, Some("name")),
            ("", "PersistentVolumeClaim", "status.conditions", Strategy::Merge, Some("type")),
            ("apps", "Deployment", "spec.template.spec.containers", Strategy::Merge, Some("name")),
            ("apps", "Deployment", "spec.template.metadata.finalizers", Strategy::Merge, None),
            ("apps", "Deployment", "status.conditions", Strategy::Merge, Some("type")),
            ("apps", "ReplicaSet", "spec.template.spec.containers.env", Strategy::Merge, Some("name")),
            ("apps", "StatefulSet", "spec.template.spec.volumes", Strategy::Merge, Some("name")),
            ("apps", "DaemonSet", "spec.template.spec.initContainers", Strategy::Merge, Some("name")),
            ("apps", "DaemonSet", "status.conditions", Strategy::Merge, Some("type")),
            ("batch", "Job", "spec.template.spec.containers", Strategy::Merge, Some("name")),
            ("batch", "Job", "status.conditions", Strategy::Merge, Some("type")),
            ("batch", "CronJob", "spec.jobTemplate.spec.template.spec.containers", Strategy::Merge, Some("name")),
            ("discovery.k8s.io", "EndpointSlice", "endpoints", Strategy::Replace, None),
            ("policy", "PodDisruptionBudget", "status.conditions", Strategy::Merge, Some("type")),
            ("rbac.authorization.k8s.io", "Role", "rules", Strategy::Replace, None),
            ("rbac.authorization.k8s.io", "ClusterRole", "rules", Strategy::Replace, None),
            ("rbac.authorization.k8s.io", "RoleBinding", "subjects", Strategy::Replace, None),
            ("", "ConfigMap", "data", Strategy::Default, None),
        ];
        for (group, kind, path, strategy, key) in cases {
            let meta = meta_at(group, kind, path);
            assert_eq!((meta.strategy, meta.merge_key), (*strategy, *key), "{kind}.{path}");
        }
    }

    #[test]
    fn retain_keys_fields() {
        assert!(meta_at("apps", "Deployment", "spec.strategy").retain_keys);
        assert!(meta_at("", "Pod", "spec.volumes").retain_keys);
        assert!(!meta_at("", "Pod", "spec.containers").retain_keys);
    }

    #[test]
    fn root_schema_knows_every_supported_kind_and_nothing_else() {
        let supported = [
            ("", "Pod"),
            ("", "Node"),
            ("", "Namespace"),
            ("", "Service"),
            ("", "Endpoints"),
            ("", "ConfigMap"),
            ("", "Secret"),
            ("", "Event"),
            ("", "ServiceAccount"),
            ("", "PersistentVolume"),
            ("", "PersistentVolumeClaim"),
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("batch", "Job"),
            ("batch", "CronJob"),
            ("coordination.k8s.io", "Lease"),
            ("discovery.k8s.io", "EndpointSlice"),
            ("policy", "PodDisruptionBudget"),
            ("rbac.authorization.k8s.io", "Role"),
            ("rbac.authorization.k8s.io", "RoleBinding"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            ("autoscaling", "Scale"),
        ];
        for (group, kind) in supported {
            assert!(root_schema(group, kind).is_some(), "{group}/{kind}");
        }
        for (group, kind) in [("apps", "Pod"), ("", "Deployment"), ("example.com", "Widget"), ("", "pod")] {
            assert!(root_schema(group, kind).is_none(), "{group}/{kind}");
        }
    }
}
