//! What the Endpoints and EndpointSlice controllers both need to know about a Service and its pods:
//! which pods it selects, which of them belong in endpoints, their address, and which port a service
//! port resolves to on a pod (upstream `podutil.FindPort`, `ShouldPodBeInEndpoints`).
//!
//! Pure: must not depend on the API client.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::pods::is_terminal;

/// The service's selector, if it has a non-empty one (only those get managed endpoints).
pub fn selector(svc: &Service) -> Option<&std::collections::BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether `svc` selects `pod` by labels.
pub fn selects_pod(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = selector(svc) else { return false };
    let labels = pod.metadata.labels.as_ref();
    sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Headless: `clusterIP: None`.
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn publishes_not_ready(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false)
}

/// The pod's IPv4 address (`status.podIP`, else the first IPv4 of `status.podIPs`).
pub fn pod_ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let is_v4 = |s: &str| s.parse::<Ipv4Addr>().is_ok();
    status
        .pod_ip
        .as_deref()
        .filter(|ip| is_v4(ip))
        .or_else(|| status.pod_ips.iter().flatten().map(|p| p.ip.as_str()).find(|ip| is_v4(ip)))
        .map(str::to_string)
}

/// Whether `pod` belongs in endpoints at all: not finished, has an address, and (unless
/// `include_terminating`) not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    !is_terminal(pod) && pod_ipv4(pod).is_some() && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The container port `port` targets on `pod`: a number as is, a name looked up among the pod's
/// container ports of the same protocol (`None` when the pod has no such port).
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let spec = pod.spec.as_ref()?;
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                .map(|p| p.container_port)
        }
    }
}
