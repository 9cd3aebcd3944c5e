//! Tests of [`super`]: golden chains and elements per kind of Service, table-driven.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::proxy::model::Elements;
use crate::services::{Endpoint, Protocol};

const TABLE: &str = "gantry-proxy-n1";

fn port(name: &str, protocol: Protocol, port: u16, node_port: Option<u16>) -> ServicePort {
    ServicePort { name: name.into(), protocol, port, node_port }
}

/// An endpoint with `ready`/`serving`/`terminating` and target ports `(name, protocol, port)`.
fn endpoint(ip: [u8; 4], conditions: (bool, bool, bool), ports: &[(&str, Protocol, u16)]) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::from(ip),
        ready: conditions.0,
        serving: conditions.1,
        terminating: conditions.2,
        hostname: None,
        node_name: Some("n1".into()),
        pod: None,
        ports: ports.iter().map(|(n, p, port)| ((n.to_string(), *p), *port)).collect(),
    }
}

const READY: (bool, bool, bool) = (true, true, false);

fn ready_http(last: u8) -> Endpoint {
    endpoint([10, 1, 0, last], READY, &[("http", Protocol::Tcp, 8080)])
}

fn service(name: &str, service_type: ServiceType, ips: &[[u8; 4]], ports: Vec<ServicePort>) -> ServiceEntry {
    ServiceEntry {
        namespace: "default".into(),
        name: name.into(),
        service_type,
        cluster_ips: ips.iter().map(|ip| Ipv4Addr::from(*ip)).collect(),
        headless: false,
        external_name: None,
        ports,
        affinity_timeout: None,
        publish_not_ready: false,
        endpoints: Vec::new(),
    }
}

fn web(service_type: ServiceType, node_port: Option<u16>, endpoints: Vec<Endpoint>) -> ServiceEntry {
    let mut s = service("web", service_type, &[[10, 96, 0, 20]], vec![port("http", Protocol::Tcp, 80, node_port)]);
    s.endpoints = endpoints;
    s
}

struct Case {
    name: &'static str,
    services: Vec<ServiceEntry>,
    /// Every chain beyond the skeleton, with its rules.
    chains: &'static [(&'static str, &'static [&'static str])],
    /// Every element of the static maps and sets: (set, key, value).
    elements: &'static [(&'static str, &'static str, &'static str)],
    /// Every dynamic (affinity) set with its declaration.
    affinity_sets: &'static [(&'static str, &'static str)],
    /// (service ports, endpoints) counted.
    counts: (usize, usize),
}

const MARK_HOST: &str = "fib saddr type local jump mark-for-masquerade";

