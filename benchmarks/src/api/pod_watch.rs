//! A pod watch shared by the pod benchmarks (`sched-bench`, `podstart-bench`): one namespace's pods
//! followed with [`super::watch_follow`] (reopened from the last seen resourceVersion when the server
//! ends it), each event decoded into the few fields the benchmarks look at (name, node, phase, `Ready`
//! condition) and handed to a callback with the instant it arrived.
//!
//! Owns only the decoding; what an event means for a benchmark is the caller's.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use super::client::{ClientError, Connector};
use super::watch_follow::{self, Versioned};

pub use super::watch_follow::EventKind as PodEventKind;

/// One pod as a watch event showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub kind: PodEventKind,
    pub name: String,
    pub resource_version: String,
    /// `spec.nodeName`, when bound.
    pub node_name: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// Whether the `Ready` condition is `True`.
    pub ready: bool,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl PodEvent {
    /// Whether the pod is bound to a node.
    pub fn is_bound(&self) -> bool {
        self.node_name.as_deref().is_some_and(|n| !n.is_empty())
    }

    /// Whether the pod runs and is ready: phase `Running`, `Ready=True`, not being deleted.
    pub fn is_running_and_ready(&self) -> bool {
        self.kind != PodEventKind::Deleted && !self.deleting && self.ready && self.phase.as_deref() == Some("Running")
    }

    fn new(kind: PodEventKind, pod: RawPod) -> Self {
        let ready = pod.status.conditions.iter().any(|c| c.kind == "Ready" && c.status == "True");
        PodEvent {
            kind,
            name: pod.metadata.name,
            resource_version: pod.metadata.resource_version,
            node_name: pod.spec.node_name,
            phase: pod.status.phase,
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

#[derive(Deserialize, Default)]
struct RawPod {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    spec: RawSpec,
    #[serde(default)]
    status: RawStatus,
}

impl Versioned for RawPod {
    fn resource_version(&self) -> Option<&str> {
        Some(&self.metadata.resource_version)
    }
}

#[derive(Deserialize, Default)]
struct RawMeta {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
    #[serde(default, rename = "deletionTimestamp")]
    deletion_timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawSpec {
    #[serde(default, rename = "nodeName")]
    node_name: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawStatus {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    conditions: Vec<RawCondition>,
}

#[derive(Deserialize, Default)]
struct RawCondition {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
}

/// Follows the pods of `namespace` from `resource_version` until the future is dropped, calling
/// `on_event` with every pod event and the instant its line was read.
pub async fn follow(
    connector: Arc<Connector>,
    namespace: String,
    resource_version: String,
    mut on_event: impl FnMut(PodEvent, Instant) + Send,
) {
    let path = format!("/api/v1/namespaces/{namespace}/pods?watch=1");
    watch_follow::follow(connector, 0, path, resource_version, |kind, pod: RawPod, at| {
        on_event(PodEvent::new(kind, pod), at)
    })
    .await;
}

/// The resourceVersion of the namespace's pod list, to start a watch from.
pub async fn list_resource_version(connector: &Arc<Connector>, namespace: &str) -> Result<String, ClientError> {
    watch_follow::list_resource_version(connector, &format!("/api/v1/namespaces/{namespace}/pods")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: PodEventKind, node: Option<&str>, phase: &str, ready: &str, deleting: bool) -> PodEvent {
        let mut object = serde_json::json!({
            "metadata": { "name": "p1", "resourceVersion": "42" },
            "spec": { "containers": [] },
            "status": { "phase": phase, "conditions": [
                { "type": "PodScheduled", "status": "True" },
                { "type": "Ready", "status": ready }
            ] }
        });
        if let Some(node) = node {
            object["spec"]["nodeName"] = node.into();
        }
        if deleting {
            object["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        PodEvent::new(kind, serde_json::from_value(object).expect("pod"))
    }

    #[test]
    fn running_and_ready_needs_phase_condition_and_no_deletion() {
        let e = event(PodEventKind::Modified, Some("n1"), "Running", "True", false);
        assert_eq!((e.kind, e.name.as_str(), e.resource_version.as_str()), (PodEventKind::Modified, "p1", "42"));
        assert!(e.is_bound() && e.is_running_and_ready());
        assert!(!event(PodEventKind::Modified, Some("n1"), "Pending", "True", false).is_running_and_ready());
        assert!(!event(PodEventKind::Modified, Some("n1"), "Running", "False", false).is_running_and_ready());
        assert!(!event(PodEventKind::Modified, Some("n1"), "Running", "True", true).is_running_and_ready());
        assert!(!event(PodEventKind::Deleted, Some("n1"), "Running", "True", false).is_running_and_ready());
    }

    #[test]
    fn binding_is_a_non_empty_node_name() {
        assert!(!event(PodEventKind::Added, None, "Pending", "False", false).is_bound());
        assert!(!event(PodEventKind::Added, Some(""), "Pending", "False", false).is_bound());
        assert!(event(PodEventKind::Added, Some("n"), "Pending", "False", false).is_bound());
    }
}
