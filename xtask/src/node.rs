//! The node of the local cluster: a private containerd under `.gantry/containerd` (its own socket,
//! state, runc root and the CNI bridge `gantry0` on 10.244.0.0/16), the local images
//! (`localhost/pause:latest`, `localhost/busybox:1`) built with umoci and imported, and one
//! `gantry-node-agent` registered as node `local-node`, with its root dir in `.gantry/agent`.
//!
//! `down` takes it apart in the opposite order: the agent stops, `gantry-node-agent --cleanup` removes
//! every sandbox and container it created (so CNI releases addresses and deletes veths) with their
//! cgroups, volumes and logs, and its service proxy's nftables table, containerd stops, the bridge is deleted and anything still mounted under
//! `.gantry/` is unmounted.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gantry_local_runtime::{CniNetwork, PrivateContainerd};
use serde::{Deserialize, Serialize};

use crate::cluster::Paths;
use crate::util::{self, step, warn};

/// The Node's name.
pub const NODE_NAME: &str = "local-node";
/// The agent binary.
pub const AGENT_BIN: &str = "gantry-node-agent";
const BRIDGE: &str = "gantry0";
const SUBNET: &str = "10.244.0.0/16";

/// The node's processes, as recorded in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeProcs {
    pub name: String,
    pub containerd_pid: u32,
    pub agent_pid: u32,
    pub agent_binary: PathBuf,
    /// The agent's HTTPS address (`--listen`).
    pub agent_listen: String,
}

impl NodeProcs {
    pub fn containerd_running(&self, paths: &Paths) -> bool {
        running_with_arg(self.containerd_pid, &containerd_dir(paths))
    }

    pub fn agent_running(&self, paths: &Paths) -> bool {
        running_with_arg(self.agent_pid, &agent_dir(paths))
    }
}

/// A live pid whose command line mentions `path` (so a recycled pid is never taken for ours).
fn running_with_arg(pid: u32, path: &Path) -> bool {
    let path = path.to_string_lossy();
    util::pid_alive(pid) && util::pid_cmdline(pid).is_some_and(|args| args.iter().any(|a| a.contains(path.as_ref())))
}

pub fn containerd_dir(paths: &Paths) -> PathBuf {
    paths.dir.join("containerd")
}

pub fn agent_dir(paths: &Paths) -> PathBuf {
    paths.dir.join("agent")
}

fn endpoint(paths: &Paths) -> String {
    format!("unix://{}", containerd_dir(paths).join("containerd.sock").display())
}

/// What is missing to run a node here (root, containerd, runc, CNI plugins, umoci, busybox-static), if anything.
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if !util::is_root() {
        missing.push("root (containerd and the agent manage cgroups, mounts and network namespaces)".to_string());
    }
    for (cmd, package) in [("containerd", "containerd"), ("ctr", "containerd"), ("runc", "runc"), ("umoci", "umoci")] {
        if !util::have_command(cmd) {
            missing.push(format!("{cmd} (Debian package {package})"));
        }
    }
    if !Path::new("/usr/lib/cni/bridge").is_file() {
        missing.push("/usr/lib/cni/bridge (Debian package containernetworking-plugins)".to_string());
    }
    if !Path::new(gantry_local_runtime::images::BUSYBOX).is_file() {
        missing.push(format!("{} (Debian package busybox-static)", gantry_local_runtime::images::BUSYBOX));
    }
    missing
}

/// Starts whatever part of the node is not running (`old` is what was recorded before).
pub fn start(paths: &Paths, agent_binary: &Path, old: Option<&NodeProcs>) -> Result<NodeProcs> {
    let cdir = containerd_dir(paths);
    let containerd_pid = match old.filter(|o| o.containerd_running(paths)) {
        Some(o) => o.containerd_pid,
        None => {
            step("starting containerd (.gantry/containerd)");
            let containerd = PrivateContainerd::start(&cdir).context("cannot start containerd")?;
            CniNetwork::new(BRIDGE, SUBNET)
                .write_conflist(&cdir)
                .with_context(|| format!("cannot write the CNI conflist in {}", cdir.display()))?;
            step("building and importing localhost/pause:latest and localhost/busybox:1");
            let work = paths.dir.join("images");
            fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
            gantry_local_runtime::images::import_test_images(&containerd.endpoint(), &work)
                .context("cannot build or import the local images")?;
            containerd.detach()
        }
    };
    let (agent_pid, agent_listen) = match old.filter(|o| o.agent_running(paths)) {
        Some(o) => (o.agent_pid, o.agent_listen.clone()),
        None => start_agent(paths, agent_binary)?,
    };
    Ok(NodeProcs {
        name: NODE_NAME.to_string(),
        containerd_pid,
        agent_pid,
        agent_binary: agent_binary.to_path_buf(),
        agent_listen,
    })
}