fn cases() -> Vec<Case> {
    let mut affinity = web(ServiceType::ClusterIp, None, vec![ready_http(1), ready_http(2)]);
    affinity.affinity_timeout = Some(600);
    let mut headless = web(ServiceType::ClusterIp, None, vec![ready_http(1)]);
    headless.headless = true;
    headless.cluster_ips.clear();
    let mut external = service("ext", ServiceType::ExternalName, &[], vec![]);
    external.external_name = Some("db.example.com".into());
    let mut dns = service(
        "dns",
        ServiceType::ClusterIp,
        &[[10, 96, 0, 10]],
        vec![port("dns", Protocol::Udp, 53, None), port("dns-tcp", Protocol::Tcp, 53, None)],
    );
    dns.endpoints =
        vec![endpoint([10, 1, 0, 7], READY, &[("dns", Protocol::Udp, 5353), ("dns-tcp", Protocol::Tcp, 5353)])];
    let mut unallocated = web(ServiceType::NodePort, Some(30081), vec![ready_http(1)]);
    unallocated.cluster_ips.clear();
    let mut odd =
        service("odd", ServiceType::ClusterIp, &[[10, 96, 0, 30]], vec![port("a;b", Protocol::Tcp, 81, None)]);
    odd.endpoints = vec![endpoint([10, 1, 0, 9], READY, &[("a;b", Protocol::Tcp, 81)])];
    vec![
        Case {
            name: "a ClusterIP spreads over its ready endpoints with one rule",
            services: vec![web(
                ServiceType::ClusterIp,
                None,
                vec![
                    ready_http(3),
                    ready_http(1),
                    ready_http(2),
                    endpoint([10, 1, 0, 4], (false, false, false), &[("http", Protocol::Tcp, 8080)]),
                ],
            )],
            chains: &[(
                "svc-default/web/tcp/http",
                &[
                    MARK_HOST,
                    "meta l4proto tcp dnat ip addr . port to numgen random mod 3 map { 0 : 10.1.0.1 . 8080, 1 : \
                     10.1.0.2 . 8080, 2 : 10.1.0.3 . 8080 }",
                ],
            )],
            elements: &[
                ("service-ips", "10.96.0.20 . tcp . 80", "goto svc-default/web/tcp/http"),
                ("hairpin", "10.1.0.1 . 10.1.0.1", ""),
                ("hairpin", "10.1.0.2 . 10.1.0.2", ""),
                ("hairpin", "10.1.0.3 . 10.1.0.3", ""),
            ],
            affinity_sets: &[],
            counts: (1, 3),
        },
        Case {
            name: "one endpoint is a plain DNAT",
            services: vec![web(ServiceType::ClusterIp, None, vec![ready_http(1)])],
            chains: &[("svc-default/web/tcp/http", &[MARK_HOST, "meta l4proto tcp dnat ip to 10.1.0.1:8080"])],
            elements: &[
                ("service-ips", "10.96.0.20 . tcp . 80", "goto svc-default/web/tcp/http"),
                ("hairpin", "10.1.0.1 . 10.1.0.1", ""),
            ],
            affinity_sets: &[],
            counts: (1, 1),
        },
        Case {
            name: "a NodePort is marked for masquerading, then served like the ClusterIP",
            services: vec![web(ServiceType::NodePort, Some(30080), vec![ready_http(1)])],
            chains: &[
                ("svc-default/web/tcp/http", &[MARK_HOST, "meta l4proto tcp dnat ip to 10.1.0.1:8080"]),
                ("ext-default/web/tcp/http", &["jump mark-for-masquerade", "goto svc-default/web/tcp/http"]),
            ],
            elements: &[
                ("service-ips", "10.96.0.20 . tcp . 80", "goto svc-default/web/tcp/http"),
                ("service-nodeports", "tcp . 30080", "goto ext-default/web/tcp/http"),
                ("hairpin", "10.1.0.1 . 10.1.0.1", ""),
            ],
            affinity_sets: &[],
            counts: (1, 1),
        },
        Case {
            name: "ClientIP affinity remembers each client per endpoint",
            services: vec![affinity],
            chains: &[
                (
                    "svc-default/web/tcp/http",
                    &[
                        MARK_HOST,
                        "ip saddr @aff-default/web/tcp/http/10.1.0.1/8080 goto aep-default/web/tcp/http/10.1.0.1/8080",
                        "ip saddr @aff-default/web/tcp/http/10.1.0.2/8080 goto aep-default/web/tcp/http/10.1.0.2/8080",
                        "numgen random mod 2 vmap { 0 : goto aep-default/web/tcp/http/10.1.0.1/8080, 1 : goto \
                         aep-default/web/tcp/http/10.1.0.2/8080 }",
                    ],
                ),
                (
                    "aep-default/web/tcp/http/10.1.0.1/8080",
                    &[
                        "update @aff-default/web/tcp/http/10.1.0.1/8080 { ip saddr }",
                        "meta l4proto tcp dnat ip to 10.1.0.1:8080",
                    ],
                ),
                (
                    "aep-default/web/tcp/http/10.1.0.2/8080",
                    &[
                        "update @aff-default/web/tcp/http/10.1.0.2/8080 { ip saddr }",
                        "meta l4proto tcp dnat ip to 10.1.0.2:8080",
                    ],
                ),
            ],
            elements: &[
                ("service-ips", "10.96.0.20 . tcp . 80", "goto svc-default/web/tcp/http"),
                ("hairpin", "10.1.0.1 . 10.1.0.1", ""),
                ("hairpin", "10.1.0.2 . 10.1.0.2", ""),
            ],
            affinity_sets: &[
                ("aff-default/web/tcp/http/10.1.0.1/8080", "type ipv4_addr; flags dynamic,timeout; timeout 600s;"),
                ("aff-default/web/tcp/http/10.1.0.2/8080", "type ipv4_addr; flags dynamic,timeout; timeout 600s;"),
            ],
            counts: (1, 2),
        },
        Case {
            name: "without endpoints the ClusterIP and the NodePort are rejected",
            services: vec![web(
                ServiceType::NodePort,
                Some(30080),
                vec![endpoint([10, 1, 0, 1], (false, false, false), &[("http", Protocol::Tcp, 8080)])],
            )],
            chains: &[],
            elements: &[
                ("no-endpoint-services", "10.96.0.20 . tcp . 80", "goto no-endpoints"),
                ("no-endpoint-nodeports", "tcp . 30080", "goto no-endpoints"),
            ],
            affinity_sets: &[],
            counts: (1, 0),
        },
        Case {
            name: "serving terminating endpoints take traffic when none is ready",
            services: vec![web(
                ServiceType::ClusterIp,
                None,
                vec![
                    endpoint([10, 1, 0, 1], (false, true, true), &[("http", Protocol::Tcp, 8080)]),
                    endpoint([10, 1, 0, 2], (false, false, true), &[("http", Protocol::Tcp, 8080)]),
                ],
            )],
            chains: &[("svc-default/web/tcp/http", &[MARK_HOST, "meta l4proto tcp dnat ip to 10.1.0.1:8080"])],
            elements: &[
                ("service-ips", "10.96.0.20 . tcp . 80", "goto svc-default/web/tcp/http"),
                ("hairpin", "10.1.0.1 . 10.1.0.1", ""),
            ],
            affinity_sets: &[],
            counts: (1, 1),
        },
        Case {
            name: "headless and ExternalName Services are skipped",
            services: vec![headless, external],
            chains: &[],
            elements: &[],
            affinity_sets: &[],
            counts: (0, 0),
        },
        Case {
            name: "UDP and TCP ports of one Service get a chain each",
            services: vec![dns],
            chains: &[
                ("svc-default/dns/udp/dns", &[MARK_HOST, "meta l4proto udp dnat ip to 10.1.0.7:5353"]),
                ("svc-default/dns/tcp/dns-tcp", &[MARK_HOST, "meta l4proto tcp dnat ip to 10.1.0.7:5353"]),
            ],
            elements: &[
                ("service-ips", "10.96.0.10 . udp . 53", "goto svc-default/dns/udp/dns"),
                ("service-ips", "10.96.0.10 . tcp . 53", "goto svc-default/dns/tcp/dns-tcp"),
                ("hairpin", "10.1.0.7 . 10.1.0.7", ""),
            ],
            affinity_sets: &[],
            counts: (2, 2),
        },
        Case {
            name: "a NodePort Service without a ClusterIP still serves its NodePort",
            services: vec![unallocated],
            chains: &[
                ("svc-default/web/tcp/http", &[MARK_HOST, "meta l4proto tcp dnat ip to 10.1.0.1:8080"]),
                ("ext-default/web/tcp/http", &["jump mark-for-masquerade", "goto svc-default/web/tcp/http"]),
            ],
            elements: &[
                ("service-nodeports", "tcp . 30081", "goto ext-default/web/tcp/http"),
                ("hairpin", "10.1.0.1 . 10.1.0.1", ""),
            ],
            affinity_sets: &[],
            counts: (1, 1),
        },
        Case {
            name: "a ClusterIP Service whose node ports are stale gets no NodePort; one without an IP gets nothing",
            services: vec![
                web(ServiceType::ClusterIp, Some(30082), vec![ready_http(1)]),
                service("none", ServiceType::ClusterIp, &[], vec![port("http", Protocol::Tcp, 80, None)]),
            ],
            chains: &[("svc-default/web/tcp/http", &[MARK_HOST, "meta l4proto tcp dnat ip to 10.1.0.1:8080"])],
            elements: &[
                ("service-ips", "10.96.0.20 . tcp . 80", "goto svc-default/web/tcp/http"),
                ("hairpin", "10.1.0.1 . 10.1.0.1", ""),
            ],
            affinity_sets: &[],
            counts: (1, 1),
        },
        Case {
            name: "a port name that is not an identifier is hashed, never written as syntax",
            services: vec![odd],
            chains: &[(
                "svc-default/odd/tcp/xe664bb1904a28e95",
                &[MARK_HOST, "meta l4proto tcp dnat ip to 10.1.0.9:81"],
            )],
            elements: &[
                ("service-ips", "10.96.0.30 . tcp . 81", "goto svc-default/odd/tcp/xe664bb1904a28e95"),
                ("hairpin", "10.1.0.9 . 10.1.0.9", ""),
            ],
            affinity_sets: &[],
            counts: (1, 1),
        },
    ]
}

