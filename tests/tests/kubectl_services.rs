//! Services with the real `kubectl` against a 3-replica cluster: `kubectl create service` of every
//! type gets (or does not get) a cluster IP and node ports, a requested IP or port that is taken or
//! out of range is refused with upstream's 422 message, a type change releases what it no longer
//! needs, and the bootstrap Services are there: `kubernetes` at 10.96.0.1 with an EndpointSlice and
//! Endpoints listing every replica's API (one per port: the replicas listen on different ports), left
//! alone by the EndpointSlice controller and following a replica that goes down, and `kube-dns` at
//! 10.96.0.10.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use gantry_tests::kube::{start_api_cluster, Kubectl};
use gantry_tests::ProcessCluster;
use serde_json::Value;

const NS: &str = "svc-ns";
const DEADLINE: Duration = Duration::from_secs(90);

/// Polls `check` until it returns `Ok`, failing with `what` and the last observation after DEADLINE.
async fn eventually<T, Fut: Future<Output = Result<T, String>>>(what: &str, check: impl FnMut() -> Fut) -> T {
    gantry_tests::poll::eventually(what, DEADLINE, check).await
}

fn json_of(k: &Kubectl, server: &str, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&k.ok(server, &full)).expect("kubectl printed JSON")
}

fn svc_json(k: &Kubectl, server: &str, name: &str) -> Value {
    json_of(k, server, &["service", name, "-n", NS])
}

fn node_port(svc: &Value) -> u64 {
    svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap_or_else(|| panic!("no node port: {svc}"))
}

async fn reserved_ports(cluster: &ProcessCluster) -> BTreeSet<String> {
    let mut client = cluster.client(0).await.expect("etcd client");
    let prefix = "/registry/ranges/servicenodeports/";
    let resp = client.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only())).await.expect("get");
    resp.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).trim_start_matches(prefix).to_string()).collect()
}

