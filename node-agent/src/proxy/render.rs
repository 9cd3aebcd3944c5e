//! Rule generation: the service catalog → the proxy's nftables table ([`RuleSet`]). Pure and
//! deterministic (the same catalog always gives the same table), so a sync can compare tables.
//!
//! Layout (family `ip`, one table per node, see [`super::model::table_name`]):
//! - base chains `nat-prerouting` and `nat-output` jump to `services`, which looks the packet up by
//!   `daddr . l4proto . dport` in the verdict map `service-ips` (ClusterIPs) and, for local
//!   destinations (`fib daddr type local`, loopback included), by `l4proto . dport` in
//!   `service-nodeports`. Per-packet cost does not grow with the number of Services.
//! - one chain per service port, `svc-<ns>/<name>/<proto>/<port>`: marks host-originated traffic for
//!   masquerading, then DNATs to a backend picked by `numgen random mod N` from an inline map (one
//!   rule per service, whatever the number of endpoints). With `sessionAffinity: ClientIP` it first
//!   sends clients found in an endpoint's affinity set (`aff-...`, dynamic, with the affinity timeout)
//!   to that endpoint's chain (`aep-...`), which refreshes the client in the set and DNATs.
//! - `ext-<...>` (NodePorts): marks for masquerading, then goes to the service chain.
//! - `nat-postrouting` → `masquerading`: hairpin traffic (an endpoint reaching itself through its
//!   Service: `saddr . daddr` in the `hairpin` set after DNAT) is marked; marked packets are
//!   masqueraded and unmarked.
//! - service ports without endpoints are in `no-endpoint-services` / `no-endpoint-nodeports`, which
//!   the filter base chains (`filter-input`, `filter-forward`, `filter-output`; new connections only)
//!   send to `no-endpoints`: ICMP port-unreachable, as kube-proxy.
//! - `filter-input` also drops packets from off the host to 127.0.0.0/8 that were not DNATed:
//!   localhost NodePorts need `route_localnet`, which would otherwise expose loopback services to
//!   neighbours (kube-proxy's CVE-2020-8558 guard).
//!
//! Headless and ExternalName Services get nothing; a Service without a ClusterIP (none allocated) can
//! still have NodePorts.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::model::{hashed_identifier, identifier_part, Chain, Elements, Hook, NamedSet, RuleSet, SetKind};
use crate::services::{ServiceCatalog, ServiceEntry, ServicePort, ServiceType};

/// The packet mark bit meaning "masquerade this connection" (kube-proxy's bit, so both agree).
pub const MASQUERADE_MARK: u32 = 0x4000;

pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const HAIRPIN: &str = "hairpin";

const SERVICES: &str = "services";
const ENDPOINTS_CHECK: &str = "endpoints-check";
const NO_ENDPOINTS: &str = "no-endpoints";
const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
const MASQUERADING: &str = "masquerading";

/// Nothing in a rule set name may be longer than this part, so that prefixes and endpoint suffixes
/// keep every name within nft's 255 bytes.
const MAX_PORT_ID_LEN: usize = 200;

/// The whole table for `catalog`.
pub fn render(catalog: &ServiceCatalog, table: &str) -> RuleSet {
    let mut rs = skeleton(table);
    let mut hairpin: BTreeSet<Ipv4Addr> = BTreeSet::new();
    for svc in catalog.services.values() {
        if svc.service_type == ServiceType::ExternalName || svc.headless {
            continue;
        }
        for port in &svc.ports {
            render_port(&mut rs, svc, port, &mut hairpin);
        }
    }
    if let Some(set) = rs.sets.get_mut(HAIRPIN) {
        for ip in hairpin {
            set.insert(format!("{ip} . {ip}"), String::new());
        }
    }
    rs
}