fn catalog(services: Vec<ServiceEntry>) -> ServiceCatalog {
    let mut c = ServiceCatalog::default();
    for s in services {
        c.services.insert((s.namespace.clone(), s.name.clone()), s);
    }
    c
}

#[test]
fn golden_chains_and_elements() {
    let skeleton = skeleton(TABLE);
    for case in cases() {
        let rs = render(&catalog(case.services), TABLE);
        assert_eq!(rs.table, TABLE);
        let chains: BTreeMap<String, Vec<String>> = rs
            .chains
            .iter()
            .filter(|(name, _)| !skeleton.chains.contains_key(*name))
            .map(|(name, chain)| (name.clone(), chain.rules.clone()))
            .collect();
        let want: BTreeMap<String, Vec<String>> = case
            .chains
            .iter()
            .map(|(name, rules)| (name.to_string(), rules.iter().map(|r| r.to_string()).collect()))
            .collect();
        assert_eq!(chains, want, "{}: chains", case.name);
        let elements: BTreeSet<(String, String, String)> = rs
            .sets
            .iter()
            .filter_map(|(name, set)| Some((name, set.static_elements()?)))
            .flat_map(|(name, e)| e.iter().map(move |(k, v)| (name.clone(), k.clone(), v.clone())))
            .collect();
        let want: BTreeSet<(String, String, String)> =
            case.elements.iter().map(|(s, k, v)| (s.to_string(), k.to_string(), v.to_string())).collect();
        assert_eq!(elements, want, "{}: elements", case.name);
        let dynamic: BTreeMap<String, String> = rs
            .sets
            .iter()
            .filter(|(_, set)| set.elements == Elements::Dynamic)
            .map(|(name, set)| (name.clone(), set.declaration.clone()))
            .collect();
        let want: BTreeMap<String, String> =
            case.affinity_sets.iter().map(|(n, d)| (n.to_string(), d.to_string())).collect();
        assert_eq!(dynamic, want, "{}: affinity sets", case.name);
        assert_eq!((rs.counts.service_ports, rs.counts.endpoints), case.counts, "{}: counts", case.name);
        for (name, chain) in &skeleton.chains {
            assert_eq!(rs.chains.get(name), Some(chain), "{}: skeleton chain {name}", case.name);
        }
    }
}

