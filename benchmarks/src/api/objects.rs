//! The objects `api-bench` creates and the URLs it uses, as JSON bodies and REST paths.
//!
//! Pods are realistic but inert: one container with resources, probes, env and a volume, and a
//! `schedulerName` that no scheduler serves, so on a real cluster they stay `Pending` (no node ever
//! runs them) and the pod garbage collector leaves them alone.

use bytes::Bytes;
use rand::Rng as _;
use serde_json::json;

/// Scheduler name no scheduler answers to: benchmark pods are never scheduled.
pub const NO_SCHEDULER: &str = "api-bench-unscheduled";

/// The kinds of objects created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// `v1` ConfigMap with two small keys.
    ConfigMap,
    /// `v1` Pod (see the module doc).
    Pod,
}

impl ObjectKind {
    /// REST resource name.
    pub fn resource(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmaps",
            Self::Pod => "pods",
        }
    }

    /// The JSON body of object `name`.
    pub fn body(self, namespace: &str, name: &str) -> Bytes {
        let value = match self {
            Self::ConfigMap => config_map(namespace, name),
            Self::Pod => pod(namespace, name),
        };
        Bytes::from(value.to_string())
    }
}

/// `/api/v1/namespaces/<ns>/<resource>`.
pub fn collection_path(namespace: &str, kind: ObjectKind) -> String {
    format!("/api/v1/namespaces/{namespace}/{}", kind.resource())
}

/// `/api/v1/namespaces/<ns>/<resource>/<name>`.
pub fn object_path(namespace: &str, kind: ObjectKind, name: &str) -> String {
    format!("{}/{name}", collection_path(namespace, kind))
}

/// `api-bench-<8 random lowercase alphanumerics>`.
pub fn random_namespace() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..8).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect();
    format!("api-bench-{suffix}")
}

/// A Namespace labelled as belonging to the benchmark.
pub fn namespace_body(name: &str) -> Bytes {
    let value = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "api-bench" } },
    });
    Bytes::from(value.to_string())
}

fn config_map(namespace: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { "app": "api-bench", "tier": "config" },
        },
        "data": {
            "app.properties": "mode=bench\nreplicas=3\nlog.level=info\n",
            "greeting": "hello from api-bench",
        },
    })
}

fn pod(namespace: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { "app": "api-bench", "tier": "web", "pod-template-hash": "5d8f7c9b6" },
            "annotations": { "api-bench/purpose": "load test object; never scheduled" },
        },
        "spec": {
            "schedulerName": NO_SCHEDULER,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "web",
                "image": "registry.k8s.io/nginx-slim:0.27",
                "imagePullPolicy": "IfNotPresent",
                "ports": [{ "name": "http", "containerPort": 80, "protocol": "TCP" }],
                "env": [
                    { "name": "MODE", "value": "bench" },
                    { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                ],
                "resources": {
                    "requests": { "cpu": "100m", "memory": "64Mi" },
                    "limits": { "cpu": "500m", "memory": "128Mi" },
                },
                "readinessProbe": {
                    "httpGet": { "path": "/healthz", "port": 80 },
                    "periodSeconds": 10,
                },
                "volumeMounts": [{ "name": "cache", "mountPath": "/var/cache/nginx" }],
            }],
            "volumes": [{ "name": "cache", "emptyDir": {} }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_the_object_and_namespace() -> Result<(), serde_json::Error> {
        for kind in [ObjectKind::ConfigMap, ObjectKind::Pod] {
            let v: serde_json::Value = serde_json::from_slice(&kind.body("ns1", "obj-7"))?;
            assert_eq!(v["metadata"]["name"], "obj-7");
            assert_eq!(v["metadata"]["namespace"], "ns1");
        }
        let pod: serde_json::Value = serde_json::from_slice(&ObjectKind::Pod.body("ns1", "p"))?;
        assert_eq!(pod["spec"]["schedulerName"], NO_SCHEDULER);
        assert_eq!(object_path("ns1", ObjectKind::Pod, "p"), "/api/v1/namespaces/ns1/pods/p");
        let ns = random_namespace();
        assert!(ns.starts_with("api-bench-") && ns.len() == 18, "{ns}");
        Ok(())
    }
}
