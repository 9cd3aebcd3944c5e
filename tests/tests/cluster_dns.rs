//! Cluster DNS end to end: a real node agent on a private containerd, a 3-replica control plane and
//! busybox pods whose resolvers reach the agent's DNS server through the cluster DNS address:
//! - a `ClusterFirst` pod's /etc/resolv.conf names the cluster DNS address, the search path
//!   `<ns>.svc.<domain> svc.<domain> <domain>` and `ndots:5`; a `Default` pod gets the host's resolvers;
//! - a ClusterIP Service resolves to its ClusterIP from a pod by `<svc>`, `<svc>.<ns>` (the libc
//!   resolver's search path) and its FQDN (nslookup, and wget connecting to the ClusterIP);
//! - a headless Service resolves to its ready pods' IPs and drops a pod that turns unready;
//! - StatefulSet pods under their headless Service resolve as `<pod>.<svc>[.<ns>.svc.cluster.local]`;
//! - SRV records for named ports (ClusterIP and headless), NXDOMAIN with the zone's SOA for unknown
//!   names in the cluster domain;
//! - names outside the cluster domain are forwarded to the upstream given by `--dns-upstream` (a
//!   responder in this test), from a pod and from a hostNetwork pod (`ClusterFirstWithHostNet`, whose
//!   queries take the output-hook redirect);
//! - the host queries the agent's DNS port directly and through the cluster DNS address; the agent's
//!   metrics count requests by rcode; `--cleanup` removes the redirect table.
//!
//! Needs root, containerd, runc, containernetworking-plugins, umoci, busybox-static, nftables and
//! curl. Build first: `cargo build -p control-plane -p gantry-node-agent --bins`.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gantry_tests::node_env::{
    agent_binary, dns_redirect_table, pod_ready, wait_for, wait_for_async, AgentConfig, AgentProcess, CniNetwork,
    KubeEnv, NodeRuntime,
};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::{json, Value};
use tokio::net::UdpSocket;

const NODE: &str = "dns-node";
const SUBNET: &str = "10.224.0.0/16";
/// A cluster DNS address of this test's own: an agent of a local cluster (`cargo xtask up`) on this
/// machine redirects the default 10.96.0.10 for all sources on the output hook.
const CLUSTER_DNS: &str = "10.96.0.53";
const WEB_IP: &str = "10.96.100.20";
/// The name the test's upstream answers, and its address.
const UPSTREAM_NAME: &str = "probe.example.test.";
const UPSTREAM_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);

fn busybox(name: &str, labels: Value, script: &str, container: Value, spec: Value) -> Value {
    let mut c = json!({
        "name": "main", "image": gantry_tests::images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
    });
    merge(&mut c, container);
    let mut s = json!({"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": [c]});
    merge(&mut s, spec);
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "labels": labels}, "spec": s})
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn service(name: &str, cluster_ip: &str, app: &str, ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
           "spec": {"clusterIP": cluster_ip, "selector": {"app": app}, "ports": ports}})
}

/// A UDP DNS responder on loopback standing in for the host's resolver: `UPSTREAM_NAME` gets an A
/// record, anything else NXDOMAIN. Records the names it was asked.
struct Upstream {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = socket.local_addr().expect("addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
                let Some(q) = request.queries.first().cloned() else { continue };
                log.lock().expect("log").push(q.name().to_ascii().to_lowercase());
                let mut reply = Message::response(request.metadata.id, OpCode::Query);
                reply.metadata.recursion_desired = request.metadata.recursion_desired;
                reply.metadata.recursion_available = true;
                reply.queries = request.queries.clone();
                if q.name().to_ascii().eq_ignore_ascii_case(UPSTREAM_NAME) {
                    if q.query_type() == RecordType::A {
                        reply.add_answer(Record::from_rdata(q.name().clone(), 30, RData::A(A(UPSTREAM_IP))));
                    }
                } else {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                }
                let _ = socket.send_to(&reply.to_vec().expect("encode"), peer).await;
            }
        });
        Self { addr, asked }
    }

    fn was_asked(&self, name: &str) -> bool {
        self.asked.lock().expect("log").iter().any(|n| n == name)
    }
}

