//! The node agent's service proxy (nftables) against a real containerd and a 3-replica control plane
//! that runs the controllers (Deployment, ReplicaSet, EndpointSlice):
//! - a Deployment of 3 busybox HTTP servers answering with their pod name behind a ClusterIP
//!   Service: a client pod fetching `http://web.default.svc.cluster.local` 60 times (the agent's
//!   cluster DNS gives the name, the proxy spreads the connections) gets answers from all three;
//! - the ClusterIP answers the host (this test process), a NodePort answers on 127.0.0.1, a backend
//!   reaching its own Service gets answers from itself too (hairpin), and a Service without
//!   endpoints refuses connections (ICMP port-unreachable) instead of letting them hang, and with
//!   `sessionAffinity: ClientIP` every request of one client goes to the same pod;
//! - a pod whose readiness probe fails stops receiving traffic;
//! - scaled to 1 replica, all traffic goes to the remaining pod within 2 s of the others leaving the
//!   EndpointSlice (measured from the slice watch event to the rule in the kernel);
//! - deleted Services leave no rule mentioning their IP or port, and `gantry-node-agent --cleanup`
//!   deletes the agent's table (which outlives the agent process).
//!
//! Services ask for their `spec.clusterIP` and `nodePort`, so the kernel's rules can be searched for
//! known values from the start (the API honours requested values).
//! Needs root, containerd, runc, containernetworking-plugins, umoci, busybox-static and nftables.
//! Build first: `cargo build -p control-plane -p gantry-node-agent --bins`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gantry_tests::node_env::{
    agent_binary, http_get, pod_ready, wait_for, AgentConfig, AgentProcess, CniNetwork, KubeEnv, NodeRuntime,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::Api;
use serde_json::{json, Value};

const NODE: &str = "svc-node";
/// `gantry_node_agent::proxy::table_name(NODE)`.
const TABLE: &str = "gantry-proxy-svc-node";
const WEB_IP: &str = "10.96.100.10";
/// The `web` Service's name in the cluster DNS.
const WEB_NAME: &str = "web.default.svc.cluster.local";
const NODEPORT_IP: &str = "10.96.100.11";
const EMPTY_IP: &str = "10.96.100.12";
const STICKY_IP: &str = "10.96.100.13";
const WEB_CHAIN: &str = "svc-default/web/tcp/http";
const APP: &str = "svc-web";

/// `nft ARGS`: its output when it succeeds.
fn nft(args: &[&str]) -> Option<String> {
    let out = Command::new("nft").args(args).output().expect("running nft");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pod IPs `chain_text` DNATs to (among `ips`).
fn backends_in(chain_text: &str, ips: &[String]) -> BTreeSet<String> {
    ips.iter()
        .filter(|ip| chain_text.contains(&format!("{ip}:8080")) || chain_text.contains(&format!("{ip} . 8080")))
        .cloned()
        .collect()
}

/// The web Service's backends in the kernel now.
fn kernel_backends(ips: &[String]) -> BTreeSet<String> {
    nft(&["list", "chain", "ip", TABLE, WEB_CHAIN]).map(|t| backends_in(&t, ips)).unwrap_or_default()
}

/// A NodePort no local TCP socket uses (NodePorts take the port on every local address).
fn free_node_port() -> u16 {
    let start: u16 = 30000 + rand::random::<u16>() % 2000;
    (start..32767)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .expect("a free port in the NodePort range")
}

/// The answers of `n` GETs of `http://ip:port/` from this process, by body (`None`: no answer).
fn answers_from_host(ip: &str, port: u16, n: usize) -> BTreeMap<Option<String>, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let body = http_get(ip, port, "/").and_then(|r| r.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string()));
        *out.entry(body).or_insert(0) += 1;
    }
    out
}

/// Names counted in `text` (one answer per line); other lines under `None`.
fn count_lines(text: &str, names: &[String]) -> BTreeMap<Option<String>, usize> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "DONE") {
        let key = names.iter().find(|n| *n == line).cloned();
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// The web pods not being deleted: name → IP.
fn web_pods(env: &KubeEnv) -> BTreeMap<String, String> {
    let list = env.get(&["pods", "-l", &format!("app={APP}")]).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| Some((p["metadata"]["name"].as_str()?.to_string(), p["status"]["podIP"].as_str()?.to_string())))
        .collect()
}

