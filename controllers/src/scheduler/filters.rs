//! The per-node filters of placement, run in upstream plugin order (NodeUnschedulable, TaintToleration,
//! NodeAffinity, NodePorts, NodeResourcesFit, InterPodAffinity) with the readiness check after taints; a
//! node's reasons are those of its first failing filter, as upstream stops at the first failing plugin.
//!
//! Pure: must not depend on the store, HTTP or I/O.

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm};

use super::matching::node_matches_pod_selectors;
use super::pod_info::{wanted_host_ports, PodInfo};
use super::reason::Reason;
use super::snapshot::{topology_value, NodeInfo};
use super::taints::{first_untolerated, node_taints, pod_tolerations, tolerates_unschedulable};

/// Why `node` cannot run the pod; empty when it can. `info` holds what already runs on the node.
pub fn filter_node(pod: &PodInfo<'_>, node: &Node, info: &NodeInfo) -> Vec<Reason> {
    let checks: [&dyn Fn() -> Vec<Reason>; 7] = [
        &|| unschedulable(pod.pod, node),
        &|| taints(pod.pod, node),
        &|| ready(node),
        &|| if node_matches_pod_selectors(pod.pod, node) { Vec::new() } else { vec![Reason::NodeAffinity] },
        &|| host_ports(pod, info),
        &|| resources_fit(pod, info),
        &|| anti_affinity(pod, node),
    ];
    checks.iter().map(|check| check()).find(|reasons| !reasons.is_empty()).unwrap_or_default()
}

fn unschedulable(pod: &Pod, node: &Node) -> Vec<Reason> {
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    if cordoned && !tolerates_unschedulable(pod) {
        vec![Reason::Unschedulable]
    } else {
        Vec::new()
    }
}

fn taints(pod: &Pod, node: &Node) -> Vec<Reason> {
    first_untolerated(node_taints(node), pod_tolerations(pod), &["NoSchedule", "NoExecute"])
        .map(|t| Reason::UntoleratedTaint { key: t.key.clone(), value: t.value.clone().unwrap_or_default() })
        .into_iter()
        .collect()
}

/// Not an upstream plugin (upstream relies on the `not-ready` taint): a node whose `Ready` condition is
/// missing or not `True` takes no pods.
fn ready(node: &Node) -> Vec<Reason> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    if conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True") {
        Vec::new()
    } else {
        vec![Reason::NotReady]
    }
}

fn host_ports(pod: &PodInfo<'_>, info: &NodeInfo) -> Vec<Reason> {
    if pod.host_ports.is_empty() {
        return Vec::new();
    }
    let used: Vec<_> = info.pods.values().flat_map(|p| wanted_host_ports(p)).collect();
    let conflict = pod.host_ports.iter().any(|(ip, protocol, port)| {
        used.iter().any(|(uip, uprotocol, uport)| {
            port == uport && protocol == uprotocol && (ip == uip || ip == "0.0.0.0" || uip == "0.0.0.0")
        })
    });
    if conflict {
        vec![Reason::HostPorts]
    } else {
        Vec::new()
    }
}

/// Upstream `NodeResourcesFit`: pod count first, then CPU and memory (each only if the pod requests some)
/// against allocatable minus the requests of the pods already on the node. Reports every shortfall.
fn resources_fit(pod: &PodInfo<'_>, info: &NodeInfo) -> Vec<Reason> {
    let allocatable = info.allocatable;
    let mut reasons = Vec::new();
    let existing = i64::try_from(info.pods.len()).unwrap_or(i64::MAX);
    if allocatable.pods.is_some_and(|max| existing.saturating_add(1) > max) {
        reasons.push(Reason::TooManyPods);
    }
    let (wanted, used) = (pod.requests, info.requested);
    let short = |want: i64, capacity: Option<i64>, used: i64| {
        want > 0 && capacity.is_some_and(|cap| want > cap.saturating_sub(used))
    };
    if short(wanted.milli_cpu, allocatable.milli_cpu, used.milli_cpu) {
        reasons.push(Reason::InsufficientCpu);
    }
    if short(wanted.memory, allocatable.memory, used.memory) {
        reasons.push(Reason::InsufficientMemory);
    }
    reasons
}

/// The required anti-affinity terms of a pod.
pub fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|aa| aa.required_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

/// Upstream `InterPodAffinity` (anti-affinity part): first existing pods whose required anti-affinity
/// selects this pod within the node's topology domain, then this pod's own required terms. The domains
/// were found once per placement by [`PodInfo::new`].
fn anti_affinity(pod: &PodInfo<'_>, node: &Node) -> Vec<Reason> {
    let in_domain = |key: &str, value: &str| topology_value(node, key) == Some(value);
    if pod.existing_anti_domains.iter().any(|(key, value)| in_domain(key, value)) {
        return vec![Reason::ExistingPodsAntiAffinity];
    }
    let own_conflict = pod
        .own_anti_domains
        .iter()
        .any(|(key, values)| topology_value(node, key).is_some_and(|value| values.contains(value)));
    if own_conflict {
        vec![Reason::PodAntiAffinity]
    } else {
        Vec::new()
    }
}
