//! Tests of [`super`]: one table of questions against one catalog.

use hickory_proto::op::Query;
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::*;

fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).expect("service")
}

fn slice(ns: &str, svc: &str, ports: serde_json::Value, endpoints: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{svc}-x"), "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints
    }))
    .expect("slice")
}

fn catalog() -> ServiceCatalog {
    let services = [
        service(serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.100.20", "ports": [
                {"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}})),
        service(serde_json::json!({"metadata": {"name": "web", "namespace": "other"},
            "spec": {"clusterIP": "10.96.100.30", "ports": [{"port": 80}]}})),
        service(serde_json::json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432, "targetPort": 15432}]}})),
        service(serde_json::json!({"metadata": {"name": "empty", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
        service(serde_json::json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}})),
    ];
    let slices = [
        slice(
            "default",
            "web",
            serde_json::json!([{"name": "http", "port": 8080}]),
            serde_json::json!([{"addresses": ["10.224.0.5"], "conditions": {"ready": true}}]),
        ),
        slice(
            "default",
            "db",
            serde_json::json!([{"name": "pg", "port": 15432}]),
            serde_json::json!([
                {"addresses": ["10.224.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.224.0.8"], "conditions": {"ready": true}},
                {"addresses": ["10.224.0.9"], "hostname": "db-2", "conditions": {"ready": false}}
            ]),
        ),
    ];
    ServiceCatalog::build(services.iter(), slices.iter())
}

/// An answer as text: the rcode, then `section name TYPE data` lines.
fn render(resolution: &Resolution) -> Vec<String> {
    let Resolution::Answer(answer) = resolution else { return vec!["FORWARD".into()] };
    let mut out = vec![format!("{:?}", answer.rcode)];
    for (section, records) in [("an", &answer.answers), ("ns", &answer.authorities), ("ad", &answer.additionals)] {
        for r in records {
            assert_eq!(r.ttl, TTL, "{r}");
            out.push(format!("{section} {} {} {}", r.name, r.record_type(), r.data));
        }
    }
    out
}

fn ask(name: &str, qtype: RecordType) -> Vec<String> {
    let domain = ClusterDomain::new("cluster.local").expect("domain");
    let query = Query::query(Name::from_ascii(name).expect("name"), qtype);
    render(&resolve(&query, Some(&catalog()), Zone { domain: &domain, serial: 42 }))
}

const SOA_NS: &str = "ns cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5";

