//! Reading a Service's allocation-related fields from its JSON: type, cluster IPs, node ports, and
//! which of them a Service of its type needs (upstream's `needsClusterIP`, `needsNodePort`,
//! `needsHCNodePort`).
//!
//! Pure; must not depend on the store or the HTTP layer.

use std::net::Ipv4Addr;

use serde_json::Value;

pub const TYPE_CLUSTER_IP: &str = "ClusterIP";
pub const TYPE_NODE_PORT: &str = "NodePort";
pub const TYPE_LOAD_BALANCER: &str = "LoadBalancer";
pub const TYPE_EXTERNAL_NAME: &str = "ExternalName";
/// `clusterIP` of a headless Service.
pub const NONE: &str = "None";

pub fn spec(svc: &Value) -> &Value {
    svc.get("spec").unwrap_or(&Value::Null)
}

/// The Service's type (`ClusterIP` when unset, as defaulting makes it).
pub fn service_type(svc: &Value) -> &str {
    match spec(svc).get("type").and_then(Value::as_str) {
        None | Some("") => TYPE_CLUSTER_IP,
        Some(t) => t,
    }
}

/// `spec.clusterIP`, else `spec.clusterIPs[0]`, else empty.
pub fn primary_cluster_ip(svc: &Value) -> &str {
    let spec = spec(svc);
    match spec.get("clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => ip,
        _ => cluster_ips(svc).first().copied().unwrap_or(""),
    }
}

/// `spec.clusterIPs` (strings only).
pub fn cluster_ips(svc: &Value) -> Vec<&str> {
    spec(svc)
        .get("clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// How upstream renders `spec.clusterIPs` in a field error (Go's `%#v` of a `[]string`).
pub fn cluster_ips_shown(svc: &Value) -> String {
    let mut ips = cluster_ips(svc);
    if ips.is_empty() {
        ips = vec![primary_cluster_ip(svc)].into_iter().filter(|s| !s.is_empty()).collect();
    }
    let quoted: Vec<String> = ips.iter().map(|ip| format!("{ip:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Whether the type takes a cluster IP field at all (everything but ExternalName; `None` counts).
pub fn takes_cluster_ip(svc: &Value) -> bool {
    service_type(svc) != TYPE_EXTERNAL_NAME
}

/// Whether the Service is given an address from the range (not ExternalName, not headless).
pub fn needs_cluster_ip(svc: &Value) -> bool {
    takes_cluster_ip(svc) && primary_cluster_ip(svc) != NONE
}

/// Whether the type uses node ports (NodePort and LoadBalancer).
pub fn needs_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), TYPE_NODE_PORT | TYPE_LOAD_BALANCER)
}

/// Whether ports without a node port get one picked (upstream `shouldAllocateNodePorts`).
pub fn allocates_node_ports(svc: &Value) -> bool {
    match service_type(svc) {
        TYPE_NODE_PORT => true,
        TYPE_LOAD_BALANCER => spec(svc).get("allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false),
        _ => false,
    }
}

/// Whether the Service needs a health check node port (LoadBalancer with the Local traffic policy).
pub fn needs_health_check_port(svc: &Value) -> bool {
    service_type(svc) == TYPE_LOAD_BALANCER
        && spec(svc).get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
}

/// `spec.ports` (empty when absent).
pub fn ports(svc: &Value) -> &[Value] {
    spec(svc).get("ports").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A port's `nodePort` when set and a valid port number.
pub fn node_port(port: &Value) -> Option<u16> {
    port.get("nodePort").and_then(Value::as_u64).filter(|p| *p > 0).and_then(|p| u16::try_from(p).ok())
}

/// `spec.healthCheckNodePort` when set.
pub fn health_check_port(svc: &Value) -> Option<u16> {
    spec(svc).get("healthCheckNodePort").and_then(Value::as_u64).filter(|p| *p > 0).and_then(|p| u16::try_from(p).ok())
}

/// The cluster IP the Service holds, when it needs one and it is an IPv4 address.
pub fn held_cluster_ip(svc: &Value) -> Option<Ipv4Addr> {
    if !needs_cluster_ip(svc) {
        return None;
    }
    primary_cluster_ip(svc).parse().ok()
}

pub fn is_empty_value(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => false,
    }
}
