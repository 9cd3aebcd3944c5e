//! The service proxy's nftables transactions against the real kernel, in a network namespace of the
//! test's own (no cluster, no containerd): every rendered table loads, and applying the difference
//! between two tables leaves the kernel exactly as writing the second one whole does; a full sync
//! over a stale table deletes what the new one lacks; deleting the table leaves nothing. Needs root
//! and `nft` (nftables).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use gantry_node_agent::proxy::nft::{Netfilter, Nft};
use gantry_node_agent::proxy::script::{self, KernelObjects};
use gantry_node_agent::proxy::{render, RuleSet};
use gantry_node_agent::services::{Endpoint, Protocol, ServiceCatalog, ServiceEntry, ServicePort, ServiceType};
use serde_json::Value;

const TABLE: &str = "gantry-proxy-kernel-test";

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("gpx-kt-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        let out = Command::new("ip").args(["netns", "add", &name]).output().expect("ip netns add");
        assert!(out.status.success(), "ip netns add: {}", String::from_utf8_lossy(&out.stderr));
        Self(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).output();
    }
}

fn endpoint(ip: [u8; 4], ready: bool, ports: &[(&str, Protocol, u16)]) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::from(ip),
        ready,
        serving: ready,
        terminating: false,
        hostname: None,
        node_name: None,
        pod: None,
        ports: ports.iter().map(|(n, p, port)| ((n.to_string(), *p), *port)).collect(),
    }
}

fn service(
    name: &str,
    service_type: ServiceType,
    ip: Option<[u8; 4]>,
    ports: &[(&str, Protocol, u16, Option<u16>)],
    affinity: Option<u32>,
    endpoints: Vec<Endpoint>,
) -> ServiceEntry {
    ServiceEntry {
        namespace: "default".into(),
        name: name.into(),
        service_type,
        cluster_ips: ip.map(Ipv4Addr::from).into_iter().collect(),
        headless: false,
        external_name: None,
        ports: ports
            .iter()
            .map(|(n, p, port, node_port)| ServicePort {
                name: n.to_string(),
                protocol: *p,
                port: *port,
                node_port: *node_port,
            })
            .collect(),
        affinity_timeout: affinity,
        publish_not_ready: false,
        endpoints,
    }
}

fn rules(services: Vec<ServiceEntry>) -> RuleSet {
    let mut c = ServiceCatalog::default();
    for s in services {
        c.services.insert((s.namespace.clone(), s.name.clone()), s);
    }
    render(&c, TABLE)
}

/// Three generations of a small cluster: every kind of entry appears, changes and goes.
fn generations() -> Vec<RuleSet> {
    let http = |ip: [u8; 4]| endpoint(ip, true, &[("http", Protocol::Tcp, 8080)]);
    let dns = |ip: [u8; 4]| endpoint(ip, true, &[("dns", Protocol::Udp, 5353), ("dns-tcp", Protocol::Tcp, 5353)]);
    let web_port = [("http", Protocol::Tcp, 80, Some(30080))];
    let sticky_port = [("http", Protocol::Tcp, 80, None)];
    let dns_ports = [("dns", Protocol::Udp, 53, None), ("dns-tcp", Protocol::Tcp, 53, None)];
    vec![
        rules(vec![
            service(
                "web",
                ServiceType::NodePort,
                Some([10, 96, 0, 20]),
                &web_port,
                None,
                vec![http([10, 1, 0, 1]), http([10, 1, 0, 2]), http([10, 1, 0, 3])],
            ),
            service(
                "sticky",
                ServiceType::ClusterIp,
                Some([10, 96, 0, 21]),
                &sticky_port,
                Some(600),
                vec![http([10, 1, 0, 4]), http([10, 1, 0, 5])],
            ),
            service(
                "empty",
                ServiceType::NodePort,
                Some([10, 96, 0, 22]),
                &[("http", Protocol::Tcp, 80, Some(30082))],
                None,
                vec![],
            ),
            service(
                "idle",
                ServiceType::NodePort,
                Some([10, 96, 0, 23]),
                &[("http", Protocol::Tcp, 80, Some(30081))],
                None,
                vec![endpoint([10, 1, 0, 6], false, &[("http", Protocol::Tcp, 8080)])],
            ),
        ]),
        rules(vec![
            service(
                "web",
                ServiceType::NodePort,
                Some([10, 96, 0, 20]),
                &web_port,
                None,
                vec![http([10, 1, 0, 1]), http([10, 1, 0, 3])],
            ),
            service(
                "sticky",
                ServiceType::ClusterIp,
                Some([10, 96, 0, 21]),
                &sticky_port,
                Some(900),
                vec![http([10, 1, 0, 5]), http([10, 1, 0, 7])],
            ),
            service(
                "idle",
                ServiceType::NodePort,
                Some([10, 96, 0, 23]),
                &[("http", Protocol::Tcp, 80, Some(30081))],
                None,
                vec![http([10, 1, 0, 6])],
            ),
            service("dns", ServiceType::ClusterIp, Some([10, 96, 0, 10]), &dns_ports, None, vec![dns([10, 1, 0, 8])]),
        ]),
        rules(vec![service(
            "dns",
            ServiceType::ClusterIp,
            Some([10, 96, 0, 10]),
            &dns_ports,
            None,
            vec![dns([10, 1, 0, 8]), dns([10, 1, 0, 9])],
        )]),
    ]
}

