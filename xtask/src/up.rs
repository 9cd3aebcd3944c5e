//! `cargo xtask up`: start a local 3-replica cluster in the background and print how to use it.
//!
//! Builds `gantry-control-plane` (or uses the binary named by `GANTRY_BIN`), then starts three replicas
//! on free loopback ports as detached processes (own process group, stdin from /dev/null, stdout and
//! stderr appended to `.gantry/node-N/replica.log`, data in `.gantry/node-N/data`), records them in
//! `.gantry/cluster.json` and waits until every client port accepts connections and — when `etcdctl` is
//! installed — every replica reports the same leader through `Maintenance.Status`. A replica that exits
//! during start-up fails the command with the tail of its log.
//!
//! Then, unless `--no-node` is given or this machine cannot run containers, it starts the node
//! ([`crate::node`]): a private containerd with the local images and one `gantry-node-agent`, and waits
//! until the Node is Ready.
//!
//! Running it again while the cluster is up only prints the usage; replicas, containerd or the agent
//! that died are restarted with the same addresses and data.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};

use crate::cluster::{self, Cluster, Layout, Node, NodeAddrs, Paths, REPLICAS};
use crate::node;
use crate::util::{self, step, warn, Workspace};

/// Name of the replica binary.
const BIN_NAME: &str = "gantry-control-plane";
/// Environment variable naming a replica binary to use instead of building one (any program that takes
/// the flags of `CONTRACT-store.md`).
const BIN_ENV: &str = "GANTRY_BIN";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Build and run the release binary instead of the debug one.
    #[arg(long)]
    release: bool,
    /// Seconds to wait for the replicas to accept connections and agree on a leader, and for the node
    /// to be Ready.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    timeout: u64,
    /// Start the control plane only: no containerd and no node agent.
    #[arg(long)]
    no_node: bool,
}

pub fn run(args: Args) -> Result<()> {
    let ws = Workspace::locate()?;
    let paths = Paths::new(&ws.root);

    let with_node = !args.no_node && {
        let missing = node::missing_prerequisites();
        if !missing.is_empty() {
            warn(format!("not starting a node (containerd and the agent); missing: {}", missing.join(", ")));
        }
        missing.is_empty()
    };
    let existing: Option<Cluster> = cluster::read_json(&paths.cluster_file())?;
    if let Some(c) = &existing {
        let running = c.nodes.iter().filter(|n| n.is_running()).count();
        if running == c.nodes.len() && c.nodes.len() as u64 == REPLICAS {
            step("the control plane is already up");
            let mut c = c.clone();
            if with_node {
                start_node(&ws, &paths, &mut c, &args)?;
            }
            let leader = leader_status(&c).ok().and_then(|s| s.leader_node);
            cluster::print_usage(&c, &paths, leader);
            return Ok(());
        }
        if running > 0 {
            step(format!("{running} of {} replicas are running; restarting the others", c.nodes.len()));
        }
    }

    let binary = replica_binary(&ws, args.release)?;
    let layout = layout(&paths, existing.as_ref())?;

    // Check every address we are about to listen on before starting anything.
    let keep: Vec<Node> = existing.iter().flat_map(|c| c.nodes.iter()).filter(|n| n.is_running()).cloned().collect();
    for addrs in &layout.nodes {
        if keep.iter().any(|n| n.id == addrs.id) {
            continue;
        }
        for addr in [&addrs.peer_addr, &addrs.client_addr, &addrs.api_addr] {
            ensure!(
                util::port_is_free(addr),
                "address {addr} (node {}) is in use by another process; stop it, or run \
                 `cargo xtask down --purge` to start afresh on new ports (this deletes the data)",
                addrs.id
            );
        }
    }

    fs::create_dir_all(&paths.dir).with_context(|| format!("cannot create {}", paths.dir.display()))?;
    cluster::write_json(&paths.layout_file(), &layout)?;

    let mut cluster =
        Cluster { binary: binary.clone(), nodes: Vec::new(), node: existing.as_ref().and_then(|c| c.node.clone()) };
    let initial_cluster =
        layout.nodes.iter().map(|n| format!("{}={}", n.id, n.peer_addr)).collect::<Vec<_>>().join(",");
    let mut children: Vec<(u64, Child)> = Vec::new();
    for addrs in &layout.nodes {
        if let Some(node) = keep.iter().find(|n| n.id == addrs.id) {
            cluster.nodes.push(node.clone());
            continue;
        }
        let (node, child) = start_replica(&binary, &paths, addrs, &initial_cluster)?;
        let started = format!(
            "started node {} (pid {}), kubernetes api {}, client {}, peer {}",
            node.id, node.pid, node.api_addr, node.client_addr, node.peer_addr
        );
        cluster.nodes.push(node);
        children.push((addrs.id, child));
        // Record progress at once, so `cargo xtask down` can clean up even if we are interrupted.
        cluster::write_json(&paths.cluster_file(), &cluster)?;
        step(started);
    }
    cluster::write_json(&paths.cluster_file(), &cluster)?;

    step(format!("waiting (up to {} s) for the replicas to elect a leader", args.timeout));
    match wait_ready(&cluster, &paths, &mut children, Duration::from_secs(args.timeout)) {
        Ok(leader) => {
            if with_node {
                start_node(&ws, &paths, &mut cluster, &args)?;
            }
            cluster::print_usage(&cluster, &paths, leader);
            Ok(())
        }
        Err(err) => {
            stop_children(&mut children);
            if !cluster.nodes.iter().any(Node::is_running) {
                let _ = fs::remove_file(paths.cluster_file());
            }
            Err(err)
        }
    }
}

