//! Which ConfigMaps and Secrets a pod reads (env, envFrom, volumes, projected volumes), and their
//! contents as plain values. Pure: no API calls here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

/// The two kinds of object a pod can read data from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl ObjectKind {
    /// The lowercase name the kubelet uses in messages (`configmap "x" not found`).
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::Secret => "secret",
        }
    }

    /// The kind as written in API objects (`ConfigMap`).
    pub fn kind(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
        }
    }
}

/// One referenced object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: ObjectKind, namespace: &str, name: &str) -> Self {
        Self { kind, namespace: namespace.to_string(), name: name.to_string() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.noun(), self.namespace, self.name)
    }
}

/// The data of a ConfigMap (`data` and `binaryData`) or a Secret (`data`), as bytes by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectData {
    pub data: BTreeMap<String, Vec<u8>>,
}

impl ObjectData {
    pub fn from_config_map(cm: &ConfigMap) -> Self {
        let mut data: BTreeMap<String, Vec<u8>> =
            cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
        data.extend(cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
        Self { data }
    }

    pub fn from_secret(secret: &Secret) -> Self {
        let mut data: BTreeMap<String, Vec<u8>> =
            secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        // The API folds stringData into data on write; a client-built object may still carry it.
        data.extend(secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes())));
        Self { data }
    }
}

/// What the agent knows of one referenced object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    /// Its watch has not listed it yet.
    Pending,
    /// It does not exist.
    Missing,
    Present(Arc<ObjectData>),
}

/// The referenced objects as seen at one instant, for the pure env and volume code.
pub type ObjectsView = BTreeMap<ObjectRef, ObjectState>;

/// Every ConfigMap and Secret `pod` reads, wherever it is referenced.
pub fn pod_references(pod: &Pod) -> BTreeSet<ObjectRef> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cm = |name: &str| ObjectRef::new(ObjectKind::ConfigMap, namespace, name);
    let secret = |name: &str| ObjectRef::new(ObjectKind::Secret, namespace, name);
    let mut refs = BTreeSet::new();
    let Some(spec) = &pod.spec else { return refs };
    let containers: Vec<&Container> = spec.init_containers.iter().flatten().chain(&spec.containers).collect();
    for c in containers {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.config_map_key_ref {
                refs.insert(cm(&r.name));
            }
            if let Some(r) = &from.secret_key_ref {
                refs.insert(secret(&r.name));
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                refs.insert(cm(&r.name));
            }
            if let Some(r) = &from.secret_ref {
                refs.insert(secret(&r.name));
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            refs.insert(cm(&c.name));
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            refs.insert(secret(s));
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &source.config_map {
                refs.insert(cm(&c.name));
            }
            if let Some(s) = &source.secret {
                refs.insert(secret(&s.name));
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_come_from_env_env_from_and_volumes() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s1"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}},
                    {"name": "C", "value": "plain"}
                ]}],
                "volumes": [
                    {"name": "v1", "configMap": {"name": "cm2"}},
                    {"name": "v2", "secret": {"secretName": "s3"}},
                    {"name": "v3", "projected": {"sources": [{"configMap": {"name": "cm1"}}, {"secret": {"name": "s4"}}]}},
                    {"name": "v4", "emptyDir": {}}
                ]
            }
        }))
        .expect("pod");
        let got: Vec<String> = pod_references(&pod).iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            ["configmap ns/cm1", "configmap ns/cm2", "secret ns/s1", "secret ns/s2", "secret ns/s3", "secret ns/s4"]
        );
    }

    #[test]
    fn config_map_data_includes_binary_data_and_secrets_string_data() {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "data": {"a": "1"}, "binaryData": {"b": "AAE="}
        }))
        .expect("cm");
        let d = ObjectData::from_config_map(&cm);
        assert_eq!(d.data["a"], b"1");
        assert_eq!(d.data["b"], [0u8, 1]);
        let s: Secret = serde_json::from_value(serde_json::json!({
            "data": {"x": "aGk="}, "stringData": {"y": "yo"}
        }))
        .expect("secret");
        let d = ObjectData::from_secret(&s);
        assert_eq!(d.data["x"], b"hi");
        assert_eq!(d.data["y"], b"yo");
    }
}
