//! The cluster state placement decides from: nodes and the pods already bound to them, plus a per-call
//! index of pods by node and of nodes by topology domain.
//!
//! Pure: must not depend on the store, HTTP or I/O; callers fill the snapshot.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};

/// Everything placement looks at. `pods` are the bound (`spec.nodeName` set), non-terminal pods; pods
/// without a node name or in phase `Succeeded`/`Failed` are ignored anyway.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
}

impl ClusterSnapshot {
    /// Bound, non-terminal pods grouped by node name.
    pub fn pods_by_node(&self) -> BTreeMap<&str, Vec<&Pod>> {
        let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for pod in &self.pods {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                by_node.entry(node).or_default().push(pod);
            }
        }
        by_node
    }
}

/// A node's name (empty if unset).
pub fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or_default()
}

/// A node's label value, if it has the label.
pub fn node_label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str)
}

/// The upstream label every kubelet sets to the node name, the usual anti-affinity topology key.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A node's value for a topology key: its label, or for [`HOSTNAME_LABEL`] the node name when the label is
/// missing (Gantry's node agent may not set it; every upstream kubelet does, to the node name).
pub fn topology_value<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node_label(node, key).or_else(|| (key == HOSTNAME_LABEL).then(|| node_name(node)))
}

/// The pods in the same topology domain as `node` for `topology_key` (nodes sharing its value); empty when
/// `node` has no value for the key: the term then does not apply.
pub fn pods_in_domain<'a>(
    snapshot: &'a ClusterSnapshot,
    pods_by_node: &BTreeMap<&str, Vec<&'a Pod>>,
    node: &Node,
    topology_key: &str,
) -> Vec<&'a Pod> {
    let Some(value) = topology_value(node, topology_key) else {
        return Vec::new();
    };
    snapshot
        .nodes
        .iter()
        .filter(|other| topology_value(other, topology_key) == Some(value))
        .flat_map(|other| pods_by_node.get(node_name(other)).into_iter().flatten().copied())
        .collect()
}