fn start_agent(paths: &Paths, binary: &Path) -> Result<(u32, String)> {
    let dir = agent_dir(paths);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let port = util::free_loopback_ports(1)?[0];
    let listen = format!("127.0.0.1:{port}");
    let log_path = dir.join("agent.log");
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut cmd = Command::new(binary);
    cmd.arg("--kubeconfig")
        .arg(paths.kubeconfig())
        .args(["--node-name", NODE_NAME, "--runtime-endpoint", &endpoint(paths), "--root-dir"])
        .arg(&dir)
        .args(["--listen", &listen]);
    writeln!(log, "==== cargo xtask up: starting the node agent: {cmd:?}")?;
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    let child = cmd.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
    step(format!("started the node agent (pid {}) as node {NODE_NAME}, serving {listen}", child.id()));
    Ok((child.id(), listen))
}

/// Waits until the Node reports Ready (through kubectl, when it is installed).
pub fn wait_ready(paths: &Paths, timeout: Duration) -> Result<()> {
    if !util::have_command("kubectl") {
        warn("kubectl not found, so the node's readiness was not checked");
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    loop {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(paths.kubeconfig())
            .args(["get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run kubectl")?;
        let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if status == "True" {
            step(format!("node {NODE_NAME} is Ready"));
            return Ok(());
        }
        let last = if status.is_empty() { String::from_utf8_lossy(&out.stderr).trim().to_string() } else { status };
        if Instant::now() >= deadline {
            let log = agent_dir(paths).join("agent.log");
            util::say_err(format!("---- last lines of {} ----\n{}\n----", paths.show(&log), util::tail(&log, 30)));
            bail!("node {NODE_NAME} was not Ready after {} s (last: {last})", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Stops the agent, removes every pod it created, stops containerd and removes the network and
/// any mount left under `.gantry/`.
pub fn stop(paths: &Paths, node: &NodeProcs) {
    if node.agent_running(paths) {
        step(format!("stopping the node agent (pid {})", node.agent_pid));
        let _ = util::signal(node.agent_pid, "TERM");
        for pid in util::wait_for_exit(&[node.agent_pid], Duration::from_secs(10)) {
            let _ = util::signal(pid, "KILL");
        }
    }
    if node.containerd_running(paths) {
        step("removing the node's pods from containerd (gantry-node-agent --cleanup)");
        let status = Command::new(&node.agent_binary)
            .arg("--kubeconfig")
            .arg(paths.kubeconfig())
            .args(["--node-name", &node.name, "--runtime-endpoint", &endpoint(paths), "--root-dir"])
            .arg(agent_dir(paths))
            .arg("--cleanup")
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => warn(format!("the agent's cleanup failed ({s}); containerd is stopped anyway")),
            Err(e) => warn(format!("cannot run {}: {e}", node.agent_binary.display())),
        }
        step(format!("stopping containerd (pid {})", node.containerd_pid));
        // containerd leads its own process group (setsid): its shims go with it.
        let group = format!("-{}", node.containerd_pid);
        let _ = Command::new("kill").args(["-s", "TERM", "--", &group]).stderr(Stdio::null()).status();
        for pid in util::wait_for_exit(&[node.containerd_pid], Duration::from_secs(10)) {
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
        }
    }
    match CniNetwork::new(BRIDGE, SUBNET).remove_bridge() {
        Ok(true) => step(format!("deleted the bridge {BRIDGE}")),
        Ok(false) => {}
        Err(e) => warn(format!("cannot run `ip link delete {BRIDGE}`: {e}")),
    }
    unmount_leftovers(&paths.dir);
}

/// Unmounts anything still mounted under `dir` (deepest first).
fn unmount_leftovers(dir: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut mounts: Vec<&str> =
        mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| Path::new(m).starts_with(dir)).collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let ok = Command::new("umount").args(["-l", m]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        if ok {
            step(format!("unmounted {m}"));
        } else {
            warn(format!("cannot unmount {m}"));
        }
    }
}

/// Lines for the usage text.
pub fn usage(paths: &Paths, node: &NodeProcs) -> Vec<String> {
    vec![
        format!(
            "Node {} runs pods on containerd (socket {}; agent log {}).",
            node.name,
            paths.show(&containerd_dir(paths).join("containerd.sock")),
            paths.show(&agent_dir(paths).join("agent.log"))
        ),
        "Images without a registry: localhost/busybox:1 (busybox, with httpd) and localhost/pause:latest.".to_string(),
        "  kubectl get nodes -o wide".to_string(),
        "  kubectl apply -f examples/    # a web Deployment and its Service, a Job, a pod reading a ConfigMap"
            .to_string(),
        "  kubectl run hello --image=localhost/busybox:1 --restart=Never -- sh -c 'echo hello; sleep 3600'".to_string(),
        "  kubectl get pods -o wide".to_string(),
    ]
}
