//! The Services and EndpointSlices of `svc-bench`, and their addresses. Pure.
//!
//! Service `i` is `svc-<i>` with ClusterIP [`SERVICE_BASE`] + 1 + i, port 80 (`http`) → 8080; its
//! EndpointSlice `svc-<i>` (managed by the benchmark, so the EndpointSlice controller leaves it
//! alone: the Services have no selector) lists endpoints [`ENDPOINT_BASE`] + 1 + i·E + j. A change
//! replaces one endpoint with a fresh address from [`CHANGE_BASE`]. None of these addresses is ever
//! contacted; they only have to be unique.

use std::net::Ipv4Addr;

use bytes::Bytes;
use serde_json::{json, Value};

/// ClusterIPs of the benchmark's Services: inside the default service range 10.96.0.0/12.
pub const SERVICE_BASE: Ipv4Addr = Ipv4Addr::new(10, 104, 0, 0);
/// The latency Service's ClusterIP (also inside 10.96.0.0/12, apart from the others).
pub const LATENCY_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 1);
pub const LATENCY_SERVICE: &str = "svc-bench-latency";
const ENDPOINT_BASE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 0);
const CHANGE_BASE: Ipv4Addr = Ipv4Addr::new(10, 220, 0, 0);
pub const SERVICE_PORT: u16 = 80;
pub const TARGET_PORT: u16 = 8080;
/// `endpointslice.kubernetes.io/managed-by` of the benchmark's slices.
const MANAGER: &str = "svc-bench";

fn offset(base: Ipv4Addr, n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(u32::try_from(n).unwrap_or(u32::MAX)))
}

pub fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

pub fn cluster_ip(i: usize) -> Ipv4Addr {
    offset(SERVICE_BASE, i + 1)
}

/// The first endpoints of Service `i` (of `per_service`).
pub fn initial_endpoints(i: usize, per_service: usize) -> Vec<Ipv4Addr> {
    (0..per_service).map(|j| offset(ENDPOINT_BASE, 1 + i * per_service + j)).collect()
}

/// The address change `n` brings in.
pub fn changed_endpoint(n: usize) -> Ipv4Addr {
    offset(CHANGE_BASE, n + 1)
}

/// A Service without a selector (its endpoints are the benchmark's slice).
pub fn service(namespace: &str, name: &str, cluster_ip: Ipv4Addr) -> Bytes {
    let value = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip.to_string(),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": TARGET_PORT, "protocol": "TCP"}]
        }
    });
    Bytes::from(value.to_string())
}

/// The `endpoints` array of a slice: every address ready.
pub fn endpoints_value(addresses: &[Ipv4Addr]) -> Value {
    Value::Array(
        addresses
            .iter()
            .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true, "serving": true}}))
            .collect(),
    )
}

/// The EndpointSlice (named like its Service) of Service `service`.
pub fn endpoint_slice(namespace: &str, service: &str, addresses: &[Ipv4Addr]) -> Bytes {
    let value = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": service, "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": MANAGER}
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": TARGET_PORT, "protocol": "TCP"}],
        "endpoints": endpoints_value(addresses)
    });
    Bytes::from(value.to_string())
}

/// A merge patch replacing a slice's endpoints.
pub fn endpoints_patch(addresses: &[Ipv4Addr]) -> Bytes {
    Bytes::from(json!({"endpoints": endpoints_value(addresses)}).to_string())
}

pub fn services_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/services")
}

pub fn slices_path(namespace: &str) -> String {
    format!("/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_and_in_their_ranges() {
        assert_eq!(cluster_ip(0), Ipv4Addr::new(10, 104, 0, 1));
        assert_eq!(cluster_ip(999), Ipv4Addr::new(10, 104, 3, 232));
        let all: std::collections::BTreeSet<Ipv4Addr> =
            (0..1000).flat_map(|i| initial_endpoints(i, 10)).chain((0..1000).map(changed_endpoint)).collect();
        assert_eq!(all.len(), 11_000);
        assert_eq!(initial_endpoints(1, 10)[0], Ipv4Addr::new(10, 200, 0, 11));
    }

    #[test]
    fn slices_belong_to_their_service_and_not_to_the_controller() -> Result<(), serde_json::Error> {
        let slice: Value = serde_json::from_slice(&endpoint_slice("ns", "svc-3", &initial_endpoints(3, 2)))?;
        assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "svc-3");
        assert_eq!(slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], "svc-bench");
        assert_eq!(slice["endpoints"][1]["addresses"][0], "10.200.0.8");
        let svc: Value = serde_json::from_slice(&service("ns", "svc-3", cluster_ip(3)))?;
        assert!(svc["spec"]["selector"].is_null());
        assert_eq!(svc["spec"]["clusterIP"], "10.104.0.4");
        let patch: Value = serde_json::from_slice(&endpoints_patch(&[changed_endpoint(0)]))?;
        assert_eq!(patch["endpoints"][0]["addresses"][0], "10.220.0.1");
        Ok(())
    }
}