#[test]
fn questions_get_the_answers_coredns_gives() {
    use RecordType::*;
    let soa_answer = SOA_NS.replacen("ns ", "an ", 1);
    let cases: Vec<(&str, RecordType, Vec<&str>)> = vec![
        // A ClusterIP Service: its address; AAAA exists but is empty.
        ("web.default.svc.cluster.local.", A, vec!["NoError", "an web.default.svc.cluster.local. A 10.96.100.20"]),
        ("WEB.default.svc.cluster.local.", A, vec!["NoError", "an WEB.default.svc.cluster.local. A 10.96.100.20"]),
        ("web.other.svc.cluster.local.", A, vec!["NoError", "an web.other.svc.cluster.local. A 10.96.100.30"]),
        ("web.default.svc.cluster.local.", AAAA, vec!["NoError", SOA_NS]),
        ("web.default.svc.cluster.local.", TXT, vec!["NoError", SOA_NS]),
        // SRV for a named port, with the Service as target and its address as additional.
        (
            "_http._tcp.web.default.svc.cluster.local.",
            SRV,
            vec![
                "NoError",
                "an _http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local.",
                "ad web.default.svc.cluster.local. A 10.96.100.20",
            ],
        ),
        (
            "_dns._udp.web.default.svc.cluster.local.",
            SRV,
            vec![
                "NoError",
                "an _dns._udp.web.default.svc.cluster.local. SRV 0 100 53 web.default.svc.cluster.local.",
                "ad web.default.svc.cluster.local. A 10.96.100.20",
            ],
        ),
        ("_http._udp.web.default.svc.cluster.local.", SRV, vec!["NXDomain", SOA_NS]),
        ("_nope._tcp.web.default.svc.cluster.local.", SRV, vec!["NXDomain", SOA_NS]),
        ("_http._tcp.web.default.svc.cluster.local.", A, vec!["NoError", SOA_NS]),
        // The Service name's SRV lists every port.
        (
            "web.default.svc.cluster.local.",
            SRV,
            vec![
                "NoError",
                "an web.default.svc.cluster.local. SRV 0 50 80 web.default.svc.cluster.local.",
                "an web.default.svc.cluster.local. SRV 0 50 53 web.default.svc.cluster.local.",
                "ad web.default.svc.cluster.local. A 10.96.100.20",
            ],
        ),
        // A headless Service: one A per ready endpoint; the unready one is left out.
        (
            "db.default.svc.cluster.local.",
            A,
            vec![
                "NoError",
                "an db.default.svc.cluster.local. A 10.224.0.7",
                "an db.default.svc.cluster.local. A 10.224.0.8",
            ],
        ),
        ("db.default.svc.cluster.local.", AAAA, vec!["NoError", SOA_NS]),
        // Its endpoints by hostname or dashed address; unready ones do not resolve.
        (
            "db-0.db.default.svc.cluster.local.",
            A,
            vec!["NoError", "an db-0.db.default.svc.cluster.local. A 10.224.0.7"],
        ),
        (
            "10-224-0-8.db.default.svc.cluster.local.",
            A,
            vec!["NoError", "an 10-224-0-8.db.default.svc.cluster.local. A 10.224.0.8"],
        ),
        ("db-2.db.default.svc.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        ("db-0.db.default.svc.cluster.local.", AAAA, vec!["NoError", SOA_NS]),
        ("db-0.web.default.svc.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        // Headless SRV: one per endpoint, endpoint names as targets, endpoint ports.
        (
            "_pg._tcp.db.default.svc.cluster.local.",
            SRV,
            vec![
                "NoError",
                "an _pg._tcp.db.default.svc.cluster.local. SRV 0 50 15432 db-0.db.default.svc.cluster.local.",
                "an _pg._tcp.db.default.svc.cluster.local. SRV 0 50 15432 10-224-0-8.db.default.svc.cluster.local.",
                "ad db-0.db.default.svc.cluster.local. A 10.224.0.7",
                "ad 10-224-0-8.db.default.svc.cluster.local. A 10.224.0.8",
            ],
        ),
        // A headless Service with no ready endpoint does not resolve.
        ("empty.default.svc.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        ("_pg._tcp.empty.default.svc.cluster.local.", SRV, vec!["NXDomain", SOA_NS]),
        // ExternalName: a CNAME whatever the type.
        (
            "ext.default.svc.cluster.local.",
            A,
            vec!["NoError", "an ext.default.svc.cluster.local. CNAME db.example.com."],
        ),
        (
            "ext.default.svc.cluster.local.",
            AAAA,
            vec!["NoError", "an ext.default.svc.cluster.local. CNAME db.example.com."],
        ),
        // Pod addresses.
        (
            "10-224-0-9.default.pod.cluster.local.",
            A,
            vec!["NoError", "an 10-224-0-9.default.pod.cluster.local. A 10.224.0.9"],
        ),
        ("x-y.default.pod.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        // Names that do not exist, and names that exist without records.
        ("nope.default.svc.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        ("web.nope.svc.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        ("web.default.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        ("web.default.svc.cluster.local.default.svc.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        ("default.svc.cluster.local.", A, vec!["NoError", SOA_NS]),
        ("nope.svc.cluster.local.", A, vec!["NXDomain", SOA_NS]),
        ("svc.cluster.local.", A, vec!["NoError", SOA_NS]),
        ("cluster.local.", SOA, vec!["NoError", &soa_answer]),
        // Reverse lookups of cluster addresses; other addresses and other names go upstream.
        (
            "20.100.96.10.in-addr.arpa.",
            PTR,
            vec!["NoError", "an 20.100.96.10.in-addr.arpa. PTR web.default.svc.cluster.local."],
        ),
        (
            "7.0.224.10.in-addr.arpa.",
            PTR,
            vec!["NoError", "an 7.0.224.10.in-addr.arpa. PTR db-0.db.default.svc.cluster.local."],
        ),
        (
            "8.0.224.10.in-addr.arpa.",
            PTR,
            vec!["NoError", "an 8.0.224.10.in-addr.arpa. PTR 10-224-0-8.db.default.svc.cluster.local."],
        ),
        ("9.0.224.10.in-addr.arpa.", PTR, vec!["FORWARD"]),
        ("8.8.8.8.in-addr.arpa.", PTR, vec!["FORWARD"]),
        ("20.100.96.10.in-addr.arpa.", A, vec!["FORWARD"]),
        ("example.com.", A, vec!["FORWARD"]),
        ("web.default.svc.cluster.other.", A, vec!["FORWARD"]),
    ];
    for (name, qtype, want) in cases {
        assert_eq!(ask(name, qtype), want, "{name} {qtype}");
    }
}

#[test]
fn without_a_catalog_cluster_names_fail_and_others_are_forwarded() {
    let domain = ClusterDomain::new("cluster.local").expect("domain");
    let zone = Zone { domain: &domain, serial: 1 };
    let query = |n: &str, t| Query::query(Name::from_ascii(n).expect("name"), t);
    let cluster = resolve(&query("web.default.svc.cluster.local.", RecordType::A), None, zone);
    assert_eq!(render(&cluster), ["ServFail"]);
    assert_eq!(resolve(&query("example.com.", RecordType::A), None, zone), Resolution::Forward);
    assert_eq!(resolve(&query("20.100.96.10.in-addr.arpa.", RecordType::PTR), None, zone), Resolution::Forward);
}
