//! The node agent as a real process against a 3-replica control plane and a private containerd:
//! the node registers Ready; a busybox pod answers HTTP on its pod IP; a crashing container restarts
//! with growing back-off and shows CrashLoopBackOff; after a SIGKILL and restart of the agent the
//! running container keeps its id and a pod deleted meanwhile is cleaned up; deleting a pod leaves no
//! sandbox, container, log directory or cgroup behind.
//!
//! Needs root, containerd, runc, containernetworking-plugins, umoci and busybox-static. Build first:
//! `cargo build -p control-plane -p gantry-node-agent --bins`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry_cri_proto::runtime::{ContainerFilter, ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter};
use gantry_tests::containerd::PrivateContainerd;
use gantry_tests::kube::Kubectl;
use serde_json::Value;

const NODE: &str = "e2e-node";
const AGENT_BINARY: &str = "gantry-node-agent";

fn agent_binary() -> PathBuf {
    if let Some(dir) = std::env::var_os("GANTRY_BIN_DIR") {
        return PathBuf::from(dir).join(AGENT_BINARY);
    }
    let exe = std::env::current_exe().expect("test executable");
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|d| d.join(AGENT_BINARY))
        .find(|p| p.is_file())
        .expect("gantry-node-agent not built (cargo build -p gantry-node-agent) and GANTRY_BIN_DIR unset")
}

/// The agent process; killed with SIGKILL when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(kubeconfig: &Path, endpoint: &str, root: &Path, log: &Path, port: u16) -> Self {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("agent log");
        let err = out.try_clone().expect("agent log");
        let child = Command::new(agent_binary())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--node-name", NODE, "--runtime-endpoint", endpoint, "--root-dir"])
            .arg(root)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info,gantry_node_agent=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting gantry-node-agent");
        Self { child, log: log.to_path_buf() }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        gantry_tests::cluster::tail_of_file(&self.log, 40)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cni_conflist(containerd_dir: &Path) {
    let conf = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "gantry-e2e",
        "plugins": [
            {
                "type": "bridge", "bridge": "gnae2e0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": containerd_dir.join("cni-ipam").display().to_string(),
                    "ranges": [[{"subnet": "10.217.0.0/16"}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "loopback"}
        ]
    });
    std::fs::write(containerd_dir.join("cni-conf/10-gantry-e2e.conflist"), conf.to_string()).expect("conflist");
}

struct Env {
    k: Kubectl,
    url: String,
}

impl Env {
    fn get(&self, args: &[&str]) -> Option<Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.k.run(&self.url, &all);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("json"))
    }

    fn pod(&self, name: &str) -> Option<Value> {
        self.get(&["pod", name])
    }

    fn create(&self, work: &Path, object: Value) {
        let path = work.join(format!("{}.json", object["metadata"]["name"].as_str().unwrap_or("obj")));
        std::fs::write(&path, object.to_string()).expect("manifest");
        self.k.ok(&self.url, &["create", "-f", path.to_str().expect("path")]);
    }
}

/// Polls `f` until it returns `Some` or `timeout` passes (then fails with `what` and `context()`).
async fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", context());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

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

fn http_get(ip: &str, port: u16) -> Option<String> {
    let addr = format!("{ip}:{port}").parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn container0(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

async fn cri_counts(endpoint: &str, uid: &str) -> (usize, usize) {
    let mut cri = gantry_cri_proto::connect(endpoint, Duration::from_secs(5)).await.expect("cri");
    let labels = HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
    let filter = PodSandboxFilter { label_selector: labels.clone(), ..Default::default() };
    let sandboxes = cri.runtime.list_pod_sandbox(ListPodSandboxRequest { filter: Some(filter) }).await;
    let filter = ContainerFilter { label_selector: labels, ..Default::default() };
    let containers = cri.runtime.list_containers(ListContainersRequest { filter: Some(filter) }).await;
    (
        sandboxes.expect("list sandboxes").into_inner().items.len(),
        containers.expect("list").into_inner().containers.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_agent_runs_pods_on_containerd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cdir = dir.path().join("containerd");
    let containerd = PrivateContainerd::start(&cdir).expect("containerd");
    cni_conflist(&cdir);
    let endpoint = containerd.endpoint();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).expect("images dir");
    gantry_tests::images::import_test_images(&endpoint, &images).expect("images");

    let (cluster, k, work) = gantry_tests::kube::start_api_cluster().await;
    let env = Env { url: cluster.api_url(0).expect("api url"), k };
    let root = dir.path().join("agent");
    let log = dir.path().join("agent.log");
    let port = gantry_tests::free_port().expect("port");
    let mut agent = Agent::start(&cluster.kubeconfig(), &endpoint, &root, &log, port);

    // The node registers Ready with the runtime's version.
    let node = wait_for(
        Duration::from_secs(60),
        "node Ready",
        || {
            let node = env.get(&["node", NODE])?;
            let ready =
                node["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
            ready.then_some(node)
        },
        || agent.log_tail(),
    )
    .await;
    let info = &node["status"]["nodeInfo"];
    assert!(info["containerRuntimeVersion"].as_str().unwrap_or_default().starts_with("containerd://"), "{info}");
    assert_eq!(info["kubeletVersion"], "v1.33.0-gantry");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], NODE);
    assert!(env.get(&["lease", NODE, "-n", "kube-node-lease"]).is_some(), "node lease exists");

    // A busybox httpd answers on its pod IP.
    env.create(work.path(), busybox_pod("web", &["httpd", "-f", "-p", "8080", "-h", "/www"], "Always"));
    let web = wait_for(
        Duration::from_secs(60),
        "web Running and Ready",
        || {
            let pod = env.pod("web")?;
            let ready =
                pod["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
            (pod["status"]["phase"] == "Running" && ready && pod["status"]["podIP"].is_string()).then_some(pod)
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
    let body = wait_for(Duration::from_secs(20), "HTTP answer", || http_get(&ip, 8080), String::new).await;
    assert!(body.contains("hello from gantry"), "{body}");

    // A container exiting 1 restarts with growing back-off and shows CrashLoopBackOff.
    env.create(work.path(), busybox_pod("crash", &["sh", "-c", "exit 1"], "Always"));
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
    let mut agent = Agent::start(&cluster.kubeconfig(), &endpoint, &root, &log, port);
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
    assert_eq!(container0(&web)["restartCount"], 0);
    assert!(http_get(&ip, 8080).is_some_and(|b| b.contains("hello from gantry")));

    // Deleting the pod stops it and leaves nothing behind.
    env.k.ok(&env.url, &["delete", "pod", "web", "--wait=true", "--timeout=60s"]);
    assert!(env.pod("web").is_none(), "pod still exists after delete");
    assert_eq!(cri_counts(&endpoint, &uid).await, (0, 0), "sandbox or container left behind");
    let log_dir = root.join("pods").join(format!("default_web_{uid}"));
    assert!(!log_dir.exists(), "log dir {} left behind", log_dir.display());
    let cgroup = Path::new("/sys/fs/cgroup/memory/gantry").join(format!("pod{uid}"));
    assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
    agent.kill();
    drop(containerd);
}
