//! Harness for node-agent tests against a real runtime: a private containerd with its own CNI
//! bridge and the test images imported ([`NodeRuntime`]), the `gantry-node-agent` process
//! ([`AgentProcess`]), `kubectl` bound to one replica with JSON helpers ([`KubeEnv`]), and small
//! probes of what the runtime holds ([`cri_counts`]) and of pod HTTP servers ([`http_get`]).
//!
//! Every test file that starts a runtime picks its own [`CniNetwork`] (bridge name and subnet), so two
//! test files never share a bridge even when run back to back.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry_cri_proto::runtime::{
    ContainerFilter, ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter, RemovePodSandboxRequest,
};
use serde_json::Value;

pub use gantry_local_runtime::CniNetwork;
use gantry_local_runtime::{ContainerdError, ImageError, PrivateContainerd};

use crate::kube::Kubectl;

/// Name of the agent binary, found beside the test executable or in `$GANTRY_BIN_DIR`.
pub const AGENT_BINARY: &str = "gantry-node-agent";

/// Why a node runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NodeEnvError {
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Lock(#[from] crate::LockError),
}

/// How long a test waits for another test's node runtime to finish.
const RUNTIME_LOCK_WAIT: Duration = Duration::from_secs(30 * 60);

/// A private containerd with a CNI network and the test images (`localhost/pause:latest`,
/// `localhost/busybox:1`) imported. When dropped, containerd, its shims and containers are killed and
/// the network (bridge and veths) is deleted, so no address outlives the test.
///
/// It holds the node-runtime lock for its lifetime: tests that run containers never overlap, even
/// across worktrees. Start it before the cluster (whose lock comes second).
pub struct NodeRuntime {
    dir: PathBuf,
    network: CniNetwork,
    containerd: Option<PrivateContainerd>,
    /// Daemons stopped by [`Self::stop_daemon`]: their process groups are killed only on drop.
    stopped: Vec<PrivateContainerd>,
    _lock: crate::ProcessLock,
}

impl NodeRuntime {
    /// Starts containerd under `dir/containerd`, writes the network's conflist and imports the images.
    pub fn start(dir: &Path, network: CniNetwork) -> Result<Self, NodeEnvError> {
        let lock = crate::ProcessLock::acquire_blocking(&crate::ProcessLock::runtime_lock_path(), RUNTIME_LOCK_WAIT)?;
        // A bridge left by a crashed run would carry stale addresses of the same subnet.
        network
            .remove()
            .map_err(|source| NodeEnvError::Io { context: format!("removing {}", network.bridge), source })?;
        let cdir = dir.join("containerd");
        let containerd = PrivateContainerd::start(&cdir)?;
        network.write_conflist(&cdir).map_err(|source| NodeEnvError::Io {
            context: format!("writing the conflist of {}", network.bridge),
            source,
        })?;
        let images = dir.join("images");
        std::fs::create_dir_all(&images)
            .map_err(|source| NodeEnvError::Io { context: format!("creating {}", images.display()), source })?;
        gantry_local_runtime::images::import_test_images(&containerd.endpoint(), &images)?;
        Ok(Self { dir: cdir, network, containerd: Some(containerd), stopped: Vec::new(), _lock: lock })
    }

    /// The CRI endpoint (`unix:///...`).
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.dir.join("containerd.sock").display())
    }

    pub fn network(&self) -> &CniNetwork {
        &self.network
    }

    /// Stops the containerd daemon alone (SIGKILL to its pid, not its process group), so running
    /// containers and their shims stay, as when a node's containerd crashes.
    pub fn stop_daemon(&mut self) {
        if let Some(mut c) = self.containerd.take() {
            c.kill_daemon_only();
            self.stopped.push(c);
        }
    }

    /// Starts containerd again on the same state (after [`Self::stop_daemon`]).
    pub fn start_daemon(&mut self) -> Result<(), NodeEnvError> {
        if self.containerd.is_none() {
            self.containerd = Some(PrivateContainerd::start(&self.dir)?);
        }
        Ok(())
    }

    /// The last lines of containerd's log.
    pub fn log_tail(&self) -> String {
        gantry_local_runtime::tail_of_file(&self.dir.join("containerd.log"), 30)
    }
}

