//! The manifests in `examples/` run as their comments say on a node agent over a real containerd,
//! as `cargo xtask up` sets one up: `kubectl apply -f examples/` gives an Available web Deployment
//! answering HTTP on its pod IPs and through its Service's ClusterIP (the agent's proxy), a completed
//! Job and a pod serving a file from its ConfigMap volume.

use std::path::Path;
use std::time::Duration;

use gantry_tests::node_env::{
    http_get, pod_ready, wait_for, AgentConfig, AgentProcess, CniNetwork, KubeEnv, NodeRuntime,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run_on_a_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime =
        NodeRuntime::start(dir.path(), CniNetwork::new("gnaexam0", "10.222.0.0/16")).expect("containerd with images");
    let (cluster, k, _work) = gantry_tests::kube::start_api_cluster().await;
    let env = KubeEnv { url: cluster.api_url(0).expect("api url"), k };
    let agent =
        AgentProcess::start(AgentConfig::new(&cluster.kubeconfig(), &runtime.endpoint(), "example-node", dir.path()));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    env.ok(&["apply", "-f", examples.to_str().expect("path")]);

    let out = env.k.run(&env.url, &["rollout", "status", "deployment/web", "--timeout=120s"]);
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("successfully rolled out"), "{printed}\n{}", agent.log_tail());
    let pods = env.get(&["pods", "-l", "app=web"]).expect("web pods");
    let items = pods["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    for p in items {
        assert!(pod_ready(p), "{p}");
        let ip = p["status"]["podIP"].as_str().expect("pod ip");
        let body = wait_for(Duration::from_secs(20), "web answers", || http_get(ip, 8080, "/"), String::new).await;
        assert!(body.contains("hello from gantry"), "{body}");
    }
    let service = env.get(&["service", "web"]).expect("web service");
    let cluster_ip = service["spec"]["clusterIP"].as_str().expect("cluster ip").to_string();
    let body = wait_for(
        Duration::from_secs(30),
        "the web Service answers on its ClusterIP",
        || http_get(&cluster_ip, 80, "/"),
        || agent.log_tail(),
    )
    .await;
    assert!(body.contains("hello from gantry"), "{body}");

    env.ok(&["wait", "--for=condition=complete", "job/countdown", "--timeout=120s"]);
    let job = env.get(&["job", "countdown"]).expect("job");
    assert_eq!(job["status"]["succeeded"], 2, "{job}");

    let greeter = wait_for(
        Duration::from_secs(60),
        "greeter Ready",
        || env.pod("greeter").filter(pod_ready),
        || agent.log_tail(),
    )
    .await;
    let ip = greeter["status"]["podIP"].as_str().expect("pod ip").to_string();
    let body =
        wait_for(Duration::from_secs(20), "greeter answers", || http_get(&ip, 8080, "/index.html"), String::new).await;
    assert!(body.contains("Served from a ConfigMap volume"), "{body}");

    env.ok(&["delete", "-f", examples.to_str().expect("path"), "--wait=true", "--timeout=60s"]);
    drop(agent);
    drop(runtime);
}
