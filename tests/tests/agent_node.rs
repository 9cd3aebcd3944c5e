//! Two node agents on one machine (two node names, separate root dirs, one containerd) under a
//! 3-replica control plane that runs the scheduler and controllers: a Deployment of 3 replicas is
//! spread over both nodes and reaches Available; stopping containerd turns both nodes NotReady with
//! the runtime's reason, starting it again makes them Ready, and the pods kept running through it.
//! A third agent whose memory threshold can never be met reports MemoryPressure, is tainted by the
//! node lifecycle controller and gets no pod.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_tests::node_env::{
    http_get, pod_ready, wait_for, AgentConfig, AgentProcess, CniNetwork, KubeEnv, NodeRuntime,
};
use serde_json::{json, Value};

const NODES: [&str; 2] = ["pair-a", "pair-b"];
/// An agent that always reports memory pressure.
const PRESSED: &str = "pair-pressed";

fn ready_condition(env: &KubeEnv, node: &str) -> Option<Value> {
    let node = env.get(&["node", node])?;
    node["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready").cloned()
}

/// The Deployment's pods by name: (node, container id, ready).
fn web_pods(env: &KubeEnv) -> BTreeMap<String, (String, String, bool)> {
    let list = env.get(&["pods", "-l", "app=pair-web"]).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let node = p["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
            let id = p["status"]["containerStatuses"][0]["containerID"].as_str().unwrap_or_default().to_string();
            (name, (node, id, pod_ready(p)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_run_a_deployment_and_follow_the_runtime_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runtime =
        NodeRuntime::start(dir.path(), CniNetwork::new("gnapair0", "10.221.0.0/16")).expect("containerd with images");
    let endpoint = runtime.endpoint();
    let (cluster, k, work) = gantry_tests::kube::start_api_cluster().await;
    let env = KubeEnv { url: cluster.api_url(0).expect("api url"), k };
    let agents: Vec<AgentProcess> = NODES
        .iter()
        .map(|node| {
            let mut config = AgentConfig::new(&cluster.kubeconfig(), &endpoint, node, dir.path());
            config.extra_args = vec!["--lease-renew-seconds".into(), "2".into()];
            AgentProcess::start(config)
        })
        .collect();
    let mut config = AgentConfig::new(&cluster.kubeconfig(), &endpoint, PRESSED, dir.path());
    config.extra_args = vec!["--lease-renew-seconds".into(), "2".into()];
    config.eviction_hard = "memory.available<1000Ti".into();
    let pressed = AgentProcess::start(config);
    let logs = || agents.iter().map(AgentProcess::log_tail).collect::<Vec<_>>().join("\n---\n");
    for node in NODES {
        wait_for(
            Duration::from_secs(60),
            &format!("node {node} Ready"),
            || ready_condition(&env, node).filter(|c| c["status"] == "True"),
            logs,
        )
        .await;
    }

    let node = wait_for(
        Duration::from_secs(60),
        "the pressed node tainted for memory pressure",
        || {
            let node = env.get(&["node", PRESSED])?;
            let taints = node["spec"]["taints"].as_array()?;
            taints
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/memory-pressure" && t["effect"] == "NoSchedule")
                .then_some(node)
        },
        || pressed.log_tail(),
    )
    .await;
    let conditions = node["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let memory = conditions.iter().find(|c| c["type"] == "MemoryPressure").expect("MemoryPressure condition");
    assert_eq!((&memory["status"], &memory["reason"]), (&json!("True"), &json!("KubeletHasInsufficientMemory")));

    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "pair-web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "pair-web"}},
            "template": {
                "metadata": {"labels": {"app": "pair-web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "web", "image": gantry_tests::images::BUSYBOX_IMAGE,
                        "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
                    }]
                }
            }
        }
    });
    env.apply(work.path(), &deployment);
    let out = env.ok(&["rollout", "status", "deployment/pair-web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let available = env.get(&["deployment", "pair-web"]).expect("deployment");
    let conditions = available["status"]["conditions"].as_array().cloned().unwrap_or_default();
    assert!(
        conditions.iter().any(|c| c["type"] == "Available" && c["status"] == "True"),
        "Available condition: {conditions:?}"
    );
    assert_eq!(available["status"]["availableReplicas"], 3);
    let before = web_pods(&env);
    assert_eq!(before.len(), 3, "{before:?}");
    for node in NODES {
        assert!(before.values().any(|(n, ..)| n == node), "no pod on {node}: {before:?}");
    }
    assert!(before.values().all(|(n, ..)| n != PRESSED), "a pod landed on the pressed node: {before:?}");
    for (name, (_, id, ready)) in &before {
        assert!(*ready && id.starts_with("containerd://"), "{name} not running and ready: {before:?}");
    }
    let pods = env.get(&["pods", "-l", "app=pair-web"]).expect("pods");
    for p in pods["items"].as_array().expect("items") {
        let ip = p["status"]["podIP"].as_str().expect("pod ip");
        let body =
            wait_for(Duration::from_secs(20), "HTTP answer", || http_get(ip, 8080, "/index.html"), String::new).await;
        assert!(body.contains("hello from gantry"), "{body}");
    }

    // The runtime goes away: both nodes report NotReady with the runtime's reason.
    runtime.stop_daemon();
    for node in NODES {
        let c = wait_for(
            Duration::from_secs(30),
            &format!("node {node} NotReady"),
            || ready_condition(&env, node).filter(|c| c["status"] == "False"),
            logs,
        )
        .await;
        let message = c["message"].as_str().unwrap_or_default();
        assert!(message.contains("container runtime not ready"), "{c}");
    }
    // ...and Ready again once it is back, with the same containers running.
    runtime.start_daemon().expect("containerd restarts");
    for node in NODES {
        wait_for(
            Duration::from_secs(60),
            &format!("node {node} Ready again"),
            || ready_condition(&env, node).filter(|c| c["status"] == "True"),
            || format!("{}\n{}", logs(), runtime.log_tail()),
        )
        .await;
    }
    let after = wait_for(
        Duration::from_secs(30),
        "every pod ready after the runtime restart",
        || Some(web_pods(&env)).filter(|p| p.len() == 3 && p.values().all(|(_, _, ready)| *ready)),
        logs,
    )
    .await;
    assert_eq!(after, before, "pods were replaced or restarted across the runtime restart");
    env.ok(&["delete", "deployment", "pair-web", "--wait=true"]);
    drop(agents);
    drop(pressed);
    drop(runtime);
}
