//! Service cluster IPs and node ports against a real 3-replica cluster whose ranges are small enough
//! that replicas keep picking values another one just took (a /24 for 202 addresses, 150 node ports
//! for 100): 200 Services (half NodePort) created concurrently by six tasks spread over all three
//! replicas, with the Raft leader SIGKILLed half-way, get unique values, all in range, and the
//! reservation keys in the store (read through the etcd API) are exactly the values the Services
//! hold; deleting them all (again through every replica) leaves only the bootstrap Services'
//! reservations. Bad range flags are refused by name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use gantry_tests::kube::{wait_api_ready, Kubectl};
use gantry_tests::{free_ports, ClusterConfig, Launcher, ProcessCluster};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const NS: &str = "alloc";
const SERVICES: usize = 200;
const TASKS: usize = 6;
const DEADLINE: Duration = Duration::from_secs(120);
const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
const IP_RANGE: &str = "10.96.0.0/24";
const PORT_RANGE: (u16, u16) = (30000, 30149);

/// A client of replica `i`'s API only.
async fn client_for(cluster: &ProcessCluster, i: usize) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).expect("admin kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    config.cluster_url = cluster.api_url(i).expect("api url").parse().expect("url");
    config.read_timeout = Some(Duration::from_secs(15));
    kube::Client::try_from(config).expect("client")
}

fn service(i: usize) -> Service {
    let spec = if i.is_multiple_of(2) {
        json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]})
    } else {
        json!({"type": "ClusterIP", "ports": [{"name": "http", "port": 80}]})
    };
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("s{i}")}, "spec": spec}),
    )
    .expect("service")
}

fn ip_of(s: &Service) -> String {
    s.spec.as_ref().and_then(|s| s.cluster_ip.clone()).unwrap_or_default()
}

fn node_ports(s: &Service) -> Vec<u16> {
    s.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| p.node_port)
        .map(|p| p as u16)
        .collect()
}

/// Creates `svc`, starting with replica `first` and moving on to the next one on errors (the replica
/// may be the killed leader, or electing one). A create that was applied before its answer was lost
/// shows up as AlreadyExists on retry; the stored object is returned then.
async fn create_somewhere(clients: &[kube::Client], first: usize, svc: &Service) -> (Service, usize) {
    let name = svc.metadata.name.clone().expect("name");
    let deadline = Instant::now() + DEADLINE;
    let mut attempt = 0;
    loop {
        let r = (first + attempt) % clients.len();
        let api: Api<Service> = Api::namespaced(clients[r].clone(), NS);
        match api.create(&PostParams::default(), svc).await {
            Ok(s) => return (s, attempt),
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get(&name).await {
                Ok(s) => return (s, attempt),
                Err(e) => assert!(Instant::now() < deadline, "reading back {name}: {e}"),
            },
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => panic!("{name} refused: {}", s.message),
            Err(e) => assert!(Instant::now() < deadline, "creating {name} kept failing: {e}"),
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every reservation key under `prefix`, as the store's etcd API lists it through replica `i`.
async fn reserved(cluster: &ProcessCluster, i: usize, prefix: &str) -> BTreeSet<String> {
    let mut client = cluster.client(i).await.expect("etcd client");
    let resp = client.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only())).await.expect("get prefix");
    resp.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).trim_start_matches(prefix).to_string()).collect()
}