impl Drop for NodeRuntime {
    /// Removes every sandbox over CRI before containerd is killed (so CNI releases addresses and
    /// deletes veths, and rootfs mounts go), then kills containerd with whatever shims are left, then
    /// deletes the bridge with any veth still on it. The shims run in sessions of their own and
    /// outlive containerd, and so would the pods' processes, network namespaces and veths (with their
    /// IPs on the test file's bridge: the next run hands out the same IPs again, and the stale
    /// namespaces answer for them) whenever a test ends with pods still running.
    fn drop(&mut self) {
        if self.containerd.is_some() {
            let endpoint = self.endpoint();
            // A thread of its own: drop may run inside the test's runtime, which cannot block on itself.
            let _ = std::thread::spawn(move || remove_all_sandboxes(&endpoint)).join();
        }
        self.containerd = None;
        self.stopped.clear();
        if let Err(e) = self.network.remove() {
            eprintln!("removing the test network {}: {e}", self.network.bridge);
        }
    }
}

/// Stops and removes every sandbox (and with them their containers) of the runtime at `endpoint`.
fn remove_all_sandboxes(endpoint: &str) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    rt.block_on(async {
        let Ok(mut cri) = gantry_cri_proto::connect(endpoint, Duration::from_secs(5)).await else { return };
        let Ok(list) = cri.runtime.list_pod_sandbox(ListPodSandboxRequest { filter: None }).await else { return };
        for sandbox in list.into_inner().items {
            let remove = RemovePodSandboxRequest { pod_sandbox_id: sandbox.id };
            let _ = tokio::time::timeout(Duration::from_secs(20), cri.runtime.remove_pod_sandbox(remove)).await;
        }
    });
}

/// Path of the agent binary: `$GANTRY_BIN_DIR/gantry-node-agent`, else beside the test executable.
pub fn agent_binary() -> PathBuf {
    if let Some(dir) = std::env::var_os(crate::launcher::GANTRY_BIN_DIR_ENV) {
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

/// Pressure thresholds of test agents (see [`AgentConfig::eviction_hard`]).
pub const TEST_EVICTION_HARD: &str = "memory.available<1Mi,nodefs.available<100Mi,pid.available<1%";

/// How to start one agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub kubeconfig: PathBuf,
    pub endpoint: String,
    pub node_name: String,
    pub root_dir: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    /// The agent's cluster DNS port (`--dns-listen 0.0.0.0:PORT`): a free one per agent, so two agents
    /// on this machine do not compete for the default.
    pub dns_port: u16,
    /// `--eviction-hard`: by default only a machine that is nearly out of memory, disk or pids puts
    /// the test node under pressure (the agent's own default, 10 % of the disk, trips on a full build
    /// machine and would taint the node).
    pub eviction_hard: String,
    /// More flags after the contract ones.
    pub extra_args: Vec<String>,
}

impl AgentConfig {
    /// An agent named `node_name` with its root dir and log under `dir`, on free ports.
    pub fn new(kubeconfig: &Path, endpoint: &str, node_name: &str, dir: &Path) -> Self {
        let ports = crate::free_ports(2).expect("free ports");
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            endpoint: endpoint.to_string(),
            node_name: node_name.to_string(),
            root_dir: dir.join(format!("agent-{node_name}")),
            log: dir.join(format!("agent-{node_name}.log")),
            port: ports[0],
            dns_port: ports[1],
            eviction_hard: TEST_EVICTION_HARD.to_string(),
            extra_args: Vec::new(),
        }
    }
}

/// The nftables table in which an agent redirects the cluster DNS address to its DNS port
/// (`gantry-node-agent` names it so).
pub fn dns_redirect_table(node_name: &str) -> String {
    format!("gantry-dns-{node_name}")
}

/// The nftables table of an agent's service proxy (`gantry_node_agent::proxy::table_name`).
pub fn proxy_table(node_name: &str) -> String {
    format!("gantry-proxy-{node_name}")
}

/// A `gantry-node-agent` process; SIGKILLed when dropped, and its cluster DNS redirect and service
/// proxy tables deleted (a killed agent leaves them, and they would catch later tests' traffic).
pub struct AgentProcess {
    config: AgentConfig,
    child: Option<Child>,
}

impl AgentProcess {
    pub fn start(config: AgentConfig) -> Self {
        let mut me = Self { config, child: None };
        me.spawn();
        me
    }

