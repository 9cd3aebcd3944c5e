//! Node failure and drain end to end, against 3 control-plane replicas and simulated nodes: a node that
//! stops heartbeating goes `Unknown`, gets the `unreachable` taints, its ReplicaSet pods are evicted
//! after their `tolerationSeconds` and replaced on other nodes; `kubectl drain` evicts through the
//! eviction API, is held back by a PodDisruptionBudget (429, retried by kubectl until `--timeout`), and
//! succeeds once the budget allows it.
//!
//! The control plane runs with `--node-monitor-grace-period 8s` so the test does not wait the upstream
//! 40 s; everything else (tolerations, retries) is upstream behaviour.

use std::time::{Duration, Instant};

use gantry_sim_nodes::{client_from_kubeconfig, SimConfig, SimNodes};
use gantry_tests::cluster::{ClusterConfig, ProcessCluster};
use gantry_tests::kube::{wait_api_ready, Kubectl};
use gantry_tests::launcher::Launcher;
use serde_json::Value;

const GRACE: &str = "8s";

const REPLICA_SET: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
  namespace: default
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: registry.k8s.io/pause:3.9
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
"#;

fn pdb(min_available: i64) -> String {
    format!(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web, namespace: default}}\n\
         spec:\n  minAvailable: {min_available}\n  selector:\n    matchLabels: {{app: web}}\n"
    )
}

struct Env {
    k: Kubectl,
    url: String,
    work: tempfile::TempDir,
}

impl Env {
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.k.ok(&self.url, &all)).expect("kubectl json")
    }

    fn apply(&self, name: &str, manifest: &str) {
        let path = self.work.path().join(name);
        std::fs::write(&path, manifest).expect("write manifest");
        self.k.ok(&self.url, &["apply", "-f", path.to_str().expect("utf-8 path")]);
    }

    fn web_pods(&self) -> Vec<Value> {
        self.json(&["get", "pods", "-n", "default", "-l", "app=web"])["items"].as_array().cloned().unwrap_or_default()
    }

    fn node(&self, name: &str) -> Value {
        self.json(&["get", "node", name])
    }
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or("")
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

fn has_taint(node: &Value, key: &str, effect: &str) -> bool {
    node["spec"]["taints"].as_array().is_some_and(|ts| ts.iter().any(|t| t["key"] == key && t["effect"] == effect))
}

fn ready_condition(node: &Value) -> Value {
    node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or(Value::Null)
}