/// One UDP question to `server`; the reply, or `None` without one within 3 s.
async fn ask(server: SocketAddr, name: &str, qtype: RecordType) -> Option<Message> {
    let socket = UdpSocket::bind("0.0.0.0:0").await.ok()?;
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).ok()?, qtype));
    socket.send_to(&m.to_vec().ok()?, server).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await.ok()?.ok()?;
    let reply = Message::from_vec(&buf[..n]).ok()?;
    (reply.metadata.id == m.metadata.id).then_some(reply)
}

fn rendered(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| format!("{} {} {}", r.name, r.record_type(), r.data)).collect()
}

/// `kubectl exec POD -- sh -c SCRIPT`: exit code and combined output.
fn exec(env: &KubeEnv, pod: &str, script: &str) -> (i32, String) {
    let out = env.k.run(&env.url, &["exec", pod, "--", "sh", "-c", script]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The answer addresses busybox `nslookup NAME` printed (the server's own `Address:` line carries a
/// port and is skipped), with the `Name:` lines.
fn nslookup(env: &KubeEnv, pod: &str, name: &str) -> (BTreeSet<Ipv4Addr>, BTreeSet<String>, String) {
    let (_, out) = exec(env, pod, &format!("nslookup {name}"));
    let mut ips = BTreeSet::new();
    let mut names = BTreeSet::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Address:") {
            if let Ok(ip) = rest.trim().parse() {
                ips.insert(ip);
            }
        } else if let Some(rest) = line.strip_prefix("Name:") {
            names.insert(rest.trim().to_string());
        }
    }
    (ips, names, out)
}

/// The address the libc resolver (busybox `ping`, which uses getaddrinfo and so the search path and
/// ndots) gives `name`: `PING name (ip): ...`.
fn libc_resolve(env: &KubeEnv, pod: &str, name: &str) -> (Option<Ipv4Addr>, String) {
    let (_, out) = exec(env, pod, &format!("ping -c 1 -W 1 {name}"));
    let ip = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("PING {name} (")))
        .and_then(|rest| rest.split(')').next())
        .and_then(|ip| ip.parse().ok());
    (ip, out)
}

fn pod_ip(env: &KubeEnv, name: &str) -> Ipv4Addr {
    env.pod(name).expect("pod")["status"]["podIP"].as_str().expect("podIP").parse().expect("ip")
}

