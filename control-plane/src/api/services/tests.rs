//! Allocation through this replica's whole API (a real single-replica store, the in-process service,
//! a kube-rs client): every write and delete path keeps the reservation keys exactly in step with the
//! Services (checked by running the repair planner over the store and expecting nothing to fix),
//! requested values are refused with upstream's messages, `dryRun` reserves nothing, small ranges
//! fill up and free up, and the repair pass fixes what allocation did not write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use raft_store::mvcc::model::{KeyRange, PutRequest, RangeRequest};
use raft_store::{Store, StoreConfig};
use serde_json::{json, Value};

use super::allocation::{Pool, Resource};
use super::ranges::{ClusterIpRange, NodePortRange, ServiceRanges};
use super::repair::{self, plan_repair, RepairPlan};
use super::reservations::{self, Owner};
use crate::api::auth::{Authenticator, UserInfo};
use crate::api::{pki, tls, ApiConfig, ApiServer};

struct Env {
    store: Store,
    server: ApiServer,
    client: kube::Client,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Env {
    /// Stops the background tasks and the store (RocksDB must not be torn down under its threads
    /// at process exit).
    async fn close(self) {
        self.stop.send_replace(true);
        self.store.shutdown().await;
    }
}

async fn env(ranges: ServiceRanges) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut config = StoreConfig::new(1, dir.path().join("data"), BTreeMap::from([(1, format!("127.0.0.1:{port}"))]));
    config.heartbeat_interval = Duration::from_millis(50);
    config.election_timeout_min = Duration::from_millis(150);
    config.election_timeout_max = Duration::from_millis(300);
    let store = Store::open(config).await.expect("open store");
    store.wait_for_leader(Duration::from_secs(10)).await.expect("leader");
    let pki = pki::ensure_pki(&dir.path().join("pki"), &["127.0.0.1".into()], "https://127.0.0.1:6443").expect("pki");
    let api_config = ApiConfig {
        tls: tls::server_config(&pki).expect("tls"),
        authenticator: Arc::new(Authenticator::new(None).expect("authenticator")),
        max_body_bytes: 1 << 20,
        advertise_address: "127.0.0.1:6443".into(),
        kubelet_tls: tls::kubelet_client_config(&pki).expect("kubelet tls"),
        service_ranges: ranges,
    };
    let server = ApiServer::new(api_config, store.clone(), prometheus::Registry::new()).expect("server");
    crate::api::bootstrap::ensure_bootstrap_objects(server.objects()).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx = stop_rx.clone();
    tokio::spawn(crate::api::namespace_cleanup::run_namespace_cleanup(server.objects().clone(), async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    let admin = UserInfo { name: "admin".into(), uid: String::new(), groups: vec!["system:masters".into()] };
    let client = kube::Client::new(server.local_service(admin), "default");
    Env { store, server, client, stop, _dir: dir }
}

fn services(env: &Env, ns: &str) -> Api<Service> {
    Api::namespaced(env.client.clone(), ns)
}

fn svc(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}))
        .expect("service json")
}