/// Builds the agent, starts what is not running of the node, records it and waits until it is Ready.
fn start_node(ws: &Workspace, paths: &Paths, cluster: &mut Cluster, args: &Args) -> Result<()> {
    step(format!("building {}", node::AGENT_BIN));
    let mut cmd = util::cargo();
    cmd.current_dir(&ws.root).args(["build", "--bin", node::AGENT_BIN]);
    if args.release {
        cmd.arg("--release");
    }
    util::run_ok(&mut cmd)?;
    let agent = ws.binary(if args.release { "release" } else { "debug" }, node::AGENT_BIN);
    ensure!(agent.is_file(), "cargo built {} but {} does not exist", node::AGENT_BIN, agent.display());
    let procs = node::start(paths, &agent, cluster.node.as_ref())?;
    cluster.node = Some(procs);
    cluster::write_json(&paths.cluster_file(), cluster)?;
    node::wait_ready(paths, Duration::from_secs(args.timeout))
}

/// The replica binary: `$GANTRY_BIN`, or `gantry-control-plane` freshly built by cargo.
fn replica_binary(ws: &Workspace, release: bool) -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os(BIN_ENV) {
        let bin = PathBuf::from(bin);
        let bin = bin.canonicalize().with_context(|| format!("{BIN_ENV}={} does not exist", bin.display()))?;
        step(format!("using {BIN_ENV}={}", bin.display()));
        return Ok(bin);
    }
    step(format!("building {BIN_NAME}"));
    let mut cmd = util::cargo();
    cmd.current_dir(&ws.root).args(["build", "--bin", BIN_NAME]);
    if release {
        cmd.arg("--release");
    }
    util::run_ok(&mut cmd)?;
    let bin = ws.binary(if release { "release" } else { "debug" }, BIN_NAME);
    ensure!(bin.is_file(), "cargo built {BIN_NAME} but {} does not exist", bin.display());
    Ok(bin)
}

/// Node ids and addresses: those of the recorded cluster or layout, else fresh free loopback ports.
fn layout(paths: &Paths, existing: Option<&Cluster>) -> Result<Layout> {
    let layout = if let Some(c) = existing {
        Layout {
            nodes: c
                .nodes
                .iter()
                .map(|n| NodeAddrs {
                    id: n.id,
                    peer_addr: n.peer_addr.clone(),
                    client_addr: n.client_addr.clone(),
                    api_addr: n.api_addr.clone(),
                })
                .collect(),
        }
    } else if let Some(layout) = cluster::read_json::<Layout>(&paths.layout_file())? {
        layout
    } else {
        for id in 1..=REPLICAS {
            let data = paths.data_dir(id);
            let has_data = fs::read_dir(&data).map(|mut d| d.next().is_some()).unwrap_or(false);
            ensure!(
                !has_data,
                "{} holds data but {} is missing, so its peer addresses are unknown; run \
                 `cargo xtask down --purge` to start afresh",
                paths.show(&data),
                paths.show(&paths.layout_file())
            );
        }
        let ports = util::free_loopback_ports(3 * REPLICAS as usize)?;
        Layout {
            nodes: (1..=REPLICAS)
                .zip(ports.chunks(3))
                .map(|(id, p)| NodeAddrs {
                    id,
                    peer_addr: format!("127.0.0.1:{}", p[0]),
                    client_addr: format!("127.0.0.1:{}", p[1]),
                    api_addr: format!("127.0.0.1:{}", p[2]),
                })
                .collect(),
        }
    };
    // Layouts from before the Kubernetes API have no API address: give them one.
    let mut layout = layout;
    if layout.nodes.iter().any(|n| n.api_addr.is_empty()) {
        let ports = util::free_loopback_ports(layout.nodes.len())?;
        for (n, p) in layout.nodes.iter_mut().zip(ports) {
            if n.api_addr.is_empty() {
                n.api_addr = format!("127.0.0.1:{p}");
            }
        }
    }
    let ids: Vec<u64> = layout.nodes.iter().map(|n| n.id).collect();
    ensure!(
        ids == (1..=REPLICAS).collect::<Vec<_>>(),
        "unexpected node ids {ids:?} in {}; run `cargo xtask down --purge` to start afresh",
        paths.show(&paths.dir)
    );
    Ok(layout)
}