/// The table as listed by `nft -j`, without handles and with set elements in a fixed order:
/// chains with their rules in order, and sets with their declarations and elements.
async fn listing(nft: &Nft) -> BTreeMap<String, Vec<String>> {
    let text = nft.output(&["-j", "list", "table", "ip", TABLE]).await.expect("list table");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in doc["nftables"].as_array().expect("nftables array") {
        let Some((kind, object)) = item.as_object().and_then(|o| o.iter().next()) else { continue };
        let mut object = object.clone();
        canonical(&mut object);
        let key = match kind.as_str() {
            "rule" => format!("chain {}", object["chain"].as_str().unwrap_or_default()),
            "chain" | "set" | "map" => format!("{kind} {}", object["name"].as_str().unwrap_or_default()),
            _ => continue,
        };
        out.entry(key).or_default().push(object.to_string());
    }
    out
}

/// Drops handles and sorts element lists, recursively.
fn canonical(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("handle");
            for (key, value) in map.iter_mut() {
                canonical(value);
                if key == "elem" || key == "set" {
                    if let Value::Array(items) = value {
                        items.sort_by_key(|i| i.to_string());
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonical),
        _ => {}
    }
}

#[tokio::test]
async fn differences_leave_the_kernel_as_full_writes_do() {
    let ns = Netns::new();
    let nft = Nft::in_network_namespace(&ns.0);
    let tables = generations();
    let empty = KernelObjects::default();
    let mut previous: Option<&RuleSet> = None;
    for (i, desired) in tables.iter().enumerate() {
        // Reach `desired` from the previous generation with a difference...
        match previous {
            None => nft.apply(script::full(desired, &empty)).await.expect("first full script"),
            Some(applied) => {
                let step = script::diff(applied, desired).expect("generations differ");
                nft.apply(step.clone()).await.unwrap_or_else(|e| panic!("generation {i}: {e}\n{step}"));
            }
        }
        let by_difference = listing(&nft).await;
        // ...and by writing it whole into an empty namespace: the same table.
        nft.apply(script::delete_table(TABLE)).await.expect("delete table");
        nft.apply(script::full(desired, &empty)).await.expect("full script");
        let whole = listing(&nft).await;
        assert_eq!(by_difference, whole, "generation {i}");
        assert!(whole.keys().any(|k| k.starts_with("chain svc-")), "generation {i} has service chains");
        previous = Some(desired);
    }
    // A full sync over the first generation's table, knowing what the kernel holds, gives the last.
    let (first, last) = (&tables[0], &tables[tables.len() - 1]);
    nft.apply(script::delete_table(TABLE)).await.expect("delete table");
    nft.apply(script::full(first, &empty)).await.expect("full script");
    let existing = nft.objects(TABLE).await.expect("objects");
    assert!(existing.chains.contains("svc-default/web/tcp/http") && existing.sets.len() >= 7, "{existing:?}");
    nft.apply(script::full(last, &existing)).await.expect("full over a stale table");
    let over_stale = listing(&nft).await;
    assert!(!over_stale.keys().any(|k| k.contains("web") || k.contains("sticky")), "{:#?}", over_stale.keys());
    nft.apply(script::delete_table(TABLE)).await.expect("delete table");
    nft.apply(script::full(last, &empty)).await.expect("full script");
    assert_eq!(over_stale, listing(&nft).await);
    // Deleting the table twice is fine and leaves nothing.
    nft.apply(script::delete_table(TABLE)).await.expect("delete table");
    nft.apply(script::delete_table(TABLE)).await.expect("delete a missing table");
    let ruleset = nft.output(&["list", "ruleset"]).await.expect("list ruleset");
    assert!(!ruleset.contains(TABLE), "{ruleset}");
}
