//! Tests of [`super`]: the full script's golden text and what a diff touches, in which order.

use std::net::Ipv4Addr;

use super::*;
use crate::proxy::render::render;
use crate::services::{Endpoint, Protocol, ServiceCatalog, ServiceEntry, ServicePort, ServiceType};

const TABLE: &str = "gantry-proxy-n1";

fn endpoint(last: u8) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 1, 0, last),
        ready: true,
        serving: true,
        terminating: false,
        hostname: None,
        node_name: None,
        pod: None,
        ports: [(("http".to_string(), Protocol::Tcp), 8080)].into_iter().collect(),
    }
}

/// Service `name` on 10.96.0.`ip`:80 with endpoints 10.1.0.`e`:8080.
fn service(name: &str, ip: u8, endpoints: &[u8], affinity: Option<u32>) -> ServiceEntry {
    ServiceEntry {
        namespace: "default".into(),
        name: name.into(),
        service_type: ServiceType::ClusterIp,
        cluster_ips: vec![Ipv4Addr::new(10, 96, 0, ip)],
        headless: false,
        external_name: None,
        ports: vec![ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None }],
        affinity_timeout: affinity,
        publish_not_ready: false,
        endpoints: endpoints.iter().map(|e| endpoint(*e)).collect(),
    }
}

fn rules(services: Vec<ServiceEntry>) -> RuleSet {
    let mut c = ServiceCatalog::default();
    for s in services {
        c.services.insert((s.namespace.clone(), s.name.clone()), s);
    }
    render(&c, TABLE)
}

/// Index of the first line of `script` that equals `line`.
fn line_at(script: &str, line: &str) -> usize {
    script.lines().position(|l| l == line).unwrap_or_else(|| panic!("{line:?} missing from\n{script}"))
}

#[test]
fn a_full_script_writes_everything_and_deletes_what_the_kernel_has_beyond_it() {
    let desired = rules(vec![service("web", 20, &[1], None)]);
    let existing = KernelObjects {
        chains: ["services".to_string(), "svc-default/old/tcp/http".to_string()].into_iter().collect(),
        sets: [("aff-default/old/tcp/http/10.1.0.9/8080".to_string(), SetKind::Set)].into_iter().collect(),
    };
    let script = full(&desired, &existing);
    let golden = "\
add table ip gantry-proxy-n1
flush table ip gantry-proxy-n1
add chain ip gantry-proxy-n1 endpoints-check
add chain ip gantry-proxy-n1 filter-forward { type filter hook forward priority -110; }
add chain ip gantry-proxy-n1 filter-input { type filter hook input priority -110; }
add chain ip gantry-proxy-n1 filter-output { type filter hook output priority -90; }
add chain ip gantry-proxy-n1 mark-for-masquerade
add chain ip gantry-proxy-n1 masquerading
add chain ip gantry-proxy-n1 nat-output { type nat hook output priority -100; }
add chain ip gantry-proxy-n1 nat-postrouting { type nat hook postrouting priority 100; }
add chain ip gantry-proxy-n1 nat-prerouting { type nat hook prerouting priority -100; }
add chain ip gantry-proxy-n1 no-endpoints
add chain ip gantry-proxy-n1 services
add chain ip gantry-proxy-n1 svc-default/web/tcp/http
add set ip gantry-proxy-n1 hairpin { type ipv4_addr . ipv4_addr; }
flush set ip gantry-proxy-n1 hairpin
add map ip gantry-proxy-n1 no-endpoint-nodeports { type inet_proto . inet_service : verdict; }
flush map ip gantry-proxy-n1 no-endpoint-nodeports
add map ip gantry-proxy-n1 no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }
flush map ip gantry-proxy-n1 no-endpoint-services
add map ip gantry-proxy-n1 service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
flush map ip gantry-proxy-n1 service-ips
add map ip gantry-proxy-n1 service-nodeports { type inet_proto . inet_service : verdict; }
flush map ip gantry-proxy-n1 service-nodeports
delete set ip gantry-proxy-n1 aff-default/old/tcp/http/10.1.0.9/8080
delete chain ip gantry-proxy-n1 svc-default/old/tcp/http
add rule ip gantry-proxy-n1 endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip gantry-proxy-n1 endpoints-check fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ip gantry-proxy-n1 filter-forward ct state new jump endpoints-check
add rule ip gantry-proxy-n1 filter-input ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct status & dnat == 0 drop
add rule ip gantry-proxy-n1 filter-input ct state new jump endpoints-check
add rule ip gantry-proxy-n1 filter-output ct state new jump endpoints-check
add rule ip gantry-proxy-n1 mark-for-masquerade meta mark set meta mark | 0x4000
add rule ip gantry-proxy-n1 masquerading ct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade
add rule ip gantry-proxy-n1 masquerading meta mark & 0x4000 == 0 return
add rule ip gantry-proxy-n1 masquerading meta mark set meta mark ^ 0x4000
add rule ip gantry-proxy-n1 masquerading masquerade fully-random
add rule ip gantry-proxy-n1 nat-output jump services
add rule ip gantry-proxy-n1 nat-postrouting jump masquerading
add rule ip gantry-proxy-n1 nat-prerouting jump services
add rule ip gantry-proxy-n1 no-endpoints reject with icmp type port-unreachable
add rule ip gantry-proxy-n1 services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip gantry-proxy-n1 services fib daddr type local meta l4proto . th dport vmap @service-nodeports
add rule ip gantry-proxy-n1 svc-default/web/tcp/http fib saddr type local jump mark-for-masquerade
add rule ip gantry-proxy-n1 svc-default/web/tcp/http meta l4proto tcp dnat ip to 10.1.0.1:8080
add element ip gantry-proxy-n1 hairpin { 10.1.0.1 . 10.1.0.1 }
add element ip gantry-proxy-n1 service-ips { 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/http }
";
    assert_eq!(script, golden);
}

