//! Tests of [`super`]: Services joined with their slices, backends and DNS endpoints.

use super::*;

fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).expect("service")
}

fn slice(v: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(v).expect("slice")
}

fn web() -> Service {
    service(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                 "sessionAffinity": "ClientIP",
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                           {"name": "dns", "port": 53, "protocol": "UDP"}]}
    }))
}

fn web_slice(name: &str, endpoints: serde_json::Value) -> EndpointSlice {
    slice(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
        "endpoints": endpoints
    }))
}

#[test]
fn services_join_their_slices_and_ready_endpoints_are_backends() {
    let slices = [
        web_slice(
            "web-a",
            serde_json::json!([
                {"addresses": ["10.1.0.2"], "conditions": {"ready": true}, "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-1"}},
                {"addresses": ["10.1.0.3"], "conditions": {"ready": false, "serving": false}}
            ]),
        ),
        // A rebalance can list one endpoint in two slices.
        web_slice(
            "web-b",
            serde_json::json!([
                {"addresses": ["10.1.0.2"], "conditions": {"ready": true}},
                {"addresses": ["10.1.0.4"]}
            ]),
        ),
    ];
    let catalog = ServiceCatalog::build([&web()], slices.iter());
    let e = catalog.get("default", "web").expect("web");
    assert_eq!(e.service_type, ServiceType::NodePort);
    assert_eq!(e.cluster_ips, [Ipv4Addr::new(10, 96, 0, 20)]);
    assert_eq!(e.affinity_timeout, Some(10_800));
    assert_eq!(
        e.ports[0],
        ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: Some(30080) }
    );
    assert_eq!(e.endpoints.len(), 3, "10.1.0.2 counts once");
    assert_eq!(e.endpoints[0].pod.as_deref(), Some("web-1"));
    let http = e.backends(&e.ports[0]);
    assert_eq!(http, [(Ipv4Addr::new(10, 1, 0, 2), 8080), (Ipv4Addr::new(10, 1, 0, 4), 8080)]);
    assert_eq!(e.backends(&e.ports[1])[0], (Ipv4Addr::new(10, 1, 0, 2), 5353));
    assert_eq!(e.dns_endpoints().count(), 2);
}

#[test]
fn terminating_serving_endpoints_are_the_fallback_when_none_is_ready() {
    let slices = [web_slice(
        "web-a",
        serde_json::json!([
            {"addresses": ["10.1.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.1.0.3"], "conditions": {"ready": false, "serving": false, "terminating": true}}
        ]),
    )];
    let catalog = ServiceCatalog::build([&web()], slices.iter());
    let e = catalog.get("default", "web").expect("web");
    assert_eq!(e.backends(&e.ports[0]), [(Ipv4Addr::new(10, 1, 0, 2), 8080)]);
}

#[test]
fn headless_external_name_and_foreign_slices() {
    let headless = service(serde_json::json!({
        "metadata": {"name": "db", "namespace": "data"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "ports": [{"port": 5432}]}
    }));
    let external = service(serde_json::json!({
        "metadata": {"name": "ext", "namespace": "data"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}
    }));
    let slices = [
        slice(serde_json::json!({
            "metadata": {"name": "db-1", "namespace": "data", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4", "ports": [{"port": 5432}],
            "endpoints": [{"addresses": ["10.1.0.9"], "hostname": "db-0", "conditions": {"ready": false}}]
        })),
        slice(serde_json::json!({
            "metadata": {"name": "db-v6", "namespace": "data", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv6", "endpoints": [{"addresses": ["fd00::1"]}]
        })),
        slice(serde_json::json!({
            "metadata": {"name": "orphan", "namespace": "data"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.10"]}]
        })),
    ];
    let catalog = ServiceCatalog::build([&headless, &external], slices.iter());
    let db = catalog.get("data", "db").expect("db");
    assert!(db.headless && db.cluster_ips.is_empty());
    assert_eq!(db.endpoints.len(), 1);
    assert_eq!(db.endpoints[0].hostname.as_deref(), Some("db-0"));
    assert_eq!(db.dns_endpoints().count(), 1, "publishNotReadyAddresses publishes unready endpoints");
    assert!(db.backends(&db.ports[0]).is_empty(), "but they get no traffic");
    let ext = catalog.get("data", "ext").expect("ext");
    assert_eq!(ext.external_name.as_deref(), Some("db.example.com"));
    assert!(ext.cluster_ips.is_empty());
}