/// Starts one replica as a detached process with its output appended to its log.
fn start_replica(binary: &PathBuf, paths: &Paths, addrs: &NodeAddrs, initial_cluster: &str) -> Result<(Node, Child)> {
    let id = addrs.id;
    let node_dir = paths.node_dir(id);
    let data_dir = paths.data_dir(id);
    let log_path = paths.log(id);
    fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;

    let mut cmd = Command::new(binary);
    cmd.arg("--node-id")
        .arg(id.to_string())
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen-peer")
        .arg(&addrs.peer_addr)
        .arg("--listen-client")
        .arg(&addrs.client_addr)
        .arg("--initial-cluster")
        .arg(initial_cluster)
        .arg("--listen-api")
        .arg(&addrs.api_addr)
        .arg("--pki-dir")
        .arg(paths.pki_dir());

    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    writeln!(log, "==== cargo xtask up: starting node {id} (unix time {now}): {cmd:?}")?;

    cmd.current_dir(&node_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Own process group: Ctrl-C in the terminal that ran `cargo xtask up` does not reach it.
        .process_group(0);
    let child = cmd.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
    let node = Node {
        id,
        pid: child.id(),
        peer_addr: addrs.peer_addr.clone(),
        client_addr: addrs.client_addr.clone(),
        api_addr: addrs.api_addr.clone(),
        data_dir,
        log: log_path,
    };
    Ok((node, child))
}

/// Waits until all client ports accept TCP and (with etcdctl) all replicas agree on a leader.
/// Returns the leader's node id when known.
fn wait_ready(
    cluster: &Cluster,
    paths: &Paths,
    children: &mut [(u64, Child)],
    timeout: Duration,
) -> Result<Option<u64>> {
    let deadline = Instant::now() + timeout;
    let etcdctl = util::have_command("etcdctl");
    let mut listening = false;
    let mut last_problem = String::from("client ports do not accept connections yet");
    loop {
        for (id, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                let log = paths.log(*id);
                util::say_err(format!("---- last lines of {} ----\n{}\n----", paths.show(&log), util::tail(&log, 40)));
                bail!("node {id} exited during start-up ({status}); see its log above");
            }
        }
        if !listening {
            listening = cluster.nodes.iter().all(|n| util::accepts_tcp(&n.client_addr));
            if listening {
                step("all client ports accept connections");
                if !etcdctl {
                    warn(
                        "etcdctl not found (Debian package etcd-client), so leader election was \
                         not checked",
                    );
                    return Ok(None);
                }
            }
        }
        if listening {
            match leader_status(cluster) {
                Ok(status) => {
                    step(format!(
                        "all replicas report leader {:x}{}",
                        status.leader_member,
                        status.leader_node.map(|n| format!(" (node {n})")).unwrap_or_default()
                    ));
                    return Ok(status.leader_node);
                }
                Err(problem) => last_problem = problem,
            }
        }
        if Instant::now() >= deadline {
            for n in &cluster.nodes {
                util::say_err(format!(
                    "---- last lines of {} ----\n{}\n----",
                    paths.show(&n.log),
                    util::tail(&n.log, 20)
                ));
            }
            bail!("the cluster was not ready after {} s: {last_problem}", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// What `etcdctl endpoint status` says about leadership.
#[derive(Debug)]
pub struct LeaderStatus {
    /// Raft member id of the leader, as every replica reports it.
    pub leader_member: u64,
    /// Our node id of the leader, when an endpoint's own member id matches it.
    pub leader_node: Option<u64>,
}

/// Asks every replica for `Maintenance.Status` through etcdctl. Ready means: all answer, and all report
/// the same non-zero leader. The error says what is not ready yet.
fn leader_status(cluster: &Cluster) -> Result<LeaderStatus, String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", cluster.endpoints()))
        .args(["--dial-timeout=1s", "--command-timeout=2s", "endpoint", "status", "-w", "json"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run etcdctl: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("etcdctl endpoint status failed: {}", stderr.lines().last().unwrap_or("").trim()));
    }
    parse_leader(&out.stdout, cluster)
}

/// Interprets `etcdctl endpoint status -w json` output: every replica must have answered and all must
/// report the same non-zero leader.
fn parse_leader(json: &[u8], cluster: &Cluster) -> Result<LeaderStatus, String> {
    let statuses: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("cannot parse etcdctl output: {e}"))?;
    let statuses = statuses.as_array().ok_or("etcdctl output is not a JSON array")?;
    if statuses.len() != cluster.nodes.len() {
        return Err(format!("{} of {} replicas answered", statuses.len(), cluster.nodes.len()));
    }
    let leaders: Vec<u64> = statuses.iter().map(|s| s["Status"]["leader"].as_u64().unwrap_or(0)).collect();
    let leader = leaders.first().copied().unwrap_or(0);
    if leader == 0 || leaders.iter().any(|l| *l != leader) {
        return Err(format!("no agreed leader yet (reported: {leaders:?})"));
    }
    // The endpoint whose own member id is the leader tells which node leads.
    let leader_node = statuses
        .iter()
        .find(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader))
        .and_then(|s| s["Endpoint"].as_str())
        .and_then(|endpoint| cluster.nodes.iter().find(|n| endpoint.ends_with(&n.client_addr)))
        .map(|n| n.id);
    Ok(LeaderStatus { leader_member: leader, leader_node })
}

/// Stops replicas started by this run: SIGTERM, up to 10 s, then SIGKILL.
fn stop_children(children: &mut [(u64, Child)]) {
    for (_, child) in children.iter_mut() {
        if matches!(child.try_wait(), Ok(None)) {
            let _ = util::signal(child.id(), "TERM");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (id, child) in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    warn(format!("node {id} did not stop after SIGTERM; killing it"));
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    if !children.is_empty() {
        step("stopped the replicas started by this run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        Cluster {
            node: None,
            binary: PathBuf::from("/bin/true"),
            nodes: (1..=3)
                .map(|id| Node {
                    id,
                    pid: 0,
                    peer_addr: format!("127.0.0.1:{}", 2000 + id),
                    client_addr: format!("127.0.0.1:{}", 3000 + id),
                    api_addr: format!("127.0.0.1:{}", 4000 + id),
                    data_dir: PathBuf::from(format!("/tmp/node-{id}/data")),
                    log: PathBuf::from(format!("/tmp/node-{id}/replica.log")),
                })
                .collect(),
        }
    }

    fn status(endpoint: &str, member: u64, leader: u64) -> String {
        format!(
            r#"{{"Endpoint":"{endpoint}","Status":{{"header":{{"cluster_id":7,"member_id":{member},"revision":1,"raft_term":2}},"version":"3.4.23","dbSize":20480,"leader":{leader},"raftIndex":8,"raftTerm":2}}}}"#
        )
    }

    #[test]
    fn agreed_leader_is_mapped_to_its_node() {
        let big = 10_276_657_743_932_975_437_u64; // etcd member ids use the whole u64 range
        let json = format!(
            "[{},{},{}]",
            status("127.0.0.1:3001", 11, big),
            status("http://127.0.0.1:3002", big, big),
            status("127.0.0.1:3003", 33, big)
        );
        let s = parse_leader(json.as_bytes(), &cluster()).expect("ready");
        assert_eq!(s.leader_member, big);
        assert_eq!(s.leader_node, Some(2));
    }

    #[test]
    fn no_leader_or_disagreement_or_missing_replica_is_not_ready() {
        let c = cluster();
        let none = format!(
            "[{},{},{}]",
            status("127.0.0.1:3001", 1, 0),
            status("127.0.0.1:3002", 2, 0),
            status("127.0.0.1:3003", 3, 0)
        );
        assert!(parse_leader(none.as_bytes(), &c).is_err());
        let split = format!(
            "[{},{},{}]",
            status("127.0.0.1:3001", 1, 1),
            status("127.0.0.1:3002", 2, 2),
            status("127.0.0.1:3003", 3, 1)
        );
        assert!(parse_leader(split.as_bytes(), &c).is_err());
        let two = format!("[{},{}]", status("127.0.0.1:3001", 1, 1), status("127.0.0.1:3002", 2, 1));
        assert!(parse_leader(two.as_bytes(), &c).is_err());
        assert!(parse_leader(b"not json", &c).is_err());
    }

    #[test]
    fn leader_without_matching_member_id_is_still_ready() {
        let json = format!(
            "[{},{},{}]",
            status("127.0.0.1:3001", 1, 9),
            status("127.0.0.1:3002", 2, 9),
            status("127.0.0.1:3003", 3, 9)
        );
        let s = parse_leader(json.as_bytes(), &cluster()).expect("ready");
        assert_eq!((s.leader_member, s.leader_node), (9, None));
    }
}
