//! The Endpoints object a Service should have, from the Service and the pods of its namespace
//! (upstream `syncService` and `RepackSubsets`): one subset per distinct set of resolved ports, ready
//! pods in `addresses`, the others in `notReadyAddresses` (all in `addresses` with
//! `publishNotReadyAddresses`). Terminating and finished pods are left out.
//!
//! Pure: must not depend on the API client.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::service_pods::{find_port, is_headless, pod_ipv4, publishes_not_ready, selects_pod, should_be_in_endpoints};
use crate::pods::is_ready;

/// Tells the EndpointSlice mirroring controller that these Endpoints are managed (its slices come
/// from the EndpointSlice controller instead).
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Marks the endpoints of a headless service.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// The endpoint ports `svc` resolves to on `pod`, in service-port order.
fn pod_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            find_port(pod, sp).map(|port| EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

fn address(svc: &Service, pod: &Pod, ip: String) -> EndpointAddress {
    let spec = pod.spec.as_ref();
    let subdomain_matches =
        spec.and_then(|s| s.subdomain.as_deref()).is_some_and(|d| Some(d) == svc.metadata.name.as_deref());
    EndpointAddress {
        ip,
        hostname: spec.and_then(|s| s.hostname.clone()).filter(|h| subdomain_matches && !h.is_empty()),
        node_name: spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    }
}

/// The subsets `svc` should list, given the pods of its namespace. Sorted (ports, then addresses by
/// IP) so that equal content compares equal and a pass without changes writes nothing.
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let tolerate_unready = publishes_not_ready(svc);
    let no_ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref()).is_none_or(|p| p.is_empty());
    // Sorted ports (as a comparable key) -> (ports, ready, not ready).
    type Group = (Vec<EndpointPort>, Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in pods {
        if !selects_pod(svc, pod) || !should_be_in_endpoints(pod, false) {
            continue;
        }
        let Some(ip) = pod_ipv4(pod) else { continue };
        let mut ports = pod_ports(svc, pod);
        if ports.is_empty() && !(no_ports && is_headless(svc)) {
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let group = groups.entry(key).or_insert_with(|| (ports, Vec::new(), Vec::new()));
        let addr = address(svc, pod, ip);
        if tolerate_unready || is_ready(pod) {
            group.1.push(addr);
        } else {
            group.2.push(addr);
        }
    }
    let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
        (&a.ip, a.target_ref.as_ref().map(|r| &r.uid)).cmp(&(&b.ip, b.target_ref.as_ref().map(|r| &r.uid)))
    };
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(LABEL_SKIP_MIRROR.into(), "true".into());
    if is_headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels
}

/// The Endpoints to write for `svc` (selector required), or `None` when `existing` already says it.
/// The result keeps `existing`'s metadata (resourceVersion for the update) with labels replaced.
pub fn desired_endpoints(svc: &Service, pods: &[Arc<Pod>], existing: Option<&Endpoints>) -> Option<Endpoints> {
    let subsets = desired_subsets(svc, pods);
    let labels = desired_labels(svc);
    if let Some(ep) = existing {
        let same_subsets = ep.subsets.as_deref().unwrap_or_default() == subsets.as_slice();
        let same_labels = ep.metadata.labels.as_ref().is_some_and(|l| *l == labels);
        if same_subsets && same_labels {
            return None;
        }
    }
    let metadata = match existing {
        Some(ep) => ObjectMeta { labels: Some(labels), ..ep.metadata.clone() },
        None => ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            ..Default::default()
        },
    };
    Some(Endpoints { metadata, subsets: (!subsets.is_empty()).then_some(subsets) })
}
