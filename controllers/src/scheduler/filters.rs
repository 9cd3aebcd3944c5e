//! The per-node filters of placement, run in upstream plugin order (NodeUnschedulable, TaintToleration,
//! NodeAffinity, NodePorts, NodeResourcesFit, InterPodAffinity) with the readiness check after taints; a
//! node's reasons are those of its first failing filter, as upstream stops at the first failing plugin.
//!
//! Pure: must not depend on the store, HTTP or I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodAffinityTerm};

use super::matching::{affinity_term_matches, node_matches_pod_selectors};
use super::reason::Reason;
use super::resources::{Allocatable, Resources};
use super::snapshot::{node_name, pods_in_domain, topology_value, ClusterSnapshot};
use super::taints::{first_untolerated, node_taints, pod_tolerations, tolerates_unschedulable};

/// Why `node` cannot run `pod`; empty when it can. `pods_by_node` is [`ClusterSnapshot::pods_by_node`].
pub fn filter_node(
    pod: &Pod,
    node: &Node,
    snapshot: &ClusterSnapshot,
    pods_by_node: &BTreeMap<&str, Vec<&Pod>>,
) -> Vec<Reason> {
    let on_node = pods_by_node.get(node_name(node)).map(Vec::as_slice).unwrap_or_default();
    let checks: [&dyn Fn() -> Vec<Reason>; 7] = [
        &|| unschedulable(pod, node),
        &|| taints(pod, node),
        &|| ready(node),
        &|| if node_matches_pod_selectors(pod, node) { Vec::new() } else { vec![Reason::NodeAffinity] },
        &|| host_ports(pod, on_node),
        &|| resources_fit(pod, node, on_node),
        &|| anti_affinity(pod, node, snapshot, pods_by_node),
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

/// `(hostIP, protocol, hostPort)` for every container port with a host port, over containers and
/// restartable init containers; host IP defaults to `0.0.0.0` and protocol to `TCP`.
fn wanted_host_ports(pod: &Pod) -> Vec<(String, String, i32)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c: &Container| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| {
            let ip = p.host_ip.clone().filter(|ip| !ip.is_empty()).unwrap_or_else(|| "0.0.0.0".to_string());
            let protocol = p.protocol.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "TCP".to_string());
            (ip, protocol, p.host_port.unwrap_or(0))
        })
        .collect()
}

fn host_ports(pod: &Pod, on_node: &[&Pod]) -> Vec<Reason> {
    let wanted = wanted_host_ports(pod);
    if wanted.is_empty() {
        return Vec::new();
    }
    let used: Vec<_> = on_node.iter().flat_map(|p| wanted_host_ports(p)).collect();
    let conflict = wanted.iter().any(|(ip, protocol, port)| {
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
fn resources_fit(pod: &Pod, node: &Node, on_node: &[&Pod]) -> Vec<Reason> {
    let allocatable = Allocatable::of(node);
    let mut reasons = Vec::new();
    let existing = i64::try_from(on_node.len()).unwrap_or(i64::MAX);
    if allocatable.pods.is_some_and(|max| existing.saturating_add(1) > max) {
        reasons.push(Reason::TooManyPods);
    }
    let wanted = Resources::pod_requests(pod);
    let used = on_node.iter().fold(Resources::default(), |acc, p| acc.plus(Resources::pod_requests(p)));
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
/// selects this pod within the node's topology domain, then this pod's own required terms.
fn anti_affinity(
    pod: &Pod,
    node: &Node,
    snapshot: &ClusterSnapshot,
    pods_by_node: &BTreeMap<&str, Vec<&Pod>>,
) -> Vec<Reason> {
    let existing_conflict = snapshot.nodes.iter().any(|other| {
        pods_by_node.get(node_name(other)).into_iter().flatten().any(|existing| {
            required_anti_affinity(existing).iter().any(|term| {
                let domain = topology_value(other, &term.topology_key);
                domain.is_some()
                    && topology_value(node, &term.topology_key) == domain
                    && affinity_term_matches(term, existing, pod)
            })
        })
    });
    if existing_conflict {
        return vec![Reason::ExistingPodsAntiAffinity];
    }
    let own_conflict = required_anti_affinity(pod).iter().any(|term| {
        pods_in_domain(snapshot, pods_by_node, node, &term.topology_key)
            .iter()
            .any(|existing| affinity_term_matches(term, pod, existing))
    });
    if own_conflict {
        vec![Reason::PodAntiAffinity]
    } else {
        Vec::new()
    }
}