/// The chains and maps every table has, whatever the Services.
fn skeleton(table: &str) -> RuleSet {
    let mut rs = RuleSet::new(table);
    let base = |kind, hook, priority, rules: &[&str]| Chain {
        hook: Some(Hook { kind, hook, priority }),
        rules: rules.iter().map(|r| r.to_string()).collect(),
    };
    let check = format!("ct state new jump {ENDPOINTS_CHECK}");
    let chains = [
        ("nat-prerouting", base("nat", "prerouting", -100, &[&format!("jump {SERVICES}")])),
        ("nat-output", base("nat", "output", -100, &[&format!("jump {SERVICES}")])),
        ("nat-postrouting", base("nat", "postrouting", 100, &[&format!("jump {MASQUERADING}")])),
        (
            "filter-input",
            base(
                "filter",
                "input",
                -110,
                &["ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct status & dnat == 0 drop", &check],
            ),
        ),
        ("filter-forward", base("filter", "forward", -110, &[&check])),
        // After nat-output (-100): a Service's traffic that another table DNATs first (cluster DNS's
        // redirect of its address) is no longer addressed to the ClusterIP, so it is not rejected here.
        ("filter-output", base("filter", "output", -90, &[&check])),
        (
            SERVICES,
            Chain::regular(vec![
                format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
                format!("fib daddr type local meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
            ]),
        ),
        (
            ENDPOINTS_CHECK,
            Chain::regular(vec![
                format!("ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
                format!("fib daddr type local meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"),
            ]),
        ),
        (NO_ENDPOINTS, Chain::regular(vec!["reject with icmp type port-unreachable".into()])),
        (MARK_FOR_MASQUERADE, Chain::regular(vec![format!("meta mark set meta mark | {MASQUERADE_MARK:#x}")])),
        (
            MASQUERADING,
            Chain::regular(vec![
                format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} jump {MARK_FOR_MASQUERADE}"),
                format!("meta mark & {MASQUERADE_MARK:#x} == 0 return"),
                format!("meta mark set meta mark ^ {MASQUERADE_MARK:#x}"),
                "masquerade fully-random".into(),
            ]),
        ),
    ];
    for (name, chain) in chains {
        rs.chains.insert(name.into(), chain);
    }
    let by_ip = "type ipv4_addr . inet_proto . inet_service : verdict;";
    let by_port = "type inet_proto . inet_service : verdict;";
    for (name, declaration) in [
        (SERVICE_IPS, by_ip),
        (SERVICE_NODEPORTS, by_port),
        (NO_ENDPOINT_SERVICES, by_ip),
        (NO_ENDPOINT_NODEPORTS, by_port),
    ] {
        rs.sets.insert(name.into(), NamedSet::with_elements(SetKind::Map, declaration));
    }
    rs.sets.insert(HAIRPIN.into(), NamedSet::with_elements(SetKind::Set, "type ipv4_addr . ipv4_addr;"));
    rs
}

/// `<ns>/<name>/<proto>/<port name or number>`: unique per service port, readable in `nft list`.
pub fn port_id(svc: &ServiceEntry, port: &ServicePort) -> String {
    let port_name = if port.name.is_empty() { port.port.to_string() } else { identifier_part(&port.name) };
    let id = format!(
        "{}/{}/{}/{}",
        identifier_part(&svc.namespace),
        identifier_part(&svc.name),
        port.protocol.lower(),
        port_name
    );
    if id.len() <= MAX_PORT_ID_LEN {
        id
    } else {
        hashed_identifier(&id)
    }
}

fn render_port(rs: &mut RuleSet, svc: &ServiceEntry, port: &ServicePort, hairpin: &mut BTreeSet<Ipv4Addr>) {
    let node_port =
        port.node_port.filter(|_| matches!(svc.service_type, ServiceType::NodePort | ServiceType::LoadBalancer));
    if svc.cluster_ips.is_empty() && node_port.is_none() {
        return;
    }
    rs.counts.service_ports += 1;
    let proto = port.protocol.lower();
    let ip_keys: Vec<String> = svc.cluster_ips.iter().map(|ip| format!("{ip} . {proto} . {}", port.port)).collect();
    let node_port_key = node_port.map(|n| format!("{proto} . {n}"));
    let backends = svc.backends(port);
    if backends.is_empty() {
        let reject = format!("goto {NO_ENDPOINTS}");
        insert_all(rs, NO_ENDPOINT_SERVICES, &ip_keys, &reject);
        insert_all(rs, NO_ENDPOINT_NODEPORTS, node_port_key.as_slice(), &reject);
        return;
    }
    rs.counts.endpoints += backends.len();
    hairpin.extend(backends.iter().map(|(ip, _)| *ip));
    let id = port_id(svc, port);
    let service_chain = format!("svc-{id}");
    let mut rules = vec![format!("fib saddr type local jump {MARK_FOR_MASQUERADE}")];
    match svc.affinity_timeout {
        None => rules.push(dnat(proto, &backends)),
        Some(timeout) => {
            let mut targets = Vec::with_capacity(backends.len());
            for (ip, target_port) in &backends {
                let chain = format!("aep-{id}/{ip}/{target_port}");
                let set = format!("aff-{id}/{ip}/{target_port}");
                rules.push(format!("ip saddr @{set} goto {chain}"));
                rs.chains.insert(
                    chain.clone(),
                    Chain::regular(vec![
                        format!("update @{set} {{ ip saddr }}"),
                        format!("meta l4proto {proto} dnat ip to {ip}:{target_port}"),
                    ]),
                );
                rs.sets.insert(
                    set,
                    NamedSet {
                        kind: SetKind::Set,
                        declaration: format!("type ipv4_addr; flags dynamic,timeout; timeout {}s;", timeout.max(1)),
                        elements: Elements::Dynamic,
                    },
                );
                targets.push(chain);
            }
            rules.push(spread(&targets));
        }
    }
    rs.chains.insert(service_chain.clone(), Chain::regular(rules));
    insert_all(rs, SERVICE_IPS, &ip_keys, &format!("goto {service_chain}"));
    if let Some(key) = node_port_key {
        let external_chain = format!("ext-{id}");
        rs.chains.insert(
            external_chain.clone(),
            Chain::regular(vec![format!("jump {MARK_FOR_MASQUERADE}"), format!("goto {service_chain}")]),
        );
        insert_all(rs, SERVICE_NODEPORTS, &[key], &format!("goto {external_chain}"));
    }
}

fn insert_all(rs: &mut RuleSet, set: &str, keys: &[String], value: &str) {
    if let Some(set) = rs.sets.get_mut(set) {
        for key in keys {
            set.insert(key.clone(), value.to_string());
        }
    }
}

/// DNAT to one of `backends` (at least one), evenly at random.
fn dnat(proto: &str, backends: &[(Ipv4Addr, u16)]) -> String {
    match backends {
        [(ip, port)] => format!("meta l4proto {proto} dnat ip to {ip}:{port}"),
        _ => {
            let entries: Vec<String> =
                backends.iter().enumerate().map(|(i, (ip, port))| format!("{i} : {ip} . {port}")).collect();
            format!(
                "meta l4proto {proto} dnat ip addr . port to numgen random mod {} map {{ {} }}",
                backends.len(),
                entries.join(", ")
            )
        }
    }
}

/// Go to one of the endpoint chains `targets` (at least one), evenly at random.
fn spread(targets: &[String]) -> String {
    match targets {
        [only] => format!("goto {only}"),
        _ => {
            let entries: Vec<String> = targets.iter().enumerate().map(|(i, c)| format!("{i} : goto {c}")).collect();
            format!("numgen random mod {} vmap {{ {} }}", targets.len(), entries.join(", "))
        }
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