fn ips(list: &[Ipv4Addr]) -> BTreeSet<Ipv4Addr> {
    list.iter().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_and_the_host_resolve_cluster_names_through_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = NodeRuntime::start(dir.path(), CniNetwork::new("gnadns0", SUBNET)).expect("containerd with images");
    let upstream = Upstream::start().await;
    let (cluster, k, work) = gantry_tests::kube::start_api_cluster().await;
    let env = KubeEnv { url: cluster.api_url(0).expect("api url"), k };
    let mut config = AgentConfig::new(&cluster.kubeconfig(), &runtime.endpoint(), NODE, dir.path());
    config.extra_args =
        ["--dns-upstream", &upstream.addr.to_string(), "--pod-cidr", SUBNET, "--cluster-dns", CLUSTER_DNS]
            .map(str::to_string)
            .to_vec();
    let dns_port = config.dns_port;
    let mut agent = AgentProcess::start(config.clone());
    let context = || format!("{}\n{}", agent.log_tail(), runtime.log_tail());
    let direct: SocketAddr = ([127, 0, 0, 1], dns_port).into();

    env.wait_node_ready(NODE, context).await;

    // A ClusterIP Service (with an explicit ClusterIP: nothing allocates one yet), a headless one over
    // three pods whose readiness is a file, a StatefulSet under its own headless Service, and clients.
    let w = work.path();
    env.create(w, &service("web", WEB_IP, "web", json!([{"name": "http", "port": 80, "targetPort": 8080}])));
    env.create(w, &service("db", "None", "db", json!([{"name": "pg", "port": 5432, "targetPort": 5432}])));
    env.create(w, &service("ss-svc", "None", "ss", json!([{"name": "peer", "port": 7000}])));
    let ready_file = json!({"readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                                               "periodSeconds": 1, "failureThreshold": 1}});
    for name in ["db-a", "db-b", "db-c"] {
        env.create(
            w,
            &busybox(name, json!({"app": "db"}), "touch /tmp/ready; sleep 3600", ready_file.clone(), json!({})),
        );
    }
    env.create(
        w,
        &json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ss", "namespace": "default"},
            "spec": {"serviceName": "ss-svc", "replicas": 2, "selector": {"matchLabels": {"app": "ss"}},
                "template": {"metadata": {"labels": {"app": "ss"}}, "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": gantry_tests::images::BUSYBOX_IMAGE,
                                    "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}}}}),
    );
    env.create(w, &busybox("client", json!({"role": "client"}), "sleep 3600", json!({}), json!({})));
    env.create(w, &busybox("host-dns", json!({}), "sleep 3600", json!({}), json!({"dnsPolicy": "Default"})));
    env.create(
        w,
        &busybox(
            "hostnet",
            json!({}),
            "sleep 3600",
            json!({}),
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
        ),
    );
    for name in ["db-a", "db-b", "db-c", "ss-0", "ss-1", "client", "host-dns", "hostnet"] {
        wait_for(Duration::from_secs(120), &format!("{name} ready"), || env.pod(name).filter(pod_ready), context).await;
    }

    // resolv.conf by dnsPolicy.
    let (_, resolv) = exec(&env, "client", "cat /etc/resolv.conf");
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_search: Vec<&str> =
        host.lines().filter_map(|l| l.strip_prefix("search ")).flat_map(str::split_whitespace).collect();
    let mut search = vec!["default.svc.cluster.local", "svc.cluster.local", "cluster.local"];
    search.extend(host_search.iter().map(|d| d.trim_end_matches('.')));
    let lines: Vec<&str> = resolv.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert!(lines.contains(&format!("nameserver {CLUSTER_DNS}").as_str()), "{resolv}");
    assert!(lines.contains(&format!("search {}", search.join(" ")).as_str()), "{resolv}");
    assert!(lines.contains(&"options ndots:5"), "{resolv}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("nameserver")).count(), 1, "{resolv}");
    let (_, host_pod_resolv) = exec(&env, "host-dns", "cat /etc/resolv.conf");
    let nameservers = |text: &str| -> Vec<String> {
        text.lines().filter(|l| l.trim_start().starts_with("nameserver")).map(|l| l.trim().to_string()).collect()
    };
    assert!(!nameservers(&host).is_empty(), "the host has nameservers: {host}");
    assert_eq!(nameservers(&host_pod_resolv), nameservers(&host), "dnsPolicy Default: {host_pod_resolv}");
    let (_, hostnet_resolv) = exec(&env, "hostnet", "cat /etc/resolv.conf");
    assert!(hostnet_resolv.contains(&format!("nameserver {CLUSTER_DNS}")), "{hostnet_resolv}");

    // The ClusterIP Service by FQDN (nslookup), by `<svc>` and `<svc>.<ns>` (libc search path).
    let web = WEB_IP.parse::<Ipv4Addr>().expect("ip");
    let fqdn = "web.default.svc.cluster.local";
    let (found, names, out) = wait_for(
        Duration::from_secs(30),
        "web's FQDN resolving in a pod",
        || Some(nslookup(&env, "client", fqdn)).filter(|(ips, _, _)| !ips.is_empty()),
        context,
    )
    .await;
    assert_eq!((found, names), (ips(&[web]), BTreeSet::from([fqdn.to_string()])), "{out}");
    let (found, _, out) = nslookup(&env, "client", "web");
    assert_eq!(found, ips(&[web]), "undotted names take the search path: {out}");
    for name in ["web", "web.default", fqdn] {
        let (found, out) = libc_resolve(&env, "client", name);
        assert_eq!(found, Some(web), "libc resolves {name}: {out}");
    }
    let (_, out) = exec(&env, "client", &format!("timeout 3 wget -O /dev/null http://{fqdn}/ 2>&1"));
    assert!(out.contains(&format!("({WEB_IP}:80)")), "wget connects to the ClusterIP: {out}");

    // The headless Service: its ready pods; one turning unready drops out.
    let db: Vec<Ipv4Addr> = ["db-a", "db-b", "db-c"].iter().map(|p| pod_ip(&env, p)).collect();
    let db_name = "db.default.svc.cluster.local";
    wait_for(
        Duration::from_secs(30),
        "db resolving to its three pods",
        || (nslookup(&env, "client", db_name).0 == ips(&db)).then_some(()),
        || format!("{:?} vs {db:?}\n{}", nslookup(&env, "client", db_name), context()),
    )
    .await;
    let (code, out) = exec(&env, "db-c", "rm /tmp/ready");
    assert_eq!(code, 0, "{out}");
    wait_for(
        Duration::from_secs(30),
        "db-c unready and gone from db's answer",
        || (nslookup(&env, "client", db_name).0 == ips(&db[..2])).then_some(()),
        || format!("{:?}\n{}", nslookup(&env, "client", db_name), context()),
    )
    .await;

    // StatefulSet pods by their stable names.
    for pod in ["ss-0", "ss-1"] {
        let ip = pod_ip(&env, pod);
        let long = format!("{pod}.ss-svc.default.svc.cluster.local");
        let (found, names, out) = wait_for(
            Duration::from_secs(30),
            &format!("{long} resolving"),
            || Some(nslookup(&env, "client", &long)).filter(|(ips, _, _)| !ips.is_empty()),
            context,
        )
        .await;
        assert_eq!((found, names), (ips(&[ip]), BTreeSet::from([long.clone()])), "{out}");
        let (found, out) = libc_resolve(&env, "client", &format!("{pod}.ss-svc"));
        assert_eq!(found, Some(ip), "{pod}.ss-svc through the search path: {out}");
    }

    // SRV for named ports, from a pod and from the host on the agent's port.
    let (_, out) = exec(&env, "client", "nslookup -type=SRV _http._tcp.web.default.svc.cluster.local");
    assert!(out.contains("0 100 80 web.default.svc.cluster.local"), "{out}");
    let srv = ask(direct, "_http._tcp.web.default.svc.cluster.local.", RecordType::SRV).await.expect("srv reply");
    assert_eq!(
        rendered(&srv.answers),
        ["_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(rendered(&srv.additionals), [format!("web.default.svc.cluster.local. A {WEB_IP}")]);
    let srv = ask(direct, "_peer._tcp.ss-svc.default.svc.cluster.local.", RecordType::SRV).await.expect("srv reply");
    let mut targets = rendered(&srv.answers);
    targets.sort();
    assert_eq!(
        targets,
        [
            "_peer._tcp.ss-svc.default.svc.cluster.local. SRV 0 50 7000 ss-0.ss-svc.default.svc.cluster.local.",
            "_peer._tcp.ss-svc.default.svc.cluster.local. SRV 0 50 7000 ss-1.ss-svc.default.svc.cluster.local.",
        ]
    );

    // Unknown names in the cluster domain: NXDOMAIN with the SOA.
    let (code, out) = exec(&env, "client", "nslookup nope.default.svc.cluster.local");
    assert!(code != 0 && out.contains("NXDOMAIN"), "{code}: {out}");
    let nx = ask(direct, "nope.default.svc.cluster.local.", RecordType::A).await.expect("reply");
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert_eq!(nx.authorities.first().map(Record::record_type), Some(RecordType::SOA));

    // Other names go to the upstream: from a pod, from a hostNetwork pod and from the host.
    let want = BTreeSet::from([UPSTREAM_IP]);
    let (found, _, out) = nslookup(&env, "client", UPSTREAM_NAME.trim_end_matches('.'));
    assert_eq!(found, want, "{out}");
    assert!(upstream.was_asked(UPSTREAM_NAME), "the upstream saw the query");
    let (found, out) = libc_resolve(&env, "client", UPSTREAM_NAME.trim_end_matches('.'));
    assert_eq!(found, Some(UPSTREAM_IP), "after the search path's NXDOMAINs: {out}");
    let (found, _, out) = nslookup(&env, "hostnet", UPSTREAM_NAME.trim_end_matches('.'));
    assert_eq!(found, want, "hostNetwork pod through the output hook: {out}");
    let (found, _, out) = nslookup(&env, "hostnet", fqdn);
    assert_eq!(found, ips(&[web]), "{out}");
    let reply = ask(direct, UPSTREAM_NAME, RecordType::A).await.expect("forwarded reply");
    assert_eq!(rendered(&reply.answers), [format!("{UPSTREAM_NAME} A {UPSTREAM_IP}")]);
    let via_cluster_ip: SocketAddr = (CLUSTER_DNS.parse::<Ipv4Addr>().expect("ip"), 53).into();
    let reply = wait_for_async(
        Duration::from_secs(10),
        "the host's query to the cluster DNS address",
        || ask(via_cluster_ip, "web.default.svc.cluster.local.", RecordType::A),
        context,
    )
    .await;
    assert_eq!(rendered(&reply.answers), [format!("web.default.svc.cluster.local. A {WEB_IP}")]);

    // The agent's metrics count what it answered.
    let metrics = Command::new("curl")
        .args(["-sk", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{}/metrics", agent.config().port))
        .output()
        .expect("curl");
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    let count = |series: &str| -> f64 {
        metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
    };
    assert!(count("gantry_node_agent_dns_requests_total{rcode=\"NOERROR\",source=\"cluster\"}") >= 5.0, "{metrics}");
    assert!(count("gantry_node_agent_dns_requests_total{rcode=\"NXDOMAIN\",source=\"cluster\"}") >= 2.0, "{metrics}");
    assert!(count("gantry_node_agent_dns_requests_total{rcode=\"NOERROR\",source=\"upstream\"}") >= 3.0, "{metrics}");
    assert!(count("gantry_node_agent_dns_request_duration_seconds_count{source=\"upstream\"}") >= 3.0, "{metrics}");

    // A killed agent leaves its redirect (pods keep running across restarts); --cleanup removes it.
    agent.kill();
    let table = dns_redirect_table(NODE);
    let listed = |t: &str| Command::new("nft").args(["list", "table", "ip", t]).output().expect("nft");
    let rules = listed(&table);
    assert!(rules.status.success(), "the table outlives the agent");
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    assert!(rules.contains(&format!("ip daddr {CLUSTER_DNS} udp dport 53 redirect to :{dns_port}")), "{rules}");
    let cleanup = Command::new(agent_binary())
        .arg("--kubeconfig")
        .arg(&config.kubeconfig)
        .args(["--node-name", NODE, "--runtime-endpoint", &config.endpoint, "--root-dir"])
        .arg(&config.root_dir)
        .arg("--cleanup")
        .output()
        .expect("agent --cleanup");
    assert!(cleanup.status.success(), "{}", String::from_utf8_lossy(&cleanup.stderr));
    assert!(!listed(&table).status.success(), "--cleanup deletes {table}");
}
