//! The answer to one DNS question from the [`ServiceCatalog`] (pure), with CoreDNS's `kubernetes`
//! plugin as the model: Service A records (the ClusterIP, or one per ready endpoint of a headless
//! Service), endpoint names `<hostname or a-b-c-d>.<svc>.<ns>.svc`, SRV for ports, CNAME for
//! ExternalName, `<a-b-c-d>.<ns>.pod` addresses, PTR for Service and endpoint addresses, NXDOMAIN with
//! the zone's SOA for names that do not exist, and a 5 s TTL throughout.
//!
//! Owns record construction only; message headers, EDNS and truncation are [`super::exchange`]'s.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::names::{endpoint_label, route, ClusterDomain, ClusterName, Route};
use crate::services::{Endpoint, ServiceCatalog, ServiceEntry, ServicePort, ServiceType};

/// TTL of every record (CoreDNS's default for Kubernetes records).
pub const TTL: u32 = 5;

/// The cluster zone being answered for.
#[derive(Debug, Clone, Copy)]
pub struct Zone<'a> {
    pub domain: &'a ClusterDomain,
    /// The SOA serial.
    pub serial: u32,
}

/// The sections of a response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

/// What becomes of a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Answered here (authoritatively).
    Answer(Answer),
    /// Sent on to the upstream resolvers.
    Forward,
}

/// Resolves `query`. Without a catalog (the initial lists have not arrived) cluster names get
/// SERVFAIL, so resolvers retry instead of caching a wrong NXDOMAIN.
pub fn resolve(query: &Query, catalog: Option<&ServiceCatalog>, zone: Zone<'_>) -> Resolution {
    match route(query.name(), zone.domain) {
        Route::Upstream => Resolution::Forward,
        Route::Reverse(ip) => {
            let Some(catalog) = catalog.filter(|_| query.query_type() == RecordType::PTR) else {
                return Resolution::Forward;
            };
            let targets = reverse_names(catalog, ip, zone.domain);
            if targets.is_empty() {
                // Not a cluster address: the upstream resolvers may know it (CoreDNS's fallthrough).
                return Resolution::Forward;
            }
            let answers = targets.into_iter().map(|t| record(query.name(), RData::PTR(PTR(t)))).collect();
            Resolution::Answer(Answer { answers, ..Answer::default() })
        }
        Route::Cluster(name) => Resolution::Answer(match catalog {
            None => Answer { rcode: ResponseCode::ServFail, ..Answer::default() },
            Some(catalog) => cluster(query, &name, catalog, zone),
        }),
    }
}

fn cluster(query: &Query, name: &ClusterName, catalog: &ServiceCatalog, zone: Zone<'_>) -> Answer {
    let qtype = query.query_type();
    let owner = query.name();
    let wants_a = matches!(qtype, RecordType::A | RecordType::ANY);
    match name {
        ClusterName::Structural => {
            if qtype == RecordType::SOA && owner.num_labels() == zone.domain.name().num_labels() {
                return Answer { answers: vec![soa(zone)], ..Answer::default() };
            }
            no_data(zone)
        }
        ClusterName::Namespace { namespace } => {
            if catalog.services.keys().any(|(ns, _)| ns == namespace) {
                no_data(zone)
            } else {
                nx_domain(zone)
            }
        }
        ClusterName::Service { namespace, service } => match catalog.get(namespace, service) {
            None => nx_domain(zone),
            Some(entry) => service_answer(owner, qtype, entry, zone),
        },
        ClusterName::Endpoint { namespace, service, endpoint } => {
            let Some(entry) = catalog.get(namespace, service) else { return nx_domain(zone) };
            let ips: BTreeSet<Ipv4Addr> = entry
                .dns_endpoints()
                .filter(|e| endpoint_label(e.hostname.as_deref(), e.ip) == *endpoint)
                .map(|e| e.ip)
                .collect();
            if ips.is_empty() {
                nx_domain(zone)
            } else if wants_a {
                ok(ips.into_iter().map(|ip| a(owner, ip)).collect())
            } else {
                no_data(zone)
            }
        }
        ClusterName::Port { namespace, service, port, protocol } => {
            let Some(entry) = catalog.get(namespace, service) else { return nx_domain(zone) };
            let ports: Vec<&ServicePort> = entry
                .ports
                .iter()
                .filter(|p| !p.name.is_empty() && p.name == *port && p.protocol.lower() == protocol)
                .collect();
            if ports.is_empty() || entry.service_type == ServiceType::ExternalName {
                nx_domain(zone)
            } else if matches!(qtype, RecordType::SRV | RecordType::ANY) {
                srv_answer(owner, entry, &ports, zone)
            } else {
                no_data(zone)
            }
        }
        ClusterName::Pod { address: Some(ip) } => {
            if wants_a {
                ok(vec![a(owner, *ip)])
            } else {
                no_data(zone)
            }
        }
        ClusterName::Pod { address: None } | ClusterName::Unknown => nx_domain(zone),
    }
}