    fn spawn(&mut self) {
        let c = &self.config;
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&c.log).expect("agent log");
        let err = out.try_clone().expect("agent log");
        let child = Command::new(agent_binary())
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["--node-name", &c.node_name, "--runtime-endpoint", &c.endpoint, "--root-dir"])
            .arg(&c.root_dir)
            .args(["--listen", &format!("127.0.0.1:{}", c.port)])
            .args(["--eviction-hard", &c.eviction_hard])
            .args(["--dns-listen", &format!("0.0.0.0:{}", c.dns_port)])
            .args(&c.extra_args)
            .env("RUST_LOG", "info,gantry_node_agent=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting gantry-node-agent");
        self.child = Some(child);
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the agent again with the same flags (after [`Self::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log_tail(&self) -> String {
        crate::cluster::tail_of_file(&self.config.log, 40)
    }
}

impl Drop for AgentProcess {
    /// Kills the agent and deletes its cluster DNS redirect and service proxy tables, which outlive
    /// the process by design (a missing table is fine).
    fn drop(&mut self) {
        self.kill();
        let node = &self.config.node_name;
        for table in [dns_redirect_table(node), proxy_table(node)] {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &table])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// kubectl bound to one API server, with JSON helpers.
pub struct KubeEnv {
    pub k: Kubectl,
    pub url: String,
}

impl KubeEnv {
    /// Waits up to 60 s for Node `name` to be Ready; returns the Node.
    pub async fn wait_node_ready(&self, name: &str, context: impl Fn() -> String) -> Value {
        wait_for(Duration::from_secs(60), "node Ready", || self.get(&["node", name]).filter(condition_ready), context)
            .await
    }

    /// `kubectl get ARGS -o json`, `None` when it fails (not found).
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.k.run(&self.url, &all);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("kubectl printed json"))
    }

    /// A pod of `default`.
    pub fn pod(&self, name: &str) -> Option<Value> {
        self.get(&["pod", name])
    }

    /// `kubectl create -f` of `object`, written under `work`.
    pub fn create(&self, work: &Path, object: &Value) {
        let path = self.write(work, object);
        self.k.ok(&self.url, &["create", "-f", path.to_str().expect("path")]);
    }

    /// `kubectl apply -f` of `object`, written under `work`.
    pub fn apply(&self, work: &Path, object: &Value) {
        let path = self.write(work, object);
        self.k.ok(&self.url, &["apply", "-f", path.to_str().expect("path")]);
    }

    fn write(&self, work: &Path, object: &Value) -> PathBuf {
        let kind = object["kind"].as_str().unwrap_or("object").to_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap_or("obj");
        let path = work.join(format!("{kind}-{name}.json"));
        std::fs::write(&path, object.to_string()).expect("write manifest");
        path
    }

    /// `kubectl ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.k.ok(&self.url, args)
    }
}

/// Whether a pod's `Ready` condition is `True`.
pub fn pod_ready(pod: &Value) -> bool {
    condition_ready(pod)
}

/// Whether an object's `Ready` condition is `True` (pods and nodes report it alike).
pub fn condition_ready(object: &Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Polls `f` until it returns `Some` or `timeout` passes; then fails with `what` and `context()`.
pub async fn wait_for<T>(
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

/// Like [`wait_for`] with an async check.
pub async fn wait_for_async<T, Fut: Future<Output = Option<T>>>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Fut,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", context());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `GET path` over HTTP/1.0 from `ip:port`; the whole response, or `None` if it cannot connect.
pub fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    let addr = format!("{ip}:{port}").parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// How many sandboxes and containers the runtime holds for pod `uid` (whoever created them).
pub async fn cri_counts(endpoint: &str, uid: &str) -> (usize, usize) {
    let mut cri = gantry_cri_proto::connect(endpoint, Duration::from_secs(5)).await.expect("cri");
    let labels = HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
    let filter = PodSandboxFilter { label_selector: labels.clone(), ..Default::default() };
    let sandboxes = cri.runtime.list_pod_sandbox(ListPodSandboxRequest { filter: Some(filter) }).await;
    let filter = ContainerFilter { label_selector: labels, ..Default::default() };
    let containers = cri.runtime.list_containers(ListContainersRequest { filter: Some(filter) }).await;
    (
        sandboxes.expect("list sandboxes").into_inner().items.len(),
        containers.expect("list containers").into_inner().containers.len(),
    )
}

/// The text a container wrote, read from the CRI log file the agent keeps under its root dir
/// (`<root>/pods/<ns>_<pod>_<uid>/<container>/<attempt>.log`), record prefixes stripped and partial
/// records joined. Empty when the file does not exist (yet).
pub fn container_output(root: &Path, namespace: &str, pod: &str, uid: &str, container: &str, attempt: u32) -> String {
    let path =
        root.join("pods").join(format!("{namespace}_{pod}_{uid}")).join(container).join(format!("{attempt}.log"));
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::new();
    for record in raw.lines() {
        // <timestamp> <stream> <P|F> <text>
        let mut parts = record.splitn(4, ' ');
        let (_, _, tag, text) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or(""));
        out.push_str(text);
        if tag != Some("P") {
            out.push('\n');
        }
    }
    out
}