/// The `(ip, port)` endpoints of the `kubernetes` EndpointSlices.
fn kubernetes_slice_endpoints(k: &Kubectl, server: &str) -> Result<BTreeSet<(String, u64)>, String> {
    let out = k.run(
        server,
        &["get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes", "-o", "json"],
    );
    let list: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
    let mut found = BTreeSet::new();
    for slice in list["items"].as_array().into_iter().flatten() {
        if slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] != "gantry-control-plane" {
            return Err(format!("a kubernetes slice not managed by the control plane: {slice}"));
        }
        let ports = slice["ports"].as_array().cloned().unwrap_or_default();
        if ports.len() != 1 {
            return Err(format!("a slice must have exactly one port: {slice}"));
        }
        let port = ports[0]["port"].as_u64().unwrap_or(0);
        for ep in slice["endpoints"].as_array().into_iter().flatten() {
            for a in ep["addresses"].as_array().into_iter().flatten() {
                found.insert((a.as_str().unwrap_or("").to_string(), port));
            }
        }
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_services_get_cluster_ips_node_ports_and_bootstrap_services() {
    let t0 = Instant::now();
    let (mut cluster, k, _work) = start_api_cluster().await;
    let (r0, r1, r2) =
        (cluster.api_url(0).expect("url"), cluster.api_url(1).expect("url"), cluster.api_url(2).expect("url"));
    k.ok(&r0, &["create", "namespace", NS]);

    // ClusterIP: one IP from 10.96.0.0/12, upstream's defaults, no node port.
    k.ok(&r0, &["create", "service", "clusterip", "web", "--tcp=80:8080", "-n", NS]);
    let web = svc_json(&k, &r1, "web");
    let ip = web["spec"]["clusterIP"].as_str().expect("clusterIP").to_string();
    let parsed: std::net::Ipv4Addr = ip.parse().expect("IPv4");
    assert_eq!(parsed.octets()[0], 10, "{ip}");
    assert!((96..=111).contains(&parsed.octets()[1]), "{ip} is not in 10.96.0.0/12");
    assert_eq!(web["spec"]["clusterIPs"], serde_json::json!([ip]), "{web}");
    assert_eq!(web["spec"]["ipFamilies"], serde_json::json!(["IPv4"]), "{web}");
    assert_eq!(web["spec"]["ipFamilyPolicy"], "SingleStack", "{web}");
    assert_eq!(web["spec"]["internalTrafficPolicy"], "Cluster", "{web}");
    assert!(web["spec"]["ports"][0].get("nodePort").is_none(), "{web}");
    let table = k.ok(&r2, &["get", "svc", "web", "-n", NS]);
    assert!(table.contains(&ip) && table.contains("80/TCP"), "{table}");

    // NodePort: an IP and a port from 30000-32767.
    k.ok(&r1, &["create", "service", "nodeport", "np", "--tcp=80:8080", "-n", NS]);
    let np = svc_json(&k, &r2, "np");
    let port = node_port(&np);
    assert!((30000..=32767).contains(&port), "{np}");
    assert_ne!(np["spec"]["clusterIP"].as_str(), Some(ip.as_str()));
    let table = k.ok(&r0, &["get", "svc", "np", "-n", NS]);
    assert!(table.contains(&format!("80:{port}/TCP")), "{table}");

    // Taken and out-of-range requests: upstream's 422 messages.
    let taken_port = k.fails(
        &r2,
        &["create", "service", "nodeport", "np2", "--tcp=80:8080", &format!("--node-port={port}"), "-n", NS],
    );
    assert!(
        taken_port.contains(&format!("Service \"np2\" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated")),
        "{taken_port}"
    );
    let low_port =
        k.fails(&r2, &["create", "service", "nodeport", "np3", "--tcp=80:8080", "--node-port=8080", "-n", NS]);
    assert!(
        low_port.contains("spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{low_port}"
    );
    k.ok(&r0, &["create", "service", "clusterip", "fixed", "--clusterip=10.96.100.100", "--tcp=80:80", "-n", NS]);
    assert_eq!(svc_json(&k, &r1, "fixed")["spec"]["clusterIP"], "10.96.100.100");
    let taken_ip = k.fails(
        &r1,
        &["create", "service", "clusterip", "fixed2", "--clusterip=10.96.100.100", "--tcp=80:80", "-n", NS],
    );
    assert!(
        taken_ip.contains("failed to create ClusterIP service: Service \"fixed2\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.100.100\"}: failed to allocate IP 10.96.100.100: provided IP is already allocated"),
        "{taken_ip}"
    );
    let outside = k
        .fails(&r2, &["create", "service", "clusterip", "outside", "--clusterip=192.168.7.7", "--tcp=80:80", "-n", NS]);
    assert!(
        outside.contains("spec.clusterIPs: Invalid value: []string{\"192.168.7.7\"}: failed to allocate IP 192.168.7.7: the provided IP (192.168.7.7) is not in the valid range. The range of valid IPs is 10.96.0.0/12"),
        "{outside}"
    );
    for refused in ["np2", "np3", "fixed2", "outside"] {
        let out = k.run(&r0, &["get", "svc", refused, "-n", NS]);
        assert!(!out.status.success(), "{refused} was stored");
    }

    // Headless and ExternalName get no IP.
    k.ok(&r0, &["create", "service", "clusterip", "headless", "--clusterip=None", "-n", NS]);
    let headless = svc_json(&k, &r1, "headless");
    assert_eq!(headless["spec"]["clusterIP"], "None", "{headless}");
    assert_eq!(headless["spec"]["clusterIPs"], serde_json::json!(["None"]), "{headless}");
    k.ok(&r0, &["create", "service", "externalname", "ext", "--external-name=example.com", "-n", NS]);
    let ext = svc_json(&k, &r2, "ext");
    assert!(ext["spec"].get("clusterIP").is_none() && ext["spec"].get("clusterIPs").is_none(), "{ext}");
    assert_eq!(ext["spec"]["externalName"], "example.com");

    // A type change releases the node port; the freed port can then be asked for.
    assert!(reserved_ports(&cluster).await.contains(&port.to_string()));
    k.ok(&r1, &["patch", "svc", "np", "-n", NS, "-p", r#"{"spec":{"type":"ClusterIP"}}"#]);
    let back = svc_json(&k, &r0, "np");
    assert!(back["spec"]["ports"][0].get("nodePort").is_none(), "{back}");
    assert!(!reserved_ports(&cluster).await.contains(&port.to_string()), "the node port stayed reserved");
    k.ok(&r2, &["create", "service", "nodeport", "np4", "--tcp=80:8080", &format!("--node-port={port}"), "-n", NS]);
    assert_eq!(node_port(&svc_json(&k, &r0, "np4")), port);
    println!("# {:?} kubectl create service checks passed", t0.elapsed());

    // The bootstrap Services.
    let kubernetes = eventually("the kubernetes service", || {
        let out = k.run(&r1, &["get", "svc", "kubernetes"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        async move {
            if out.status.success() {
                Ok(text)
            } else {
                Err(text)
            }
        }
    })
    .await;
    assert!(kubernetes.contains("10.96.0.1 ") && kubernetes.contains("443/TCP"), "{kubernetes}");
    let dns = eventually("the kube-dns service", || {
        let out = k.run(&r2, &["get", "svc", "-n", "kube-system", "kube-dns"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        async move {
            if out.status.success() {
                Ok(text)
            } else {
                Err(text)
            }
        }
    })
    .await;
    assert!(dns.contains("10.96.0.10 ") && dns.contains("53/UDP,53/TCP,9153/TCP"), "{dns}");

    // Its endpoints list every replica's API (127.0.0.1 on three ports: one slice each).
    let apis: BTreeSet<(String, u64)> = (0..cluster.size())
        .map(|i| {
            let url = cluster.api_url(i).expect("url");
            let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
            ("127.0.0.1".to_string(), port)
        })
        .collect();
    eventually("the kubernetes endpointslices to list every replica", || {
        let found = kubernetes_slice_endpoints(&k, &r0);
        let want = apis.clone();
        async move {
            match found {
                Ok(f) if f == want => Ok(()),
                Ok(f) => Err(format!("{f:?}")),
                Err(e) => Err(e),
            }
        }
    })
    .await;
    let listed = k.ok(&r1, &["get", "endpointslices", "-n", "default"]);
    for (_, port) in &apis {
        assert!(listed.contains(&port.to_string()), "{listed}");
    }
    assert!(listed.lines().any(|l| l.starts_with("kubernetes ")), "{listed}");
    let endpoints = k.ok(&r2, &["get", "endpoints", "kubernetes", "-n", "default"]);
    for (_, port) in &apis {
        assert!(endpoints.contains(&format!("127.0.0.1:{port}")), "{endpoints}");
    }
    // Nobody fights over the slices: they stay unchanged across several reconcile periods of the
    // control plane and the EndpointSlice controller (a deliberate observation window).
    let versions = || {
        k.ok(
            &r0,
            &[
                "get",
                "endpointslices",
                "-n",
                "default",
                "-l",
                "kubernetes.io/service-name=kubernetes",
                "-o",
                "jsonpath={.items[*].metadata.resourceVersion}",
            ],
        )
    };
    let before = versions();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(versions(), before, "the kubernetes slices were rewritten without a change");
    println!("# {:?} bootstrap services and endpoints checked", t0.elapsed());

    // A replica that goes down drops out once its lease expires.
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await.expect("leader");
    let victim = (leader + 1) % cluster.size();
    let victim_url = cluster.api_url(victim).expect("url");
    let victim_port: u64 = victim_url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    cluster.kill(victim).expect("kill a follower");
    let alive = cluster.api_url(leader).expect("url");
    let mut remaining = apis.clone();
    remaining.remove(&("127.0.0.1".to_string(), victim_port));
    eventually("the killed replica to leave the kubernetes endpoints", || {
        let found = kubernetes_slice_endpoints(&k, &alive);
        let want = remaining.clone();
        async move {
            match found {
                Ok(f) if f == want => Ok(()),
                Ok(f) => Err(format!("{f:?}")),
                Err(e) => Err(e),
            }
        }
    })
    .await;
    let endpoints = k.ok(&alive, &["get", "endpoints", "kubernetes", "-n", "default"]);
    assert!(!endpoints.contains(&format!(":{victim_port}")), "{endpoints}");
    println!("# {:?} the killed replica left the endpoints", t0.elapsed());
}