/// Polls `check` until it returns `Some`, failing with `what` and the last observation after `timeout`.
async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("timed out waiting for {what}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Three running, ready, non-terminating web pods; returns them.
fn three_ready_pods(env: &Env, avoid: &str) -> Result<Vec<Value>, String> {
    let pods = env.web_pods();
    let live: Vec<Value> = pods.iter().filter(|p| !terminating(p)).cloned().collect();
    let summary = || {
        pods.iter()
            .map(|p| {
                format!("{}@{}:{}", p["metadata"]["name"], node_of(p), if is_ready(p) { "ready" } else { "unready" })
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if live.iter().any(|p| node_of(p).is_empty()) {
        return Err(format!("unbound pods (is the scheduler running?): {}", summary()));
    }
    let good = live.len() == 3 && live.iter().all(|p| is_ready(p) && node_of(p) != avoid);
    if good {
        Ok(live)
    } else {
        Err(summary())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_pods_move_and_drain_respects_budgets() {
    let config = ClusterConfig {
        kubernetes_api: true,
        extra_args: vec!["--node-monitor-grace-period".into(), GRACE.into()],
        ..Default::default()
    };
    let cluster = ProcessCluster::start(Launcher::gantry().expect("gantry binary"), config).await.expect("cluster");
    let work = tempfile::tempdir().expect("tempdir");
    let k = Kubectl { kubeconfig: cluster.kubeconfig(), cache_dir: work.path().join("cache") };
    wait_api_ready(&cluster, &k).await;
    let env = Env { k, url: cluster.api_url(0).expect("api url"), work };

    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client");
    let sim_config = SimConfig {
        nodes: 3,
        name_prefix: "nf-".into(),
        lease_interval: Duration::from_secs(1),
        status_interval: Duration::from_secs(2),
        ..SimConfig::default()
    };
    let sim = SimNodes::start(client, sim_config).await.expect("sim nodes");

    env.apply("rs.yaml", REPLICA_SET);
    let pods = wait_for("3 ready web pods", Duration::from_secs(90), || three_ready_pods(&env, "")).await;

    // A node stops heartbeating.
    let victim = node_of(&pods[0]).to_string();
    let victim_pods: Vec<String> = pods
        .iter()
        .filter(|p| node_of(p) == victim)
        .map(|p| p["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    sim.stop_heartbeats(&victim);
    wait_for("the dead node to go Unknown with the unreachable taints", Duration::from_secs(60), || {
        let node = env.node(&victim);
        let ready = ready_condition(&node);
        let ok = ready["status"] == "Unknown"
            && ready["reason"] == "NodeStatusUnknown"
            && ready["message"] == "Kubelet stopped posting node status."
            && has_taint(&node, "node.kubernetes.io/unreachable", "NoExecute")
            && has_taint(&node, "node.kubernetes.io/unreachable", "NoSchedule");
        if ok {
            Ok(())
        } else {
            Err(format!("ready={ready} taints={}", node["spec"]["taints"]))
        }
    })
    .await;
    // After tolerationSeconds the taint manager deletes them and the ReplicaSet replaces them elsewhere.
    let moved = wait_for("the dead node's pods to be replaced on other nodes", Duration::from_secs(60), || {
        let all = env.web_pods();
        let still_live: Vec<&Value> = all
            .iter()
            .filter(|p| victim_pods.iter().any(|n| p["metadata"]["name"] == n.as_str()) && !terminating(p))
            .collect();
        if !still_live.is_empty() {
            return Err(format!("{} pods of {victim} not evicted yet", still_live.len()));
        }
        three_ready_pods(&env, &victim)
    })
    .await;
    assert!(moved.iter().all(|p| node_of(p) != victim));
    let events =
        env.k.ok(&env.url, &["get", "events", "-n", "default", "--field-selector", "reason=TaintManagerEviction"]);
    assert!(events.contains("Marking for deletion Pod"), "no TaintManagerEviction events: {events}");

    // The node comes back: taints go, it is Ready again.
    sim.resume_heartbeats(&victim);
    wait_for("the recovered node to lose its taints", Duration::from_secs(60), || {
        let node = env.node(&victim);
        let ok = ready_condition(&node)["status"] == "True"
            && !has_taint(&node, "node.kubernetes.io/unreachable", "NoExecute")
            && !has_taint(&node, "node.kubernetes.io/unreachable", "NoSchedule");
        if ok {
            Ok(())
        } else {
            Err(format!("ready={} taints={}", ready_condition(&node), node["spec"]["taints"]))
        }
    })
    .await;

    // A budget that needs every replica blocks a drain.
    env.apply("pdb.yaml", &pdb(3));
    wait_for("the budget's status", Duration::from_secs(30), || {
        let b = env.json(&["get", "pdb", "web", "-n", "default"]);
        let s = &b["status"];
        let ok = s["expectedPods"] == 3
            && s["currentHealthy"] == 3
            && s["desiredHealthy"] == 3
            && s["disruptionsAllowed"] == 0;
        if ok {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    let pods = three_ready_pods(&env, "").expect("web pods still ready");
    let target = node_of(&pods[0]).to_string();
    let drain = ["drain", target.as_str(), "--ignore-daemonsets", "--delete-emptydir-data"];
    let mut blocked = drain.to_vec();
    blocked.push("--timeout=12s");
    let stderr = env.k.fails(&env.url, &blocked);
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "drain was not blocked by the budget: {stderr}"
    );
    let node = env.node(&target);
    assert_eq!(node["spec"]["unschedulable"], true, "drain cordons first");
    // The controller mirrors the cordon as a taint, as upstream.
    wait_for("the cordon taint", Duration::from_secs(20), || {
        let n = env.node(&target);
        if has_taint(&n, "node.kubernetes.io/unschedulable", "NoSchedule") {
            Ok(())
        } else {
            Err(n["spec"].to_string())
        }
    })
    .await;
    assert_eq!(three_ready_pods(&env, "").map(|p| p.len()), Ok(3), "a blocked drain evicts nothing");

    // Once the budget allows one disruption the drain goes through (kubectl retries 429s).
    env.apply("pdb.yaml", &pdb(2));
    let mut allowed = drain.to_vec();
    allowed.push("--timeout=90s");
    let out = env.k.ok(&env.url, &allowed);
    assert!(out.contains("drained"), "drain output: {out}");
    let after = wait_for("the drained node's pods to be replaced elsewhere", Duration::from_secs(60), || {
        three_ready_pods(&env, &target)
    })
    .await;
    assert!(after.iter().all(|p| node_of(p) != target));
    sim.shutdown().await;
}