fn service(name: &str, cluster_ip: &str, selector: &str, node_port: Option<u16>) -> Value {
    let mut port = json!({"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"});
    if let Some(n) = node_port {
        port["nodePort"] = json!(n);
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": if node_port.is_some() { "NodePort" } else { "ClusterIP" },
            "clusterIP": cluster_ip,
            "selector": {"app": selector},
            "ports": [port]
        }
    })
}

/// Every EndpointSlice event of Service `web`: when it arrived and the ready endpoint IPs.
type SliceLog = Arc<Mutex<Vec<(Instant, BTreeSet<String>)>>>;

async fn watch_web_slices(kubeconfig: &std::path::Path, url: &str) -> SliceLog {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read admin kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kubeconfig config");
    config.cluster_url = url.parse().expect("replica url");
    let client = kube::Client::try_from(config).expect("kube client");
    let api: Api<EndpointSlice> = Api::namespaced(client, "default");
    let log: SliceLog = Arc::default();
    let sink = log.clone();
    tokio::spawn(async move {
        let cfg = watcher::Config::default().labels("kubernetes.io/service-name=web");
        let mut events = watcher::watcher(api, cfg).boxed();
        while let Some(event) = events.next().await {
            let slice = match event {
                Ok(watcher::Event::Apply(s)) | Ok(watcher::Event::InitApply(s)) => s,
                Ok(_) => continue,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let ready: BTreeSet<String> = slice
                .endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                .flat_map(|e| e.addresses.clone())
                .collect();
            sink.lock().expect("lock").push((Instant::now(), ready));
        }
    });
    log
}

/// When the slice log first showed exactly `ready` after `since`.
fn slice_showed(log: &SliceLog, since: Instant, ready: &BTreeSet<String>) -> Option<Instant> {
    log.lock().expect("lock").iter().find(|(t, r)| *t >= since && r == ready).map(|(t, _)| *t)
}

/// Polls the kernel every 10 ms until the web Service's backends are `want`; when that was seen.
async fn kernel_reaches(ips: &[String], want: &BTreeSet<String>, timeout: Duration, context: &str) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        if kernel_backends(ips) == *want {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the kernel never showed backends {want:?} (now {:?})\n{context}",
            kernel_backends(ips)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reach_ready_endpoints_through_the_node_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime =
        NodeRuntime::start(dir.path(), CniNetwork::new("gnasvc0", "10.223.0.0/16")).expect("containerd with images");
    let endpoint = runtime.endpoint();
    // A table left by a crashed run would answer for the same addresses.
    let _ = nft(&["delete", "table", "ip", TABLE]);
    let (cluster, k, work) = gantry_tests::kube::start_api_cluster().await;
    let url = cluster.api_url(0).expect("api url");
    let env = KubeEnv { url: url.clone(), k };
    let mut agent = AgentProcess::start(AgentConfig::new(&cluster.kubeconfig(), &endpoint, NODE, dir.path()));
    let show = || {
        let _ = std::fs::copy(&agent.config().log, "/tmp/service_proxy_agent.log");
        format!("{}\n{}", nft(&["list", "table", "ip", TABLE]).unwrap_or_default(), agent.log_tail())
    };
    wait_for(Duration::from_secs(60), "the agent's proxy table", || nft(&["list", "table", "ip", TABLE]), show).await;

    let node_port = free_node_port();
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "nodeName": NODE,
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "web", "image": gantry_tests::images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c",
                            "mkdir -p /www && echo \"$POD_NAME\" > /www/index.html && touch /tmp/ready && \
                             exec httpd -f -p 8080 -h /www"],
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1,
                                           "failureThreshold": 1}
                    }]
                }
            }
        }
    });
    env.apply(work.path(), &deployment);
    env.apply(work.path(), &service("web", WEB_IP, APP, None));
    env.apply(work.path(), &service("web-nodeport", NODEPORT_IP, APP, Some(node_port)));
    env.apply(work.path(), &service("empty", EMPTY_IP, "nothing-selects-this", None));
    let mut sticky = service("sticky", STICKY_IP, APP, None);
    sticky["spec"]["sessionAffinity"] = json!("ClientIP");
    env.apply(work.path(), &sticky);
    let slices = watch_web_slices(&cluster.kubeconfig(), &url).await;
    let out = env.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = web_pods(&env);
    assert_eq!(pods.len(), 3, "{pods:?}");
    let names: Vec<String> = pods.keys().cloned().collect();
    let ips: Vec<String> = pods.values().cloned().collect();
    let all: BTreeSet<String> = ips.iter().cloned().collect();
    kernel_reaches(&ips, &all, Duration::from_secs(30), &show()).await;

    // The ClusterIP from the host: every backend answers.
    let answers = wait_for(
        Duration::from_secs(20),
        "all three backends answering the host through the ClusterIP",
        || {
            let a = answers_from_host(WEB_IP, 80, 30);
            names.iter().all(|n| a.contains_key(&Some(n.clone()))).then_some(a)
        },
        show,
    )
    .await;
    println!("host → {WEB_IP}:80, 30 requests: {answers:?}");
    assert_eq!(answers.get(&None), None, "every request answered: {answers:?}");

    // A client pod fetches the Service by its DNS name 60 times (`ClusterFirst`: the agent's DNS).
    let client = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "svc-client", "namespace": "default"},
        "spec": {
            "nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "client", "image": gantry_tests::images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", format!(
                    "for i in $(seq 60); do timeout 5 wget -qO- http://{WEB_NAME}/ || echo FAILED; done; echo DONE")]
            }]
        }
    });
    env.create(work.path(), &client);
    wait_for(
        Duration::from_secs(120),
        "the client pod to finish",
        || (env.pod("svc-client")?["status"]["phase"] == "Succeeded").then_some(()),
        || format!("{}\n{}", env.pod("svc-client").unwrap_or_default(), show()),
    )
    .await;
    let logs = env.ok(&["logs", "svc-client"]);
    let counts = count_lines(&logs, &names);
    println!("client pod → http://{WEB_NAME}/, 60 requests: {counts:?}");
    assert!(logs.contains("DONE"), "{logs}");
    assert_eq!(counts.get(&None), None, "only pod names answered: {logs}");
    assert_eq!(counts.values().sum::<usize>(), 60, "{logs}");
    for name in &names {
        assert!(counts.get(&Some(name.clone())).is_some_and(|n| *n > 0), "{name} never answered: {counts:?}");
    }

    // The NodePort on the node's address (127.0.0.1: test agents listen there).
    let answers = answers_from_host("127.0.0.1", node_port, 12);
    println!("host → 127.0.0.1:{node_port} (NodePort), 12 requests: {answers:?}");
    assert!(answers.keys().all(|a| a.as_ref().is_some_and(|a| names.contains(a))), "{answers:?}");

    // Hairpin: a backend reaching its own Service, itself included.
    let own_name = names[0].clone();
    let script = format!("for i in $(seq 30); do timeout 5 wget -qO- http://{WEB_IP}/ || echo FAILED; done");
    let out = env.ok(&["exec", &own_name, "--", "sh", "-c", &script]);
    let counts = count_lines(&out, &names);
    println!("{own_name} → its own Service, 30 requests: {counts:?}");
    assert_eq!(counts.get(&None), None, "{out}");
    assert!(counts.get(&Some(own_name.clone())).is_some_and(|n| *n > 0), "never reached itself: {counts:?}");

    // No endpoints: refused at once, not left to time out.
    let addr: SocketAddr = format!("{EMPTY_IP}:80").parse().expect("addr");
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect_err("no endpoints");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");

    // ClientIP affinity: one client, one pod (3 backends: all 20 alike by chance is 1 in 3^19).
    wait_for(
        Duration::from_secs(20),
        "the sticky Service's rules",
        || {
            // With affinity the service chain goes to one chain per endpoint, `aep-.../<ip>/8080`.
            let chain = nft(&["list", "chain", "ip", TABLE, "svc-default/sticky/tcp/http"])?;
            ips.iter().all(|ip| chain.contains(&format!("/{ip}/8080"))).then_some(())
        },
        show,
    )
    .await;
    let answers = answers_from_host(STICKY_IP, 80, 20);
    println!("host → {STICKY_IP}:80 (ClientIP affinity), 20 requests: {answers:?}");
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(answers.keys().all(|a| a.as_ref().is_some_and(|a| names.contains(a))), "{answers:?}");

    // A failing readiness probe takes the pod out of rotation.
    let (sick_name, sick_ip) = pods.iter().nth(1).map(|(n, ip)| (n.clone(), ip.clone())).expect("a pod");
    let failed_at = Instant::now();
    env.ok(&["exec", &sick_name, "--", "rm", "/tmp/ready"]);
    let healthy: BTreeSet<String> = all.iter().filter(|ip| **ip != sick_ip).cloned().collect();
    let ruled = kernel_reaches(&ips, &healthy, Duration::from_secs(30), &show()).await;
    let sliced = slice_showed(&slices, failed_at, &healthy).expect("the slice event");
    println!(
        "readiness failure of {sick_name}: probe broken → slice {:?}, slice → rule {:?}",
        sliced - failed_at,
        ruled.saturating_duration_since(sliced)
    );
    assert!(!pod_ready(&env.pod(&sick_name).expect("pod")), "the pod reports not ready");
    let answers = answers_from_host(WEB_IP, 80, 30);
    assert_eq!(answers.get(&Some(sick_name.clone())), None, "the unready pod still answered: {answers:?}");
    assert_eq!(answers.get(&None), None, "{answers:?}");

    // Scale to 1: within 2 s of the others leaving the slice, only the remaining pod answers.
    let scaled_at = Instant::now();
    env.ok(&["scale", "deployment/web", "--replicas=1"]);
    let remaining = wait_for(
        Duration::from_secs(30),
        "one web pod left",
        || {
            let p = web_pods(&env);
            (p.len() == 1).then(|| p.into_iter().next().expect("one pod"))
        },
        show,
    )
    .await;
    let only: BTreeSet<String> = [remaining.1.clone()].into_iter().collect();
    let ruled = kernel_reaches(&ips, &only, Duration::from_secs(30), &show()).await;
    let sliced = wait_for(
        Duration::from_secs(10),
        "the slice with only the remaining pod",
        || slice_showed(&slices, scaled_at, &only),
        || format!("{:?}", slices.lock().expect("lock")),
    )
    .await;
    let lag = ruled.saturating_duration_since(sliced);
    println!(
        "scale to 1: scale → slice {:?}, slice → rule {lag:?}, scale → rule {:?}",
        sliced - scaled_at,
        ruled - scaled_at
    );
    assert!(lag <= Duration::from_secs(2), "the rule followed the slice after {lag:?}");
    let answers = answers_from_host(WEB_IP, 80, 20);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers.get(&Some(remaining.0.clone())), Some(&20), "{answers:?}");

    // Deleted Services leave nothing behind.
    env.ok(&["delete", "service", "web", "web-nodeport", "empty", "sticky"]);
    let port_text = node_port.to_string();
    wait_for(
        Duration::from_secs(10),
        "no rule mentioning the deleted Services",
        || {
            let ruleset = nft(&["list", "ruleset"])?;
            let table = nft(&["list", "table", "ip", TABLE])?;
            let gone = [WEB_IP, NODEPORT_IP, EMPTY_IP, STICKY_IP].iter().all(|ip| !ruleset.contains(ip))
                && ips.iter().all(|ip| !table.contains(ip.as_str()))
                && !table.contains(&port_text)
                // Chains are named `svc-<ns>/<name>/...`; the cluster's own `default/kubernetes` stays.
                && ["web", "web-nodeport", "empty", "sticky"]
                    .iter()
                    .all(|name| !table.contains(&format!("default/{name}/")));
            gone.then_some(())
        },
        show,
    )
    .await;

    // The table outlives the agent; --cleanup deletes it.
    agent.kill();
    assert!(nft(&["list", "table", "ip", TABLE]).is_some(), "rules stay while the agent is down");
    let c = agent.config().clone();
    let out = Command::new(agent_binary())
        .arg("--cleanup")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["--node-name", NODE, "--runtime-endpoint", &c.endpoint, "--root-dir"])
        .arg(&c.root_dir)
        .output()
        .expect("gantry-node-agent --cleanup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tables = nft(&["list", "tables"]).expect("nft list tables");
    assert!(!tables.contains(TABLE), "{tables}");
}