#[test]
fn the_skeleton_hooks_services_and_masquerading() {
    let rs = render(&ServiceCatalog::default(), TABLE);
    let rules = |name: &str| rs.chains[name].rules.join("\n");
    assert_eq!(rules("nat-prerouting"), "jump services");
    assert_eq!(rules("nat-output"), "jump services");
    assert_eq!(rules("nat-postrouting"), "jump masquerading");
    assert_eq!(
        rules("services"),
        "ip daddr . meta l4proto . th dport vmap @service-ips\n\
         fib daddr type local meta l4proto . th dport vmap @service-nodeports"
    );
    assert_eq!(
        rules("masquerading"),
        "ct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade\n\
         meta mark & 0x4000 == 0 return\n\
         meta mark set meta mark ^ 0x4000\n\
         masquerade fully-random"
    );
    assert_eq!(rules("no-endpoints"), "reject with icmp type port-unreachable");
    assert!(rules("filter-input").starts_with("ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8"));
    let hooks: Vec<(&str, &str, i32)> =
        rs.chains.values().filter_map(|c| c.hook).map(|h| (h.kind, h.hook, h.priority)).collect();
    assert_eq!(hooks.len(), 6);
    assert!(hooks.contains(&("filter", "output", -90)), "the output check runs after nat-output's DNAT");
    assert_eq!(rs.element_count(), 0);
    assert_eq!(rs.counts, Default::default());
}

#[test]
fn rendering_is_deterministic_and_follows_the_endpoints() {
    let a = render(&catalog(vec![web(ServiceType::ClusterIp, None, vec![ready_http(2), ready_http(1)])]), TABLE);
    let b = render(&catalog(vec![web(ServiceType::ClusterIp, None, vec![ready_http(1), ready_http(2)])]), TABLE);
    assert_eq!(a, b, "endpoint order does not matter");
    let c = render(&catalog(vec![web(ServiceType::ClusterIp, None, vec![ready_http(1)])]), TABLE);
    assert_ne!(a, c);
}

#[test]
fn long_names_stay_within_nft_limits() {
    let mut s = web(ServiceType::NodePort, Some(30080), vec![ready_http(1)]);
    s.namespace = "n".repeat(150);
    s.name = "s".repeat(150);
    s.affinity_timeout = Some(10);
    let rs = render(&catalog(vec![s]), TABLE);
    let longest = rs.chains.keys().chain(rs.sets.keys()).map(String::len).max().unwrap_or(0);
    assert!(longest <= crate::proxy::model::MAX_NAME_LEN, "{longest}");
    assert!(rs.chains.keys().any(|c| c.starts_with("svc-x")), "{:?}", rs.chains.keys());
}
