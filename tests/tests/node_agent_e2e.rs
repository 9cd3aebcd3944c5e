//! The node agent as a real process against a 3-replica control plane and a private containerd:
//! the node registers Ready; a busybox pod answers HTTP on its pod IP; a crashing container restarts
//! with growing back-off and shows CrashLoopBackOff; after a SIGKILL and restart of the agent the
//! running container keeps its id and a pod deleted meanwhile is cleaned up; deleting a pod leaves no
//! sandbox, container, log directory or cgroup behind.
//!
//! Needs root, containerd, runc, containernetworking-plugins, umoci and busybox-static. Build first:
//! `cargo build -p control-plane -p gantry-node-agent --bins`.

use std::path::Path;
use std::time::{Duration, Instant};

use gantry_tests::node_env::{
    cri_counts, http_get, pod_ready, wait_for, AgentConfig, AgentProcess, CniNetwork, KubeEnv, NodeRuntime,
};
use serde_json::Value;

const NODE: &str = "e2e-node";

fn busybox_pod(name: &str, command: &[&str], restart: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 3,
            "containers": [{
                "name": "main", "image": gantry_tests::images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": command,
                "env": [{"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
            }]
        }
    })
}

fn container0(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_agent_runs_pods_on_containerd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime =
        NodeRuntime::start(dir.path(), CniNetwork::new("gnae2e0", "10.217.0.0/16")).expect("containerd with images");
    let endpoint = runtime.endpoint();
    let (cluster, k, work) = gantry_tests::kube::start_api_cluster().await;
    let env = KubeEnv { url: cluster.api_url(0).expect("api url"), k };
    let mut agent = AgentProcess::start(AgentConfig::new(&cluster.kubeconfig(), &endpoint, NODE, dir.path()));
    let root = agent.config().root_dir.clone();

    // The node registers Ready with the runtime's version.
    let node = env.wait_node_ready(NODE, || agent.log_tail()).await;
    let info = &node["status"]["nodeInfo"];
    assert!(info["containerRuntimeVersion"].as_str().unwrap_or_default().starts_with("containerd://"), "{info}");
    assert_eq!(info["kubeletVersion"], "v1.33.0-gantry");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], NODE);
    assert!(env.get(&["lease", NODE, "-n", "kube-node-lease"]).is_some(), "node lease exists");

    // A busybox httpd answers on its pod IP.
    env.create(work.path(), &busybox_pod("web", &["httpd", "-f", "-p", "8080", "-h", "/www"], "Always"));
    let web = wait_for(
        Duration::from_secs(60),
        "web Running and Ready",
        || {
            let pod = env.pod("web")?;
            (pod["status"]["phase"] == "Running" && pod_ready(&pod) && pod["status"]["podIP"].is_string())
                .then_some(pod)
        },
        || format!("{}\n{}", env.pod("web").unwrap_or_default(), agent.log_tail()),
    )
    .await;
    let ip = web["status"]["podIP"].as_str().expect("pod ip").to_string();
    let uid = web["metadata"]["uid"].as_str().expect("uid").to_string();
    let web_id = container0(&web)["containerID"].as_str().expect("container id").to_string();
    assert!(web_id.starts_with("containerd://"), "{web_id}");
    assert_eq!(web["status"]["qosClass"], "BestEffort");
    assert_eq!(web["status"]["hostIP"], "127.0.0.1");
    let body =
        wait_for(Duration::from_secs(20), "HTTP answer", || http_get(&ip, 8080, "/index.html"), String::new).await;
    assert!(body.contains("hello from gantry"), "{body}");

    // A container exiting 1 restarts with growing back-off and shows CrashLoopBackOff.
    env.create(work.path(), &busybox_pod("crash", &["sh", "-c", "exit 1"], "Always"));
    let mut restarts_at: Vec<(i64, Instant)> = Vec::new();
    let crash = wait_for(
        Duration::from_secs(90),
        "three restarts of crash",
        || {
            let pod = env.pod("crash")?;
            let count = container0(&pod)["restartCount"].as_i64()?;
            if restarts_at.last().is_none_or(|(c, _)| *c < count) {
                restarts_at.push((count, Instant::now()));
            }
            (count >= 3 && container0(&pod)["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(pod)
        },
        || format!("{}\n{}", env.pod("crash").unwrap_or_default(), agent.log_tail()),
    )
    .await;
    let last = &container0(&crash)["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 1, "{crash}");
    assert_eq!(last["reason"], "Error");
    let message = container0(&crash)["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.starts_with("back-off "), "{message}");
    let when = |n: i64| restarts_at.iter().find(|(c, _)| *c >= n).map(|(_, t)| *t).expect("restart seen");
    let gap2 = when(2) - when(1);
    let gap3 = when(3) - when(2);
    assert!(gap2 >= Duration::from_secs(8), "second restart came after {gap2:?}, expected ~10 s of back-off");
    assert!(gap3 > gap2 + Duration::from_secs(5), "back-off must grow: {gap2:?} then {gap3:?}");
    let crash_uid = crash["metadata"]["uid"].as_str().expect("uid").to_string();

    // SIGKILL the agent; delete `crash` while it is down; restart it.
    agent.kill();
    env.k.ok(&env.url, &["delete", "pod", "crash", "--grace-period=0", "--force"]);
    agent.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while cri_counts(&endpoint, &crash_uid).await != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "sandbox of a pod deleted while the agent was down remains\n{}",
            agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The running pod is adopted, not restarted: for a few seconds of the new agent's syncs the
    // container stays the same and is the only one.
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        assert_eq!(cri_counts(&endpoint, &uid).await, (1, 1), "no duplicate sandbox or container after adoption");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let web = env.pod("web").expect("web");
    assert_eq!(container0(&web)["containerID"].as_str(), Some(web_id.as_str()), "container replaced: {web}");
    // The restarted agent keeps reporting: a pod created now gets its status.
    env.create(work.path(), &busybox_pod("after", &["sleep", "3600"], "Always"));
    wait_for(
        Duration::from_secs(60),
        "a pod created after the agent restart Running",
        || env.pod("after").filter(|p| p["status"]["phase"] == "Running"),
        || format!("{}\n{}", env.pod("after").unwrap_or_default(), agent.log_tail()),
    )
    .await;
    env.k.ok(&env.url, &["delete", "pod", "after", "--wait=true", "--timeout=60s"]);
    assert_eq!(container0(&web)["restartCount"], 0);
    assert!(http_get(&ip, 8080, "/index.html").is_some_and(|b| b.contains("hello from gantry")));

    // Deleting the pod stops it and leaves nothing behind.
    env.k.ok(&env.url, &["delete", "pod", "web", "--wait=true", "--timeout=60s"]);
    assert!(env.pod("web").is_none(), "pod still exists after delete");
    assert_eq!(cri_counts(&endpoint, &uid).await, (0, 0), "sandbox or container left behind");
    let log_dir = root.join("pods").join(format!("default_web_{uid}"));
    assert!(!log_dir.exists(), "log dir {} left behind", log_dir.display());
    let cgroup = Path::new("/sys/fs/cgroup/memory/gantry").join(format!("pod{uid}"));
    assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
    agent.kill();
    drop(runtime);
}