/// All Services in the cluster, through replica `i`.
async fn all_services(clients: &[kube::Client], i: usize) -> Vec<Service> {
    let api: Api<Service> = Api::all(clients[i].clone());
    api.list(&ListParams::default()).await.expect("list services").items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_through_every_replica_never_share_a_value_and_deletes_release_all() {
    let t0 = Instant::now();
    let config = ClusterConfig {
        kubernetes_api: true,
        extra_args: vec![
            "--service-cluster-ip-range".into(),
            IP_RANGE.into(),
            "--service-node-port-range".into(),
            format!("{}-{}", PORT_RANGE.0, PORT_RANGE.1),
        ],
        ..Default::default()
    };
    let mut cluster = ProcessCluster::start(Launcher::gantry().expect("gantry binary"), config).await.expect("cluster");
    let work = tempfile::tempdir().expect("tempdir");
    let k = Kubectl { kubeconfig: cluster.kubeconfig(), cache_dir: work.path().join("cache") };
    wait_api_ready(&cluster, &k).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await.expect("leader");
    let mut clients = Vec::new();
    for i in 0..cluster.size() {
        clients.push(client_for(&cluster, i).await);
    }
    let survivor = (leader + 1) % cluster.size();
    let namespaces: Api<Namespace> = Api::all(clients[survivor].clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    println!("# {:?} cluster ready, leader {leader}", t0.elapsed());

    let clients = Arc::new(clients);
    let created = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (clients, created, retried) = (clients.clone(), created.clone(), retried.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (t..SERVICES).step_by(TASKS) {
                // Task t starts at replica t % 3, so every replica serves creates.
                let (svc, attempts) = create_somewhere(&clients, t % clients.len(), &service(i)).await;
                if attempts > 0 {
                    retried.fetch_add(1, Ordering::SeqCst);
                }
                created.fetch_add(1, Ordering::SeqCst);
                out.push(svc);
            }
            out
        }));
    }
    let deadline = Instant::now() + DEADLINE;
    while created.load(Ordering::SeqCst) < SERVICES / 2 {
        assert!(Instant::now() < deadline, "half the creates did not finish in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill(leader).expect("SIGKILL the leader");
    println!("# {:?} killed leader {leader} after {} creates", t0.elapsed(), created.load(Ordering::SeqCst));
    let mut answered = BTreeMap::new();
    for task in tasks {
        for svc in task.await.expect("create task") {
            answered.insert(svc.metadata.name.clone().expect("name"), svc);
        }
    }
    println!("# {:?} all created; {} needed another replica", t0.elapsed(), retried.load(Ordering::SeqCst));
    assert_eq!(answered.len(), SERVICES);

    // The stored Services (all namespaces, so the bootstrap ones count too) share no value.
    let range_start = u32::from(Ipv4Addr::new(10, 96, 0, 0));
    let stored = all_services(&clients, survivor).await;
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for s in &stored {
        let name = format!(
            "{}/{}",
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default()
        );
        let ip: Ipv4Addr = ip_of(s).parse().unwrap_or_else(|_| panic!("{name} has no IPv4 cluster IP: {:?}", ip_of(s)));
        let offset = u32::from(ip).wrapping_sub(range_start);
        assert!(offset > 0 && offset < 255, "{name}: {ip} is not an assignable address of {IP_RANGE}");
        assert!(ips.insert(ip.to_string()), "{name}: cluster IP {ip} is held twice");
        for p in node_ports(s) {
            assert!((PORT_RANGE.0..=PORT_RANGE.1).contains(&p), "{name}: node port {p} out of range");
            assert!(ports.insert(p.to_string()), "{name}: node port {p} is held twice");
        }
        if let Some(mine) = answered
            .get(s.metadata.name.as_deref().unwrap_or_default())
            .filter(|_| s.metadata.namespace.as_deref() == Some(NS))
        {
            assert_eq!(
                (ip_of(mine), node_ports(mine)),
                (ip_of(s), node_ports(s)),
                "{name}: answered values differ from stored ones"
            );
        }
    }
    let mine: Vec<&Service> = stored.iter().filter(|s| s.metadata.namespace.as_deref() == Some(NS)).collect();
    assert_eq!(mine.len(), SERVICES);
    assert_eq!(
        mine.iter().filter(|s| node_ports(s).len() == 1).count(),
        SERVICES / 2,
        "every NodePort service has its port"
    );
    assert!(ips.contains("10.96.0.1") && ips.contains("10.96.0.10"), "bootstrap services: {ips:?}");
    // The store's reservations are exactly the values held.
    assert_eq!(reserved(&cluster, survivor, IP_PREFIX).await, ips, "cluster IP reservations");
    assert_eq!(reserved(&cluster, survivor, PORT_PREFIX).await, ports, "node port reservations");
    println!("# {:?} {} IPs and {} node ports unique and reserved", t0.elapsed(), ips.len(), ports.len());
    // The ranges were tight enough that replicas picked values already taken and had to retry.
    let mut collisions = 0.0;
    for i in cluster.running() {
        let metrics = k.ok(&cluster.api_url(i).expect("url"), &["get", "--raw", "/metrics"]);
        collisions += metrics
            .lines()
            .filter(|l| l.starts_with("gantry_service_allocator_collisions_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    println!("# picked values found taken on the surviving replicas: {collisions}");
    assert!(collisions > 0.0, "no allocation ever collided: the test did not exercise contention");

    // Delete them all, spread over the surviving replicas, concurrently.
    let live: Vec<usize> = cluster.running();
    let mut deletes = Vec::new();
    for (n, chunk) in answered.keys().cloned().collect::<Vec<_>>().chunks(SERVICES / 4).enumerate() {
        let client = clients[live[n % live.len()]].clone();
        let names = chunk.to_vec();
        deletes.push(tokio::spawn(async move {
            let api: Api<Service> = Api::namespaced(client, NS);
            for name in names {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => panic!("deleting {name}: {e}"),
                }
            }
        }));
    }
    for d in deletes {
        d.await.expect("delete task");
    }
    let left: BTreeSet<String> = all_services(&clients, survivor).await.iter().map(ip_of).collect();
    assert_eq!(left, BTreeSet::from(["10.96.0.1".to_string(), "10.96.0.10".to_string()]));
    assert_eq!(reserved(&cluster, survivor, IP_PREFIX).await, left, "deleting released every cluster IP");
    assert_eq!(reserved(&cluster, survivor, PORT_PREFIX).await, BTreeSet::new(), "deleting released every node port");
    println!("# {:?} all deleted, no reservation left", t0.elapsed());
}

/// Flags of a lone replica (it fails before needing its peers).
fn replica_flags(dir: &std::path::Path) -> Vec<String> {
    let p = free_ports(3).expect("ports");
    [
        "--node-id",
        "1",
        "--data-dir",
        &dir.join("data").display().to_string(),
        "--listen-peer",
        &format!("127.0.0.1:{}", p[0]),
        "--listen-client",
        &format!("127.0.0.1:{}", p[1]),
        "--initial-cluster",
        &format!("1=127.0.0.1:{}", p[0]),
        "--listen-api",
        &format!("127.0.0.1:{}", p[2]),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_service_ranges_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let launcher = Launcher::gantry().expect("gantry binary");
    for (flag, value, why) in [
        ("--service-cluster-ip-range", "10.96.0.0/30", "too small"),
        ("--service-cluster-ip-range", "10.96.0.0", "expected an IPv4 CIDR"),
        ("--service-cluster-ip-range", "fd00::/108", "only IPv4"),
        ("--service-node-port-range", "32767-30000", "above the last port"),
        ("--service-node-port-range", "30000-99999", "not a port number"),
    ] {
        let mut args = replica_flags(dir.path());
        args.extend([flag.to_string(), value.to_string()]);
        let out = launcher.run_to_exit(&args, Duration::from_secs(30)).await.expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code().is_some_and(|c| c != 0), "{flag} {value} was accepted: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(why), "{flag} {value}: {stderr}");
    }
}
