//! Probes, lifecycle hooks, graceful termination and OOM kills in the node agent, as a real process
//! against a 3-replica control plane and a private containerd:
//! - a readiness probe flips the pod's Ready condition to False and back without a restart;
//! - a startup probe keeps the container not started (and not ready) until it passes, and holds the
//!   liveness probe back meanwhile; a startup probe failing past its threshold restarts the container;
//! - an httpGet readiness probe on a named port and a tcpSocket liveness probe pass against busybox
//!   httpd; an httpGet liveness probe on a missing path restarts the container;
//! - a failing exec liveness probe restarts the container (new id, growing restart count) with the
//!   kubelet's `Unhealthy` and `Killing` events, shown by `kubectl describe`;
//! - a postStart hook runs before the container counts as ready; a failing one kills the container
//!   with a `FailedPostStartHook` event;
//! - a memory hog over its 20Mi limit is `OOMKilled` with exit code 137;
//! - deleting a pod runs its preStop hook, then SIGTERM, then waits out the grace period before
//!   SIGKILL, and leaves no sandbox, container, log directory or cgroup behind.
//!
//! Needs root, containerd, runc, containernetworking-plugins, umoci and busybox-static. Build first:
//! `cargo build -p control-plane -p gantry-node-agent --bins`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gantry_tests::node_env::{
    cri_counts, pod_ready, wait_for, AgentConfig, AgentProcess, CniNetwork, KubeEnv, NodeRuntime,
};
use serde_json::{json, Value};

const NODE: &str = "probe-node";

/// A pod of one busybox container `main` running `script` under `sh -c`, with `container` merged
/// into the container and `spec` into the pod spec.
fn pod(name: &str, script: &str, container: Value, spec: Value) -> Value {
    let mut c = json!({
        "name": "main", "image": gantry_tests::images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
    });
    merge(&mut c, container);
    let mut s = json!({"nodeName": NODE, "terminationGracePeriodSeconds": 2, "containers": [c]});
    merge(&mut s, spec);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": s})
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn exec_probe(command: &[&str], extra: Value) -> Value {
    let mut p = json!({"exec": {"command": command}, "periodSeconds": 1, "failureThreshold": 1});
    merge(&mut p, extra);
    p
}

fn main_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn running(pod: &Value) -> bool {
    main_status(pod)["state"]["running"].is_object()
}

fn container_id(pod: &Value) -> String {
    main_status(pod)["containerID"].as_str().unwrap_or_default().to_string()
}

fn restarts(pod: &Value) -> i64 {
    main_status(pod)["restartCount"].as_i64().unwrap_or(0)
}

/// The events about pod `name` (all namespaces' events are in `default` here).
fn events_of(env: &KubeEnv, name: &str) -> Vec<Value> {
    let list = env.get(&["events"]).unwrap_or_default();
    list["items"]
        .as_array()
        .map(|items| items.iter().filter(|e| e["involvedObject"]["name"] == name).cloned().collect())
        .unwrap_or_default()
}

/// The first event about pod `name` with `reason` whose message contains `text`.
fn event(env: &KubeEnv, name: &str, reason: &str, text: &str) -> Option<Value> {
    events_of(env, name)
        .into_iter()
        .find(|e| e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(text)))
}

/// Waits (events are sent asynchronously) for the event [`event`] finds.
async fn wait_event(env: &KubeEnv, name: &str, reason: &str, text: &str) -> Value {
    wait_for(
        Duration::from_secs(30),
        &format!("a {reason} event of {name} saying {text:?}"),
        || event(env, name, reason, text),
        || format!("{:#?}", events_of(env, name)),
    )
    .await
}

/// A TCP listener on the loopback that records each line sent to it (with when it arrived).
struct Markers {
    port: u16,
    rx: mpsc::Receiver<(String, Instant)>,
}