fn service_answer(owner: &Name, qtype: RecordType, entry: &ServiceEntry, zone: Zone<'_>) -> Answer {
    if entry.service_type == ServiceType::ExternalName {
        let target = entry.external_name.as_deref().and_then(|n| Name::from_ascii(absolute(n)).ok());
        return match target {
            Some(target) => ok(vec![record(owner, RData::CNAME(CNAME(target)))]),
            None => no_data(zone),
        };
    }
    let wants_a = matches!(qtype, RecordType::A | RecordType::ANY);
    if entry.headless {
        let ips: BTreeSet<Ipv4Addr> = entry.dns_endpoints().map(|e| e.ip).collect();
        if ips.is_empty() {
            // CoreDNS: a headless Service without ready endpoints does not resolve.
            return nx_domain(zone);
        }
        if wants_a {
            return ok(ips.into_iter().map(|ip| a(owner, ip)).collect());
        }
    } else if wants_a && !entry.cluster_ips.is_empty() {
        return ok(entry.cluster_ips.iter().map(|ip| a(owner, *ip)).collect());
    }
    if qtype == RecordType::SRV && !entry.ports.is_empty() {
        let ports: Vec<&ServicePort> = entry.ports.iter().collect();
        return srv_answer(owner, entry, &ports, zone);
    }
    // AAAA for an IPv4-only Service, and every other type: the name exists without such records.
    no_data(zone)
}

/// SRV records for `ports`: one per port with the Service as target, or for a headless Service one
/// per endpoint and port with the endpoint's name as target (and its port); targets' addresses go
/// to the additional section.
fn srv_answer(owner: &Name, entry: &ServiceEntry, ports: &[&ServicePort], zone: Zone<'_>) -> Answer {
    let Some(service_name) = zone.domain.service_name(&entry.namespace, &entry.name) else {
        return no_data(zone);
    };
    let mut targets: Vec<(u16, Name, Vec<Ipv4Addr>)> = Vec::new();
    if entry.headless {
        let endpoints: Vec<&Endpoint> = entry.dns_endpoints().collect();
        for p in ports {
            for e in &endpoints {
                let label = endpoint_label(e.hostname.as_deref(), e.ip);
                let Ok(target) = service_name.prepend_label(label.as_str()) else { continue };
                targets.push((e.port_for(p).unwrap_or(p.port), target, vec![e.ip]));
            }
        }
    } else {
        for p in ports {
            targets.push((p.port, service_name.clone(), entry.cluster_ips.clone()));
        }
    }
    if targets.is_empty() {
        return nx_domain(zone);
    }
    let weight = u16::try_from(100 / targets.len()).unwrap_or(1).max(1);
    let mut answer = Answer::default();
    let mut seen: BTreeSet<(Name, Ipv4Addr)> = BTreeSet::new();
    for (port, target, ips) in targets {
        answer.answers.push(record(owner, RData::SRV(SRV::new(0, weight, port, target.clone()))));
        for ip in ips {
            if seen.insert((target.clone(), ip)) {
                answer.additionals.push(a(&target, ip));
            }
        }
    }
    answer
}

/// The names `ip` has in the cluster: Services whose ClusterIP it is, and endpoints with it.
fn reverse_names(catalog: &ServiceCatalog, ip: Ipv4Addr, domain: &ClusterDomain) -> Vec<Name> {
    let mut out: Vec<Name> = Vec::new();
    for entry in catalog.services.values() {
        let Some(service_name) = domain.service_name(&entry.namespace, &entry.name) else { continue };
        if entry.cluster_ips.contains(&ip) {
            out.push(service_name.clone());
        }
        for e in entry.dns_endpoints().filter(|e| e.ip == ip) {
            if let Ok(name) = service_name.prepend_label(endpoint_label(e.hostname.as_deref(), e.ip).as_str()) {
                out.push(name);
            }
        }
    }
    out.dedup();
    out
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn record(owner: &Name, data: RData) -> Record {
    Record::from_rdata(owner.clone(), TTL, data)
}

fn a(owner: &Name, ip: Ipv4Addr) -> Record {
    record(owner, RData::A(A(ip)))
}

/// The zone's SOA, as CoreDNS writes it.
fn soa(zone: Zone<'_>) -> Record {
    let domain = zone.domain.name();
    let (mname, rname) = (zone.domain.child("ns.dns"), zone.domain.child("hostmaster"));
    let data = SOA::new(
        mname.unwrap_or_else(|| domain.clone()),
        rname.unwrap_or_else(|| domain.clone()),
        zone.serial,
        7200,
        1800,
        86400,
        TTL,
    );
    record(domain, RData::SOA(data))
}

fn ok(answers: Vec<Record>) -> Answer {
    Answer { answers, ..Answer::default() }
}

/// The name exists but has no records of the asked type (NOERROR, SOA in the authority section).
fn no_data(zone: Zone<'_>) -> Answer {
    Answer { authorities: vec![soa(zone)], ..Answer::default() }
}

fn nx_domain(zone: Zone<'_>) -> Answer {
    Answer { rcode: ResponseCode::NXDomain, authorities: vec![soa(zone)], ..Answer::default() }
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
