//! The cluster state placement decides from, kept incrementally: nodes by name, and per node the bound,
//! non-terminal pods on it with their summed requests (upstream's `NodeInfo`), plus the few pods with
//! required anti-affinity, which every placement must check.
//!
//! The scheduler's driver feeds it informer changes one object at a time (`upsert_node`, `add_pod`,
//! `remove_pod`, ...) so placing a pod never rebuilds an index of the whole cluster, and objects are
//! shared `Arc`s, never cloned per placement.
//!
//! Pure: must not depend on the store, HTTP or I/O; callers fill the snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::filters::required_anti_affinity;
use super::resources::{Allocatable, Resources};

/// One node and what is already placed on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// `None` while pods name a node the snapshot has not seen (or no longer has): they still count once
    /// it appears.
    pub node: Option<Arc<Node>>,
    /// Parsed `status.allocatable` of `node`.
    pub allocatable: Allocatable,
    /// Bound, non-terminal pods on the node by `namespace/name`.
    pub pods: BTreeMap<String, Arc<Pod>>,
    /// Sum of the pods' requests (fit).
    pub requested: Resources,
    /// Sum of the pods' requests with upstream's non-zero defaults (scoring).
    pub non_zero_requested: Resources,
}

/// Everything placement looks at. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    nodes: BTreeMap<String, NodeInfo>,
    /// How many entries of `nodes` have a node.
    node_count: usize,
    /// Pod key -> the node it is counted on.
    pod_nodes: HashMap<String, String>,
    /// Pod key -> node, for the pods with required anti-affinity terms.
    anti_affinity_pods: BTreeMap<String, String>,
}

/// `namespace/name` of a pod, the key the snapshot tracks pods by.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The node a pod is bound to, if any.
pub fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

/// Whether a pod has finished (`Succeeded`/`Failed`) and so no longer uses its node's resources.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

impl ClusterSnapshot {
    /// A snapshot of `nodes` and `pods` (unbound and terminal pods are ignored).
    pub fn from_objects(nodes: impl IntoIterator<Item = Node>, pods: impl IntoIterator<Item = Pod>) -> Self {
        let mut snapshot = Self::default();
        for node in nodes {
            snapshot.upsert_node(Arc::new(node));
        }
        for pod in pods {
            snapshot.add_pod(Arc::new(pod));
        }
        snapshot
    }

    /// Adds or replaces a node, keeping the pods already counted on it.
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node_name(&node).to_string();
        let info = self.nodes.entry(name).or_default();
        if info.node.is_none() {
            self.node_count += 1;
        }
        info.allocatable = Allocatable::of(&node);
        info.node = Some(node);
    }

    /// Removes a node; pods still bound to it stay counted there in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(info) = self.nodes.get_mut(name) else { return };
        if info.node.take().is_some() {
            self.node_count -= 1;
        }
        info.allocatable = Allocatable::default();
        if info.pods.is_empty() {
            self.nodes.remove(name);
        }
    }

    /// Counts `pod` on its node, replacing an earlier version of it; a pod that is unbound or terminal
    /// is removed instead.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        self.remove_pod(&key);
        let Some(node) = bound_node(&pod).map(str::to_string) else { return };
        if is_terminal(&pod) {
            return;
        }
        if !required_anti_affinity(&pod).is_empty() {
            self.anti_affinity_pods.insert(key.clone(), node.clone());
        }
        let info = self.nodes.entry(node.clone()).or_default();
        info.requested = info.requested.plus(Resources::pod_requests(&pod));
        info.non_zero_requested = info.non_zero_requested.plus(Resources::pod_requests_non_zero(&pod));
        info.pods.insert(key.clone(), pod);
        self.pod_nodes.insert(key, node);
    }

    /// Stops counting the pod `key` (`namespace/name`); returns the node it was counted on.
    pub fn remove_pod(&mut self, key: &str) -> Option<String> {
        let node = self.pod_nodes.remove(key)?;
        self.anti_affinity_pods.remove(key);
        if let Some(info) = self.nodes.get_mut(&node) {
            if let Some(pod) = info.pods.remove(key) {
                info.requested = info.requested.minus(Resources::pod_requests(&pod));
                info.non_zero_requested = info.non_zero_requested.minus(Resources::pod_requests_non_zero(&pod));
            }
            if info.pods.is_empty() && info.node.is_none() {
                self.nodes.remove(&node);
            }
        }
        Some(node)
    }

    /// The node the pod `key` is counted on.
    pub fn node_of_pod(&self, key: &str) -> Option<&str> {
        self.pod_nodes.get(key).map(String::as_str)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// Number of pods counted.
    pub fn pod_count(&self) -> usize {
        self.pod_nodes.len()
    }

    /// The nodes with their pods, ordered by name.
    pub fn nodes(&self) -> impl Iterator<Item = (&Node, &NodeInfo)> + Clone {
        self.nodes.values().filter_map(|info| info.node.as_deref().map(|node| (node, info)))
    }

    /// One node's info (also for a node only its pods name).
    pub fn node_info(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// The pods with required anti-affinity and the nodes they run on.
    pub fn anti_affinity_pods(&self) -> impl Iterator<Item = (&Pod, &NodeInfo)> {
        self.anti_affinity_pods.iter().filter_map(|(key, node)| {
            let info = self.nodes.get(node)?;
            Some((info.pods.get(key)?.as_ref(), info))
        })
    }

    /// Every counted pod with its node info.
    pub fn pods(&self) -> impl Iterator<Item = (&Pod, &NodeInfo)> {
        self.nodes.values().flat_map(|info| info.pods.values().map(move |pod| (pod.as_ref(), info)))
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