impl Markers {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind marker listener");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut line = String::new();
                    if BufReader::new(conn).read_line(&mut line).is_ok() && !line.trim().is_empty() {
                        let _ = tx.send((line.trim().to_string(), Instant::now()));
                    }
                });
            }
        });
        Self { port, rx }
    }

    fn drain(&self, into: &mut Vec<(String, Instant)>) {
        into.extend(self.rx.try_iter());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_hooks_termination_and_oom_on_containerd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime =
        NodeRuntime::start(dir.path(), CniNetwork::new("gnaprobe0", "10.219.0.0/16")).expect("containerd with images");
    let endpoint = runtime.endpoint();
    let (cluster, k, work) = gantry_tests::kube::start_api_cluster().await;
    let env = KubeEnv { url: cluster.api_url(0).expect("api url"), k };
    let agent = AgentProcess::start(AgentConfig::new(&cluster.kubeconfig(), &endpoint, NODE, dir.path()));
    let root = agent.config().root_dir.clone();
    let show = |name: &str| {
        let _ = std::fs::copy(&agent.config().log, "/tmp/agent_probes_agent.log");
        format!("{}\n{}", env.pod(name).unwrap_or_default(), agent.log_tail())
    };

    env.wait_node_ready(NODE, || agent.log_tail()).await;

    // Everything that takes time starts at once; the checks below follow each pod's timeline.
    let pods = [
        // Ready for 25 s, unready for 12 s, then ready for good.
        pod(
            "readiness",
            "touch /tmp/ready; sleep 25; rm /tmp/ready; sleep 12; touch /tmp/ready; sleep 3600",
            json!({"readinessProbe": exec_probe(&["cat", "/tmp/ready"], json!({}))}),
            json!({}),
        ),
        // Starts after 15 s; the liveness probe would kill it at once if it ran before that.
        pod(
            "startup",
            "sleep 15; touch /tmp/started; sleep 3600",
            json!({
                "startupProbe": exec_probe(&["cat", "/tmp/started"], json!({"failureThreshold": 60})),
                "livenessProbe": exec_probe(&["cat", "/tmp/started"], json!({})),
            }),
            json!({}),
        ),
        pod(
            "startfail",
            "sleep 3600",
            json!({"startupProbe": exec_probe(&["cat", "/nonexistent"], json!({"failureThreshold": 2}))}),
            json!({}),
        ),
        // Healthy for 4 s after each start.
        pod(
            "liveness",
            "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600",
            json!({"livenessProbe": exec_probe(&["cat", "/tmp/healthy"], json!({"failureThreshold": 2}))}),
            json!({}),
        ),
        pod(
            "web",
            "httpd -f -p 8080 -h /www",
            json!({
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1},
                "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            }),
            json!({}),
        ),
        pod(
            "web404",
            "httpd -f -p 8080 -h /www",
            json!({"livenessProbe": {"httpGet": {"path": "/missing.html", "port": 8080}, "periodSeconds": 1,
                "failureThreshold": 2}}),
            json!({}),
        ),
        pod(
            "hooked",
            "sleep 3600",
            json!({
                "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo ran > /tmp/poststart"]}}},
                "readinessProbe": exec_probe(&["cat", "/tmp/poststart"], json!({})),
            }),
            json!({}),
        ),
        pod(
            "hookfail",
            "sleep 3600",
            json!({"lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo no >&2; exit 3"]}}}}),
            json!({}),
        ),
        pod(
            "oom",
            "x=a; while true; do x=$x$x; done",
            json!({"resources": {"limits": {"memory": "20Mi"}}}),
            json!({"restartPolicy": "Never"}),
        ),
    ];
    for p in &pods {
        env.create(work.path(), p);
    }

    // Startup: running but not started and not ready while the startup probe fails.
    let early = wait_for(
        Duration::from_secs(30),
        "startup running, not started",
        || env.pod("startup").filter(running),
        || show("startup"),
    )
    .await;
    assert_eq!(main_status(&early)["started"], false, "{early}");
    assert_eq!(main_status(&early)["ready"], false, "{early}");
    assert!(!pod_ready(&early), "{early}");

    // Readiness: Ready, then not Ready without a restart, then Ready again in the same container.
    let ready = wait_for(
        Duration::from_secs(30),
        "readiness Ready",
        || env.pod("readiness").filter(pod_ready),
        || show("readiness"),
    )
    .await;
    let readiness_id = container_id(&ready);
    let unready = wait_for(
        Duration::from_secs(40),
        "readiness not Ready",
        || env.pod("readiness").filter(|p| !pod_ready(p)),
        || show("readiness"),
    )
    .await;
    assert!(running(&unready), "{unready}");
    assert_eq!((restarts(&unready), container_id(&unready)), (0, readiness_id.clone()), "{unready}");
    assert_eq!(main_status(&unready)["ready"], false);
    assert_eq!(main_status(&unready)["started"], true);
    let ready_cond = unready["status"]["conditions"].as_array().expect("conditions").clone();
    let ready_cond = ready_cond.iter().find(|c| c["type"] == "Ready").expect("Ready condition");
    assert_eq!(ready_cond["reason"], "ContainersNotReady", "{ready_cond}");
    let again = wait_for(
        Duration::from_secs(40),
        "readiness Ready again",
        || env.pod("readiness").filter(pod_ready),
        || show("readiness"),
    )
    .await;
    assert_eq!((restarts(&again), container_id(&again)), (0, readiness_id), "{again}");
    wait_event(&env, "readiness", "Unhealthy", "Readiness probe failed: cat: can't open '/tmp/ready'").await;

    // Startup: started and ready once the file exists, never killed by the gated liveness probe.
    let started = wait_for(
        Duration::from_secs(40),
        "startup started and Ready",
        || env.pod("startup").filter(|p| main_status(p)["started"] == true && pod_ready(p)),
        || show("startup"),
    )
    .await;
    assert_eq!((restarts(&started), container_id(&started)), (0, container_id(&early)), "{started}");
    assert!(event(&env, "startup", "Unhealthy", "Liveness probe").is_none(), "liveness ran before startup passed");
    let startfail = wait_for(
        Duration::from_secs(60),
        "startfail restarted",
        || env.pod("startfail").filter(|p| restarts(p) >= 1),
        || show("startfail"),
    )
    .await;
    assert_ne!(main_status(&startfail)["started"], true, "{startfail}");
    wait_event(&env, "startfail", "Killing", "Container main failed startup probe, will be restarted").await;

    // httpGet readiness on a named port and tcpSocket liveness pass; httpGet on a missing path kills.
    let web = env.pod("web").expect("web");
    assert!(pod_ready(&web) && restarts(&web) == 0, "{web}");
    wait_for(
        Duration::from_secs(60),
        "web404 restarted by its liveness probe",
        || env.pod("web404").filter(|p| restarts(p) >= 1),
        || show("web404"),
    )
    .await;
    wait_event(&env, "web404", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 404").await;

    // Exec liveness: killed and restarted with a new container id and the kubelet's events.
    let first_id = wait_for(
        Duration::from_secs(10),
        "liveness has a container",
        || Some(container_id(&env.pod("liveness")?)).filter(|id| !id.is_empty()),
        || show("liveness"),
    )
    .await;
    let restarted = wait_for(
        Duration::from_secs(60),
        "liveness restarted and running",
        || env.pod("liveness").filter(|p| restarts(p) >= 1 && running(p) && container_id(p) != first_id),
        || show("liveness"),
    )
    .await;
    let last = &main_status(&restarted)["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "the sh ignoring SIGTERM was killed after the grace period: {restarted}");
    let unhealthy = wait_for(
        Duration::from_secs(30),
        "a repeated Unhealthy event of liveness",
        || {
            let e = event(&env, "liveness", "Unhealthy", "Liveness probe failed: cat: can't open '/tmp/healthy'")?;
            // Two failures in a row (the threshold): one event, counted twice.
            (e["count"].as_i64().unwrap_or(0) >= 2).then_some(e)
        },
        || format!("{:#?}", events_of(&env, "liveness")),
    )
    .await;
    assert_eq!(unhealthy["type"], "Warning");
    assert_eq!(unhealthy["source"]["component"], "kubelet");
    assert_eq!(unhealthy["source"]["host"], NODE);
    assert_eq!(unhealthy["reportingComponent"], "kubelet");
    assert_eq!(unhealthy["involvedObject"]["fieldPath"], "spec.containers{main}");
    wait_event(&env, "liveness", "Killing", "Container main failed liveness probe, will be restarted").await;
    let described = env.ok(&["describe", "pod", "liveness"]);
    assert!(described.contains("Liveness probe failed"), "{described}");
    assert!(described.contains("failed liveness probe, will be restarted"), "{described}");

    // postStart: the hook ran before the container counted as ready; a failing hook kills.
    let hooked = env.pod("hooked").expect("hooked");
    assert!(pod_ready(&hooked) && restarts(&hooked) == 0, "{hooked}");
    wait_for(
        Duration::from_secs(60),
        "hookfail killed and restarted",
        || env.pod("hookfail").filter(|p| restarts(p) >= 1),
        || show("hookfail"),
    )
    .await;
    let failed_hook = wait_event(&env, "hookfail", "FailedPostStartHook", "exited with 3: no").await;
    assert_eq!(failed_hook["type"], "Warning");

    // OOM: the kernel kills the hog; the status says OOMKilled with 137.
    let oom = wait_for(
        Duration::from_secs(60),
        "oom terminated",
        || env.pod("oom").filter(|p| main_status(p)["state"]["terminated"].is_object()),
        || show("oom"),
    )
    .await;
    let terminated = &main_status(&oom)["state"]["terminated"];
    assert_eq!(terminated["reason"], "OOMKilled", "{oom}");
    assert_eq!(terminated["exitCode"], 137, "{oom}");
    assert_eq!(oom["status"]["phase"], "Failed", "{oom}");

    // Graceful deletion: preStop, then SIGTERM (ignored), then SIGKILL when the grace period is up.
    let markers = Markers::start();
    let to_test = format!("nc 127.0.0.1 {}", markers.port);
    let grace = 6;
    let graceful = pod(
        "graceful",
        &format!("trap 'echo sigterm | {to_test}' TERM; echo up | {to_test}; while true; do sleep 1; done"),
        json!({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", format!("echo prestop | {to_test}")]}}}}),
        json!({"hostNetwork": true, "terminationGracePeriodSeconds": grace}),
    );
    env.create(work.path(), &graceful);
    let mut seen = Vec::new();
    let live = wait_for(
        Duration::from_secs(60),
        "graceful running with its trap set",
        || {
            markers.drain(&mut seen);
            let pod = env.pod("graceful").filter(pod_ready)?;
            seen.iter().any(|(m, _)| m == "up").then_some(pod)
        },
        || show("graceful"),
    )
    .await;
    let uid = live["metadata"]["uid"].as_str().expect("uid").to_string();
    let deleted_at = Instant::now();
    env.ok(&["delete", "pod", "graceful", "--wait=false"]);
    wait_for(
        Duration::from_secs(60),
        "graceful gone",
        || env.pod("graceful").is_none().then_some(()),
        || show("graceful"),
    )
    .await;
    let gone_after = deleted_at.elapsed();
    markers.drain(&mut seen);
    let at = |marker: &str| seen.iter().find(|(m, _)| m == marker).map(|(_, t)| *t);
    let prestop = at("prestop").unwrap_or_else(|| panic!("no preStop marker: {seen:?}\n{}", agent.log_tail()));
    let sigterm = at("sigterm").unwrap_or_else(|| panic!("no SIGTERM marker: {seen:?}\n{}", agent.log_tail()));
    assert!(prestop <= sigterm, "preStop ran after SIGTERM");
    assert!(sigterm - deleted_at < Duration::from_secs(4), "SIGTERM came {:?} after the delete", sigterm - deleted_at);
    let grace = Duration::from_secs(grace);
    assert!(gone_after >= grace, "pod gone after {gone_after:?}, before its {grace:?} grace period");
    assert!(gone_after < grace + Duration::from_secs(8), "pod gone only after {gone_after:?}");
    wait_event(&env, "graceful", "Killing", "Stopping container main").await;
    assert_eq!(cri_counts(&endpoint, &uid).await, (0, 0), "sandbox or container left behind");
    let log_dir = root.join("pods").join(format!("default_graceful_{uid}"));
    assert!(!log_dir.exists(), "log dir {} left behind", log_dir.display());
    let cgroup = Path::new("/sys/fs/cgroup/memory/gantry").join(format!("pod{uid}"));
    assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
    let _ = std::fs::copy(&agent.config().log, "/tmp/agent_probes_agent.log");
    let _ = std::fs::write("/tmp/agent_probes_events.json", env.get(&["events"]).unwrap_or_default().to_string());
    drop(agent);
    drop(runtime);
}