#[test]
fn an_unchanged_table_needs_no_transaction() {
    let a = rules(vec![service("web", 20, &[1, 2], Some(60)), service("api", 21, &[3], None)]);
    assert_eq!(diff(&a, &a.clone()), None);
}

#[test]
fn a_diff_touches_only_the_service_that_changed() {
    let others: Vec<ServiceEntry> =
        (0..50).map(|i| service(&format!("other-{i}"), 100 + i, &[100 + i], None)).collect();
    let mut before = others.clone();
    before.push(service("web", 20, &[1, 2], None));
    let mut after = others;
    after.push(service("web", 20, &[1, 2, 3], None));
    let script = diff(&rules(before), &rules(after)).expect("changed");
    assert_eq!(
        script,
        "\
flush chain ip gantry-proxy-n1 svc-default/web/tcp/http
add rule ip gantry-proxy-n1 svc-default/web/tcp/http fib saddr type local jump mark-for-masquerade
add rule ip gantry-proxy-n1 svc-default/web/tcp/http meta l4proto tcp dnat ip addr . port to numgen random mod 3 map \
         { 0 : 10.1.0.1 . 8080, 1 : 10.1.0.2 . 8080, 2 : 10.1.0.3 . 8080 }
add element ip gantry-proxy-n1 hairpin { 10.1.0.3 . 10.1.0.3 }
"
    );
}

#[test]
fn a_deleted_service_loses_its_elements_then_its_chain() {
    let before = rules(vec![service("web", 20, &[1], None), service("api", 21, &[3], None)]);
    let after = rules(vec![service("api", 21, &[3], None)]);
    let script = diff(&before, &after).expect("changed");
    let element = line_at(&script, "delete element ip gantry-proxy-n1 service-ips { 10.96.0.20 . tcp . 80 }");
    let flush = line_at(&script, "flush chain ip gantry-proxy-n1 svc-default/web/tcp/http");
    let delete = line_at(&script, "delete chain ip gantry-proxy-n1 svc-default/web/tcp/http");
    line_at(&script, "delete element ip gantry-proxy-n1 hairpin { 10.1.0.1 . 10.1.0.1 }");
    assert!(element < flush && flush < delete, "{script}");
    assert!(!script.contains("api"), "{script}");
    assert_eq!(script.lines().count(), 4, "{script}");
}

#[test]
fn an_affinity_endpoint_that_goes_takes_its_chain_and_set_after_the_references() {
    let before = rules(vec![service("web", 20, &[1, 2], Some(60))]);
    let after = rules(vec![service("web", 20, &[1], Some(60))]);
    let script = diff(&before, &after).expect("changed");
    let flush_service = line_at(&script, "flush chain ip gantry-proxy-n1 svc-default/web/tcp/http");
    let flush_endpoint = line_at(&script, "flush chain ip gantry-proxy-n1 aep-default/web/tcp/http/10.1.0.2/8080");
    let delete_set = line_at(&script, "delete set ip gantry-proxy-n1 aff-default/web/tcp/http/10.1.0.2/8080");
    let delete_chain = line_at(&script, "delete chain ip gantry-proxy-n1 aep-default/web/tcp/http/10.1.0.2/8080");
    assert!(flush_service < delete_set && flush_endpoint < delete_set && delete_set < delete_chain, "{script}");
    // The endpoint that stays keeps its chain and its set (and so its clients).
    let own_objects = |l: &&str| !l.starts_with("add rule") && l.contains("10.1.0.1/8080");
    assert_eq!(script.lines().filter(own_objects).count(), 0, "{script}");
    line_at(
        &script,
        "add rule ip gantry-proxy-n1 svc-default/web/tcp/http ip saddr @aff-default/web/tcp/http/10.1.0.1/8080 goto \
         aep-default/web/tcp/http/10.1.0.1/8080",
    );
}

#[test]
fn a_changed_affinity_timeout_redeclares_the_sets() {
    let before = rules(vec![service("web", 20, &[1], Some(60))]);
    let after = rules(vec![service("web", 20, &[1], Some(120))]);
    let script = diff(&before, &after).expect("changed");
    assert_eq!(
        script,
        "add set ip gantry-proxy-n1 aff-default/web/tcp/http/10.1.0.1/8080 { type ipv4_addr; flags dynamic,timeout; \
         timeout 120s; }\n"
    );
}

#[test]
fn endpoints_arriving_move_a_service_from_reject_to_its_chain() {
    let before = rules(vec![service("web", 20, &[], None)]);
    let after = rules(vec![service("web", 20, &[1], None)]);
    let script = diff(&before, &after).expect("changed");
    let gone = line_at(&script, "delete element ip gantry-proxy-n1 no-endpoint-services { 10.96.0.20 . tcp . 80 }");
    let chain = line_at(&script, "add chain ip gantry-proxy-n1 svc-default/web/tcp/http");
    let element = line_at(
        &script,
        "add element ip gantry-proxy-n1 service-ips { 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/http }",
    );
    assert!(gone < chain && chain < element, "{script}");
    // And back: the chain goes, the reject comes back.
    let back = diff(&after, &before).expect("changed");
    line_at(&back, "delete chain ip gantry-proxy-n1 svc-default/web/tcp/http");
    line_at(&back, "add element ip gantry-proxy-n1 no-endpoint-services { 10.96.0.20 . tcp . 80 : goto no-endpoints }");
}

#[test]
fn deleting_a_table_succeeds_whether_or_not_it_exists() {
    assert_eq!(delete_table("gantry-proxy-n1"), "add table ip gantry-proxy-n1\ndelete table ip gantry-proxy-n1\n");
}
