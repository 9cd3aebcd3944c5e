//! Which nodes a DaemonSet's pod belongs on (upstream `NodeShouldRunDaemonPod`), and the pod it puts there:
//! the template plus the upstream default tolerations, the revision labels and a required node affinity
//! `metadata.name In [node]` that makes the default scheduler place it on that node only.
//!
//! Pure: must not depend on the API client. Reuses the scheduler's matching and taint helpers read-only.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodTemplateSpec,
    Toleration,
};

use crate::history::REVISION_HASH_LABEL;
use crate::scheduler::matching::node_matches_pod_selectors;
use crate::scheduler::snapshot::node_name;
use crate::scheduler::taints::{first_untolerated, node_taints};

/// The deprecated label upstream still sets to the DaemonSet's generation at pod creation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Whether a node should run the daemon pod, and whether a pod already there may keep running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFit {
    pub should_run: bool,
    pub should_continue_running: bool,
}

/// Upstream `AddOrUpdateDaemonPodTolerations`: a daemon pod survives node conditions that would evict or
/// keep out ordinary pods (it is what keeps the node's networking, logging or storage running).
pub fn add_default_tolerations(template: &mut PodTemplateSpec) {
    let spec = template.spec.get_or_insert_with(Default::default);
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let toleration = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            value: None,
            toleration_seconds: None,
        };
        // Upstream's AddOrUpdateTolerationInPod replaces a toleration with the same key and effect.
        match tolerations.iter_mut().find(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect)) {
            Some(existing) => *existing = toleration,
            None => tolerations.push(toleration),
        }
    }
}

/// Upstream `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the single term
/// `metadata.name In [node]` (the DaemonSet already checked the rest of the affinity against the node).
pub fn pin_to_node(template: &mut PodTemplateSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        match_expressions: None,
    };
    let spec = template.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution =
        Some(NodeSelector { node_selector_terms: vec![term] });
}

/// The template a daemon pod for `node` is made from: the DaemonSet's, with default tolerations, the
/// revision hash and template generation labels, and pinned to `node`.
pub fn daemon_pod_template(ds: &DaemonSet, hash: &str, node: &str) -> PodTemplateSpec {
    let mut template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    add_default_tolerations(&mut template);
    let labels = template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default);
    if let Some(generation) = ds.metadata.generation {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), generation.to_string());
    }
    labels.insert(REVISION_HASH_LABEL.into(), hash.to_string());
    pin_to_node(&mut template, node);
    template
}

/// Upstream `NodeShouldRunDaemonPod`: the node must match `spec.nodeName` (if set), the node selector and
/// required node affinity; untolerated `NoSchedule`/`NoExecute` taints keep a new pod off, and only an
/// untolerated `NoExecute` one evicts a running pod. Node readiness and cordoning are tolerated.
pub fn node_fit(ds: &DaemonSet, node: &Node) -> NodeFit {
    const NO: NodeFit = NodeFit { should_run: false, should_continue_running: false };
    let Some(spec) = ds.spec.as_ref() else { return NO };
    let name = node_name(node);
    let mut template = spec.template.clone();
    add_default_tolerations(&mut template);
    let pod_spec = template.spec.clone().unwrap_or_default();
    if pod_spec.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != name) {
        return NO;
    }
    let pod = Pod { metadata: template.metadata.clone().unwrap_or_default(), spec: Some(pod_spec), status: None };
    if !node_matches_pod_selectors(&pod, node) {
        return NO;
    }
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    let taints = node_taints(node);
    if first_untolerated(taints, tolerations, &["NoSchedule", "NoExecute"]).is_none() {
        return NodeFit { should_run: true, should_continue_running: true };
    }
    NodeFit {
        should_run: false,
        should_continue_running: first_untolerated(taints, tolerations, &["NoExecute"]).is_none(),
    }
}

/// The node a daemon pod is for: `spec.nodeName` once bound, else its `metadata.name` node-affinity field
/// (upstream `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let required =
        spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    required.node_selector_terms.iter().flat_map(|t| t.match_fields.iter().flatten()).find_map(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        (r.key == "metadata.name" && r.operator == "In" && values.len() == 1).then(|| values[0].as_str())
    })
}
