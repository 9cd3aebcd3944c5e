//! What placement needs to know about the pod being placed, computed once per placement instead of once
//! per node (upstream's `PreFilter`/`PreScore` state): its requests, host ports, and the topology domains
//! that pod anti-affinity (its own terms and those of pods already running) rules out or penalises.
//!
//! Pure: must not depend on the store, HTTP or I/O.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Container, Node, Pod};

use super::filters::required_anti_affinity;
use super::matching::affinity_term_matches;
use super::resources::Resources;
use super::snapshot::{topology_value, ClusterSnapshot};

/// A host port a container asks for: `(hostIP, protocol, hostPort)`.
pub type HostPort = (String, String, i32);

/// See the module docs. Borrowed from the pod and snapshot it was computed from.
#[derive(Debug, Clone)]
pub struct PodInfo<'a> {
    pub pod: &'a Pod,
    /// Effective requests (fit).
    pub requests: Resources,
    /// Requests with the non-zero defaults (scoring).
    pub non_zero_requests: Resources,
    pub host_ports: Vec<HostPort>,
    /// `(topology key, value)` domains in which a running pod's required anti-affinity selects this pod.
    pub existing_anti_domains: Vec<(String, String)>,
    /// Per required anti-affinity term of this pod: its topology key and the values of the domains that
    /// already hold a pod the term selects.
    pub own_anti_domains: Vec<(String, HashSet<String>)>,
    /// Per preferred anti-affinity term: weight, topology key, and per domain value the number of
    /// running pods the term selects.
    pub preferred_anti: Vec<(i64, String, HashMap<String, i64>)>,
    /// The uid of the pod's controller, for spreading.
    pub controller_uid: Option<&'a str>,
}

impl<'a> PodInfo<'a> {
    /// Computes the per-placement state of `pod` against `snapshot`. Costs one pass over the running pods
    /// only when the pod has anti-affinity terms, and one over the pods with required anti-affinity.
    pub fn new(pod: &'a Pod, snapshot: &ClusterSnapshot) -> Self {
        let mut existing_anti_domains = Vec::new();
        for (existing, info) in snapshot.anti_affinity_pods() {
            let Some(node) = info.node.as_deref() else { continue };
            for term in required_anti_affinity(existing) {
                if let Some(value) = topology_value(node, &term.topology_key) {
                    if affinity_term_matches(term, existing, pod) {
                        existing_anti_domains.push((term.topology_key.clone(), value.to_string()));
                    }
                }
            }
        }
        let own_anti_domains = required_anti_affinity(pod)
            .iter()
            .map(|term| {
                let values = domains_with_matches(snapshot, &term.topology_key, |existing| {
                    affinity_term_matches(term, pod, existing)
                })
                .into_keys()
                .collect();
                (term.topology_key.clone(), values)
            })
            .collect();
        let preferred_anti = preferred_anti_affinity_terms(pod)
            .iter()
            .map(|weighted| {
                let term = &weighted.pod_affinity_term;
                let counts = domains_with_matches(snapshot, &term.topology_key, |existing| {
                    affinity_term_matches(term, pod, existing)
                });
                (i64::from(weighted.weight), term.topology_key.clone(), counts)
            })
            .collect();
        PodInfo {
            pod,
            requests: Resources::pod_requests(pod),
            non_zero_requests: Resources::pod_requests_non_zero(pod),
            host_ports: wanted_host_ports(pod),
            existing_anti_domains,
            own_anti_domains,
            preferred_anti,
            controller_uid: controller_uid(pod),
        }
    }
}

/// Per value of `topology_key`, how many running pods satisfy `matches`.
fn domains_with_matches(
    snapshot: &ClusterSnapshot,
    topology_key: &str,
    matches: impl Fn(&Pod) -> bool,
) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for (existing, info) in snapshot.pods() {
        let Some(value) = info.node.as_deref().and_then(|node: &Node| topology_value(node, topology_key)) else {
            continue;
        };
        if matches(existing) {
            *counts.entry(value.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn preferred_anti_affinity_terms(pod: &Pod) -> &[k8s_openapi::api::core::v1::WeightedPodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|aa| aa.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

/// The uid of the pod's controller owner reference, if any.
pub fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.as_str())
}

/// `(hostIP, protocol, hostPort)` for every container port with a host port, over containers and
/// restartable init containers; host IP defaults to `0.0.0.0` and protocol to `TCP`.
pub fn wanted_host_ports(pod: &Pod) -> Vec<HostPort> {
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