fn cluster_ip_svc(name: &str) -> Service {
    svc(name, json!({"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}))
}

fn node_port_svc(name: &str) -> Service {
    svc(name, json!({"type": "NodePort", "selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}))
}

fn ip_of(s: &Service) -> String {
    s.spec.as_ref().and_then(|s| s.cluster_ip.clone()).unwrap_or_default()
}

fn node_ports_of(s: &Service) -> Vec<i32> {
    s.spec.as_ref().and_then(|s| s.ports.as_ref()).into_iter().flatten().filter_map(|p| p.node_port).collect()
}

async fn ns(env: &Env, name: &str) {
    let api: Api<Namespace> = Api::all(env.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    api.create(&PostParams::default(), &ns).await.expect("create namespace");
}

/// Every reservation key in the store: value and owner.
async fn reserved(store: &Store) -> BTreeMap<Resource, Owner> {
    let mut out = BTreeMap::new();
    for pool in [Pool::ClusterIp, Pool::NodePort] {
        let req = RangeRequest {
            range: KeyRange::prefix(reservations::prefix(pool).as_bytes().to_vec()),
            ..Default::default()
        };
        let (resp, _) = store.range(req, false).await.expect("range");
        for kv in resp.kvs {
            let r = reservations::parse_key(&kv.key).expect("reservation key");
            out.insert(r, Owner::decode(&kv.value).expect("owner"));
        }
    }
    out
}

/// The store holds exactly the reservations its Services hold: the repair planner finds nothing.
async fn assert_consistent(env: &Env, context: &str) {
    let (services, found) = {
        let def = crate::api::resources::find("", "v1", "services").expect("services");
        let (resp, _) = env
            .store
            .range(RangeRequest { range: KeyRange::prefix(def.key_prefix().into_bytes()), ..Default::default() }, false)
            .await
            .expect("range");
        let services: Vec<repair::ServiceRecord> = resp
            .kvs
            .iter()
            .map(|kv| repair::ServiceRecord {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                object: serde_json::from_slice(&kv.value).expect("json"),
                mod_revision: kv.mod_revision,
                create_revision: kv.create_revision,
            })
            .collect();
        let found: Vec<repair::ReservationRecord> = reserved(&env.store)
            .await
            .into_iter()
            .map(|(resource, owner)| repair::ReservationRecord { resource, owner: Some(owner), mod_revision: 0 })
            .collect();
        (services, found)
    };
    let plan = plan_repair(env.server.objects().services().ranges(), &services, &found);
    assert_eq!(plan, RepairPlan::default(), "{context}: reservations out of step with services");
}

fn api_message(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_get_unique_values_and_requested_ones_are_checked() {
    let env = env(ServiceRanges::default()).await;
    let api = services(&env, "default");
    let a = api.create(&PostParams::default(), &cluster_ip_svc("a")).await.expect("create a");
    let spec = a.spec.as_ref().expect("spec");
    let ip: std::net::Ipv4Addr = ip_of(&a).parse().expect("an IPv4 cluster IP");
    assert!(ServiceRanges::default().cluster_ip.is_assignable(ip), "{ip}");
    assert_eq!(spec.cluster_ips.as_deref(), Some(&[ip.to_string()][..]));
    assert_eq!(spec.ip_families.as_deref(), Some(&["IPv4".to_string()][..]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert!(node_ports_of(&a).is_empty());
    let b = api.create(&PostParams::default(), &node_port_svc("b")).await.expect("create b");
    let np = node_ports_of(&b);
    assert_eq!(np.len(), 1);
    assert!((30000..=32767).contains(&np[0]));
    assert_ne!(ip_of(&a), ip_of(&b));
    assert_eq!(
        reserved(&env.store).await.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            Resource::ClusterIp(ip),
            Resource::ClusterIp(ip_of(&b).parse().expect("ip")),
            Resource::NodePort(np[0] as u16)
        ])
    );

    // A requested IP: honoured, then refused for another Service.
    let fixed = svc("fixed", json!({"clusterIP": "10.96.0.50", "ports": [{"port": 53, "protocol": "UDP"}]}));
    assert_eq!(ip_of(&api.create(&PostParams::default(), &fixed).await.expect("requested ip")), "10.96.0.50");
    let again = svc("again", json!({"clusterIP": "10.96.0.50", "ports": [{"port": 53}]}));
    let (code, message) = api_message(api.create(&PostParams::default(), &again).await.expect_err("taken"));
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "Service \"again\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.50\"}: failed to allocate IP 10.96.0.50: provided IP is already allocated"
    );
    let outside = svc("outside", json!({"clusterIP": "10.200.0.1", "ports": [{"port": 53}]}));
    let (code, message) = api_message(api.create(&PostParams::default(), &outside).await.expect_err("outside"));
    assert_eq!(code, 422);
    assert!(message.ends_with("failed to allocate IP 10.200.0.1: the provided IP (10.200.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"), "{message}");
    // A requested node port: taken and out of range.
    let taken_port = svc("tp", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": np[0]}]}));
    let (code, message) = api_message(api.create(&PostParams::default(), &taken_port).await.expect_err("taken port"));
    assert_eq!(code, 422);
    assert_eq!(
        message,
        format!(
            "Service \"tp\" is invalid: spec.ports[0].nodePort: Invalid value: {}: provided port is already allocated",
            np[0]
        )
    );
    let low_port = svc("lp", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}));
    let (_, message) = api_message(api.create(&PostParams::default(), &low_port).await.expect_err("low port"));
    assert!(message.ends_with("spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"), "{message}");
    // Headless and ExternalName Services hold nothing.
    let headless = api
        .create(&PostParams::default(), &svc("h", json!({"clusterIP": "None", "selector": {"app": "h"}})))
        .await
        .expect("headless");
    assert_eq!(ip_of(&headless), "None");
    let external = api
        .create(&PostParams::default(), &svc("x", json!({"type": "ExternalName", "externalName": "example.com"})))
        .await
        .expect("external name");
    assert_eq!(ip_of(&external), "");
    assert_eq!(reserved(&env.store).await.len(), 4, "a, b (ip + port) and fixed");
    assert_consistent(&env, "after creates").await;
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_type_changes_and_every_delete_path_keep_reservations_in_step() {
    let env = env(ServiceRanges::default()).await;
    let api = services(&env, "default");
    let pp = PatchParams::default();
    let s = api.create(&PostParams::default(), &cluster_ip_svc("s")).await.expect("create");
    let ip = ip_of(&s);
    // A replace without clusterIP keeps it (kubectl replace of the original manifest).
    let mut replaced = cluster_ip_svc("s");
    replaced.metadata.resource_version = s.metadata.resource_version.clone();
    let replaced = api.replace("s", &PostParams::default(), &replaced).await.expect("replace");
    assert_eq!(ip_of(&replaced), ip);
    // ClusterIP -> NodePort allocates a port, keeps the IP.
    let np = api.patch("s", &pp, &Patch::Merge(json!({"spec": {"type": "NodePort"}}))).await.expect("to NodePort");
    assert_eq!(ip_of(&np), ip);
    let port = node_ports_of(&np)[0];
    assert_consistent(&env, "ClusterIP -> NodePort").await;
    // Changing the node port reserves the new one and releases the old one in one write.
    let moved = api
        .patch("s", &pp, &Patch::Merge(json!({"spec": {"ports": [{"name": "http", "port": 80, "nodePort": 31234}]}})))
        .await
        .expect("move node port");
    assert_eq!(node_ports_of(&moved), vec![31234]);
    let held = reserved(&env.store).await;
    assert!(held.contains_key(&Resource::NodePort(31234)) && !held.contains_key(&Resource::NodePort(port as u16)));
    // NodePort -> ClusterIP releases the port.
    let back = api.patch("s", &pp, &Patch::Merge(json!({"spec": {"type": "ClusterIP"}}))).await.expect("to ClusterIP");
    assert!(node_ports_of(&back).is_empty());
    assert_consistent(&env, "NodePort -> ClusterIP").await;
    assert_eq!(reserved(&env.store).await.len(), 1);
    // -> ExternalName releases the IP; -> ClusterIP gets a new one.
    let external = api
        .patch("s", &pp, &Patch::Merge(json!({"spec": {"type": "ExternalName", "externalName": "example.com"}})))
        .await
        .expect("to ExternalName");
    assert_eq!(ip_of(&external), "");
    assert!(reserved(&env.store).await.is_empty());
    api.patch("s", &pp, &Patch::Merge(json!({"spec": {"type": "ClusterIP", "externalName": null}})))
        .await
        .expect("back to ClusterIP");
    assert_eq!(reserved(&env.store).await.len(), 1);
    // The clusterIP cannot be changed.
    let e = api
        .patch("s", &pp, &Patch::Merge(json!({"spec": {"clusterIP": "10.96.9.9", "clusterIPs": ["10.96.9.9"]}})))
        .await;
    assert_eq!(api_message(e.expect_err("immutable")).0, 422);
    // Server-side apply of a manifest without clusterIP keeps it.
    let applied = api
        .patch(
            "s",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}})),
        )
        .await
        .expect("apply");
    assert_eq!(node_ports_of(&applied).len(), 1);
    assert_consistent(&env, "apply").await;

    // Plain delete.
    api.delete("s", &DeleteParams::default()).await.expect("delete");
    assert!(reserved(&env.store).await.is_empty(), "delete releases everything");
    // A finalizer keeps the Service (and its values) until it is removed.
    let mut held_back = node_port_svc("f");
    held_back.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held_back).await.expect("create f");
    api.delete("f", &DeleteParams::default()).await.expect("delete f");
    assert_eq!(reserved(&env.store).await.len(), 2, "still held while the finalizer is there");
    api.patch("f", &pp, &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.expect("finalize");
    assert!(api.get_opt("f").await.expect("get").is_none());
    assert!(reserved(&env.store).await.is_empty(), "the last finalizer's removal releases");
    // deletecollection.
    for i in 0..5 {
        api.create(&PostParams::default(), &node_port_svc(&format!("c{i}"))).await.expect("create");
    }
    assert_eq!(reserved(&env.store).await.len(), 10);
    api.delete_collection(&DeleteParams::default(), &ListParams::default()).await.expect("deletecollection");
    assert!(reserved(&env.store).await.is_empty(), "deletecollection releases everything");
    // Namespace deletion.
    ns(&env, "doomed").await;
    let doomed = services(&env, "doomed");
    for i in 0..3 {
        doomed.create(&PostParams::default(), &node_port_svc(&format!("d{i}"))).await.expect("create");
    }
    assert_eq!(reserved(&env.store).await.len(), 6);
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces.delete("doomed", &DeleteParams::default()).await.expect("delete namespace");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while namespaces.get_opt("doomed").await.expect("get").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the namespace was not emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reserved(&env.store).await.is_empty(), "namespace deletion releases everything");
    assert_consistent(&env, "end").await;
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_allocates_nothing() {
    let env = env(ServiceRanges::default()).await;
    let api = services(&env, "default");
    let dry = PostParams { dry_run: true, ..Default::default() };
    let previewed = api.create(&dry, &node_port_svc("d")).await.expect("dry run");
    assert!(!ip_of(&previewed).is_empty() && node_ports_of(&previewed).len() == 1, "values are previewed");
    assert!(api.get_opt("d").await.expect("get").is_none());
    assert!(reserved(&env.store).await.is_empty(), "a dry run reserves nothing");
    let real = api.create(&PostParams::default(), &cluster_ip_svc("r")).await.expect("create");
    let wants_taken = svc("w", json!({"clusterIP": ip_of(&real), "ports": [{"port": 80}]}));
    let (code, _) = api_message(api.create(&dry, &wants_taken).await.expect_err("taken in a dry run too"));
    assert_eq!(code, 422);
    let patched = api
        .patch(
            "r",
            &PatchParams { dry_run: true, ..Default::default() },
            &Patch::Merge(json!({"spec": {"type": "NodePort"}})),
        )
        .await
        .expect("dry-run patch");
    assert_eq!(node_ports_of(&patched).len(), 1);
    assert_eq!(reserved(&env.store).await.len(), 1, "only the real Service's IP");
    api.delete("r", &DeleteParams { dry_run: true, ..Default::default() }).await.expect("dry-run delete");
    assert_eq!(reserved(&env.store).await.len(), 1, "a dry-run delete releases nothing");
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_ranges_fill_up_and_free_up() {
    let ranges = ServiceRanges {
        cluster_ip: ClusterIpRange::parse("10.1.0.0/28").expect("range"),
        node_port: NodePortRange::parse("30000-30003").expect("range"),
    };
    let env = env(ranges).await;
    let api = services(&env, "default");
    // 14 assignable addresses, two of them (the first and the tenth) never picked.
    let mut ips = BTreeSet::new();
    for i in 0..12 {
        ips.insert(ip_of(
            &api.create(&PostParams::default(), &cluster_ip_svc(&format!("s{i}"))).await.expect("create"),
        ));
    }
    assert_eq!(ips.len(), 12);
    assert!(!ips.contains("10.1.0.1") && !ips.contains("10.1.0.10"), "{ips:?}");
    let (code, message) =
        api_message(api.create(&PostParams::default(), &cluster_ip_svc("full")).await.expect_err("full"));
    assert_eq!(
        (code, message.as_str()),
        (500, "Internal error occurred: failed to allocate a serviceIP: range is full")
    );
    // The well-known addresses can still be asked for.
    let dns = svc("dns", json!({"clusterIP": "10.1.0.10", "ports": [{"port": 53}]}));
    api.create(&PostParams::default(), &dns).await.expect("the tenth address on request");
    api.delete("s3", &DeleteParams::default()).await.expect("delete");
    api.create(&PostParams::default(), &cluster_ip_svc("after")).await.expect("a freed address is reused");
    // Four node ports: two Services with two ports each, then the pool is full.
    for name in ["n0", "n1"] {
        api.delete(&format!("s{}", &name[1..]), &DeleteParams::default()).await.expect("make room for an ip");
        let two =
            svc(name, json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}));
        api.create(&PostParams::default(), &two).await.expect("node ports");
    }
    api.delete("s4", &DeleteParams::default()).await.expect("make room for an ip");
    let (code, message) =
        api_message(api.create(&PostParams::default(), &node_port_svc("n2")).await.expect_err("ports full"));
    assert_eq!(
        (code, message.as_str()),
        (500, "Internal error occurred: failed to allocate a nodePort: range is full")
    );
    assert_consistent(&env, "small ranges").await;
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_one_replica_get_unique_values() {
    let ranges = ServiceRanges {
        cluster_ip: ClusterIpRange::parse("10.2.0.0/24").expect("range"),
        node_port: NodePortRange::parse("30000-30099").expect("range"),
    };
    let env = env(ranges).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let api = services(&env, "default");
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..10 {
                let name = format!("t{t}-{i}");
                let s = if i % 2 == 0 { node_port_svc(&name) } else { cluster_ip_svc(&name) };
                out.push(api.create(&PostParams::default(), &s).await.expect("create"));
            }
            out
        }));
    }
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for t in tasks {
        for s in t.await.expect("task") {
            assert!(ips.insert(ip_of(&s)), "duplicate ip {}", ip_of(&s));
            for p in node_ports_of(&s) {
                assert!(ports.insert(p), "duplicate node port {p}");
            }
        }
    }
    assert_eq!((ips.len(), ports.len()), (80, 40));
    assert_consistent(&env, "after concurrent creates").await;
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_releases_leaks_and_restores_missing_reservations() {
    let env = env(ServiceRanges::default()).await;
    let api = services(&env, "default");
    let kept = api.create(&PostParams::default(), &node_port_svc("kept")).await.expect("create");
    // A Service stored without reservations (as before allocation existed) and a stray reservation.
    let def = crate::api::resources::find("", "v1", "services").expect("services");
    let legacy = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "legacy", "namespace": "default", "uid": "legacy-uid"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7"], "ports": [{"port": 80, "protocol": "TCP"}]}});
    let put = |key: String, value: Vec<u8>| {
        raft_store::mvcc::model::TxnRequest::ops(vec![raft_store::mvcc::model::RequestOp::Put(PutRequest {
            key: key.into_bytes(),
            value,
            ..Default::default()
        })])
    };
    env.store
        .txn(put(def.key(Some("default"), "legacy"), serde_json::to_vec(&legacy).expect("json")))
        .await
        .expect("put legacy");
    let stray = Owner { namespace: "default".into(), name: "gone".into(), uid: "u".into() };
    env.store.txn(put(reservations::key(Resource::NodePort(31999)), stray.encode())).await.expect("put stray");
    let outcome = repair::repair_once(&env.store, env.server.objects().services()).await.expect("repair");
    assert_eq!((outcome.released, outcome.reserved), (1, 1), "{outcome:?}");
    let held = reserved(&env.store).await;
    assert_eq!(
        held.get(&Resource::ClusterIp("10.96.7.7".parse().expect("ip"))).map(|o| o.name.as_str()),
        Some("legacy")
    );
    assert!(!held.contains_key(&Resource::NodePort(31999)));
    assert_consistent(&env, "after repair").await;
    let second = repair::repair_once(&env.store, env.server.objects().services()).await.expect("repair");
    assert_eq!(second, repair::RepairOutcome::default(), "a second pass finds nothing");
    // The restored reservation is the legacy Service's: nobody else gets its IP, and deleting it frees it.
    let wants = svc("wants", json!({"clusterIP": "10.96.7.7", "ports": [{"port": 80}]}));
    assert_eq!(api_message(api.create(&PostParams::default(), &wants).await.expect_err("taken")).0, 422);
    api.delete("legacy", &DeleteParams::default()).await.expect("delete legacy");
    api.create(&PostParams::default(), &wants).await.expect("freed by the delete");
    assert!(!ip_of(&kept).is_empty());
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_services_and_the_kubernetes_endpoints_follow_the_live_replicas() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Endpoints;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    use super::api_endpoints::{identity_lease, MANAGED_BY};
    use super::system_services::reconcile_once;

    let env = env(ServiceRanges::default()).await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-system");
    let now = Timestamp::now();
    let addr = |s: &str| s.parse::<std::net::SocketAddr>().expect("address");
    for (id, a, age) in [(1, "127.0.0.1:40001", 0), (2, "127.0.0.1:40002", 1), (3, "127.0.0.1:40003", 60)] {
        let lease = identity_lease(id, addr(a), now - SignedDuration::from_secs(age), None);
        leases.create(&PostParams::default(), &lease).await.expect("lease");
    }
    reconcile_once(&env.client, &ServiceRanges::default(), 40001).await;
    let k = services(&env, "default").get("kubernetes").await.expect("kubernetes service");
    assert_eq!(ip_of(&k), "10.96.0.1");
    let port = &k.spec.as_ref().and_then(|s| s.ports.clone()).expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("https"), 443));
    let dns = services(&env, "kube-system").get("kube-dns").await.expect("kube-dns service");
    assert_eq!(ip_of(&dns), "10.96.0.10");
    let endpoints: Api<Endpoints> = Api::namespaced(env.client.clone(), "default");
    let ep = endpoints.get("kubernetes").await.expect("endpoints");
    let ports: Vec<i32> = ep.subsets.iter().flatten().map(|s| s.ports.as_ref().expect("ports")[0].port).collect();
    assert_eq!(ports, vec![40001, 40002], "the expired replica 3 is left out");
    let slices: Api<EndpointSlice> = Api::namespaced(env.client.clone(), "default");
    let list =
        slices.list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes")).await.expect("slices");
    let mut names: Vec<String> = list.items.iter().filter_map(|s| s.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["kubernetes", "kubernetes-40002"]);
    assert!(list
        .items
        .iter()
        .all(|s| s.metadata.labels.as_ref().expect("labels")["endpointslice.kubernetes.io/managed-by"] == MANAGED_BY));

    // Replica 2 stops renewing and 3 comes back: the slices follow; a changed Service is left alone.
    let mut two = leases.get("kube-apiserver-2").await.expect("lease 2");
    two.spec.as_mut().expect("spec").renew_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now - SignedDuration::from_secs(60)));
    leases.replace("kube-apiserver-2", &PostParams::default(), &two).await.expect("expire 2");
    let three = leases.get("kube-apiserver-3").await.expect("lease 3");
    let renewed = identity_lease(3, addr("127.0.0.1:40003"), Timestamp::now(), Some(&three));
    leases.replace("kube-apiserver-3", &PostParams::default(), &renewed).await.expect("renew 3");
    services(&env, "default")
        .patch(
            "kubernetes",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("label the service");
    reconcile_once(&env.client, &ServiceRanges::default(), 40009).await;
    let list =
        slices.list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes")).await.expect("slices");
    let mut names: Vec<String> = list.items.iter().filter_map(|s| s.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["kubernetes", "kubernetes-40003"], "the stale slice is deleted");
    let ep = endpoints.get("kubernetes").await.expect("endpoints");
    let ports: Vec<i32> = ep.subsets.iter().flatten().map(|s| s.ports.as_ref().expect("ports")[0].port).collect();
    assert_eq!(ports, vec![40001, 40003]);
    let k = services(&env, "default").get("kubernetes").await.expect("kubernetes service");
    assert_eq!(k.metadata.labels.as_ref().expect("labels").get("touched").map(String::as_str), Some("yes"));
    let target = k.spec.and_then(|s| s.ports).expect("ports")[0].target_port.clone();
    assert_eq!(
        target,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(40001)),
        "not rewritten by a later leader"
    );
    assert_consistent(&env, "bootstrap services").await;
    env.close().await;
}
