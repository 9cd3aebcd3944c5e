//! The cluster's Services and their endpoints as one value, built from Service and EndpointSlice
//! objects: what the service proxy programs and what cluster DNS answers. Pure.
//!
//! Slices belong to their Service through the `kubernetes.io/service-name` label; an endpoint that
//! several slices list (during a slice rebalance) counts once. Only IPv4 slices are used.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// From the API's `protocol` field (default TCP).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        }
    }

    /// Lowercase, as nftables and SRV records spell it.
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// The Service's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Empty for the single unnamed port.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
}

/// One endpoint (one address) of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// The pod's `hostname` (StatefulSet pods under a headless Service).
    pub hostname: Option<String>,
    pub node_name: Option<String>,
    /// The name of the pod behind it, if any.
    pub pod: Option<String>,
    /// Target ports by service port name (and protocol).
    pub ports: BTreeMap<(String, Protocol), u16>,
}

impl Endpoint {
    /// The target port of service port `p` on this endpoint.
    pub fn port_for(&self, p: &ServicePort) -> Option<u16> {
        self.ports.get(&(p.name.clone(), p.protocol)).copied()
    }
}

/// A Service with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    pub service_type: ServiceType,
    /// Empty for headless and ExternalName Services.
    pub cluster_ips: Vec<Ipv4Addr>,
    pub headless: bool,
    pub external_name: Option<String>,
    pub ports: Vec<ServicePort>,
    /// `Some(timeout seconds)` when `sessionAffinity: ClientIP`.
    pub affinity_timeout: Option<u32>,
    pub publish_not_ready: bool,
    pub endpoints: Vec<Endpoint>,
}

impl ServiceEntry {
    /// The endpoints traffic for port `p` goes to: the ready ones; when none is ready, the serving
    /// ones that are terminating (upstream's graceful-termination fallback).
    pub fn backends(&self, p: &ServicePort) -> Vec<(Ipv4Addr, u16)> {
        let pick = |e: &&Endpoint| e.ready;
        let mut out: Vec<(Ipv4Addr, u16)> =
            self.endpoints.iter().filter(pick).filter_map(|e| Some((e.ip, e.port_for(p)?))).collect();
        if out.is_empty() {
            out = self
                .endpoints
                .iter()
                .filter(|e| e.serving && e.terminating)
                .filter_map(|e| Some((e.ip, e.port_for(p)?)))
                .collect();
        }
        out.sort();
        out.dedup();
        out
    }

    /// Endpoints DNS publishes for a headless Service: ready ones, or all with
    /// `publishNotReadyAddresses`.
    pub fn dns_endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter().filter(|e| e.ready || self.publish_not_ready)
    }
}

/// Every Service of the cluster with its endpoints, by (namespace, name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceCatalog {
    pub services: BTreeMap<(String, String), ServiceEntry>,
}

impl ServiceCatalog {
    /// Builds the catalog from the current objects.
    pub fn build<'a>(
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Self {
        let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in slices {
            if slice.address_type != "IPv4" {
                continue;
            }
            let labels = slice.metadata.labels.as_ref();
            let (Some(ns), Some(name)) =
                (slice.metadata.namespace.clone(), labels.and_then(|l| l.get(SERVICE_NAME_LABEL)).cloned())
            else {
                continue;
            };
            by_service.entry((ns, name)).or_default().push(slice);
        }
        let mut out = ServiceCatalog::default();
        for svc in services {
            let Some(entry) = entry(svc, by_service.get(&key(svc)).map(Vec::as_slice).unwrap_or_default()) else {
                continue;
            };
            out.services.insert((entry.namespace.clone(), entry.name.clone()), entry);
        }
        out
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services.get(&(namespace.to_string(), name.to_string()))
    }
}

fn key(svc: &Service) -> (String, String) {
    (svc.metadata.namespace.clone().unwrap_or_default(), svc.metadata.name.clone().unwrap_or_default())
}

fn entry(svc: &Service, slices: &[&EndpointSlice]) -> Option<ServiceEntry> {
    let (namespace, name) = key(svc);
    let spec = svc.spec.as_ref()?;
    let service_type = match spec.type_.as_deref() {
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        _ => ServiceType::ClusterIp,
    };
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if ips.is_empty() {
        ips.extend(spec.cluster_ip.clone());
    }
    let cluster_ips = if service_type == ServiceType::ExternalName || headless {
        Vec::new()
    } else {
        ips.iter().filter_map(|ip| ip.parse().ok()).collect()
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol.as_deref()),
                port: u16::try_from(p.port).ok()?,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0),
            })
        })
        .collect();
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let timeout =
            spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds);
        timeout.and_then(|t| u32::try_from(t).ok()).unwrap_or(10_800)
    });
    Some(ServiceEntry {
        namespace,
        name,
        service_type,
        cluster_ips,
        headless,
        external_name: spec.external_name.clone().filter(|_| service_type == ServiceType::ExternalName),
        ports,
        affinity_timeout,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
        endpoints: endpoints(slices),
    })
}

fn endpoints(slices: &[&EndpointSlice]) -> Vec<Endpoint> {
    let mut seen: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut out = Vec::new();
    for slice in slices {
        let ports: BTreeMap<(String, Protocol), u16> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port?).ok()?;
                Some(((p.name.clone().unwrap_or_default(), Protocol::parse(p.protocol.as_deref())), port))
            })
            .collect();
        for e in &slice.endpoints {
            let conditions = e.conditions.as_ref();
            // Upstream: an unset `ready` means ready; `serving` defaults to `ready`.
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            for address in &e.addresses {
                let Ok(ip) = address.parse::<Ipv4Addr>() else { continue };
                if !seen.insert(ip) {
                    continue;
                }
                out.push(Endpoint {
                    ip,
                    ready,
                    serving,
                    terminating,
                    hostname: e.hostname.clone(),
                    node_name: e.node_name.clone(),
                    pod: e
                        .target_ref
                        .as_ref()
                        .filter(|r| r.kind.as_deref() == Some("Pod"))
                        .and_then(|r| r.name.clone()),
                    ports: ports.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
