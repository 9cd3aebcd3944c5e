//! Compatibility with the real `etcdctl` (API v3) against a 3-replica cluster.
//!
//! Every test drives the `etcdctl` binary with all three client URLs and asserts
//! on what it prints, exactly as an operator or a tool built on etcdctl would
//! see it: key-value commands, transactions, watches, leases, and cluster
//! status.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use gantry_tests::launcher::find_on_path;
use gantry_tests::ProcessCluster;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

struct Etcdctl {
    bin: PathBuf,
    endpoints: String,
}

impl Etcdctl {
    fn new(cluster: &ProcessCluster) -> anyhow::Result<Self> {
        let bin = std::env::var_os("ETCDCTL_BIN").map(PathBuf::from).or_else(|| find_on_path("etcdctl")).ok_or_else(
            || anyhow!("etcdctl not found on PATH (set ETCDCTL_BIN or install it: apt-get install -y etcd-client)"),
        )?;
        Ok(Self { bin, endpoints: cluster.client_endpoints().join(",") })
    }

    /// The same, with `HOST:PORT` endpoints instead of `http://HOST:PORT` URLs.
    fn without_scheme(&self) -> Self {
        Self { bin: self.bin.clone(), endpoints: self.endpoints.replace("http://", "") }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .arg("--dial-timeout=5s")
            .arg("--command-timeout=10s")
            .args(args);
        cmd
    }

    /// Runs etcdctl to completion (bounded), feeding `stdin`.
    fn output(&self, args: &[&str], stdin: &str) -> anyhow::Result<Output> {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {} {args:?}", self.bin.display()))?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(COMMAND_DEADLINE) {
            Ok(out) => Ok(out?),
            Err(_) => {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                bail!("etcdctl {args:?} did not finish within {COMMAND_DEADLINE:?}")
            }
        }
    }

    /// Runs etcdctl, requires success, returns stdout.
    fn run_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<String> {
        let out = self.output(args, stdin)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "etcdctl {args:?} failed with {}: stdout {stdout:?}, stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(stdout)
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run_stdin(args, "")
    }

    fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-w", "json"]);
        let out = self.run(&all)?;
        serde_json::from_str(&out).with_context(|| format!("etcdctl {args:?} printed invalid json: {out:?}"))
    }
}

fn b64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn num(v: &Value, path: &[&str]) -> anyhow::Result<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).ok_or_else(|| anyhow!("json has no {path:?}: {v}"))?;
    }
    cur.as_u64().ok_or_else(|| anyhow!("json {path:?} is not a number: {v}"))
}

async fn cluster() -> anyhow::Result<(ProcessCluster, Etcdctl)> {
    let cluster = ProcessCluster::start_default().await.context("cannot start the cluster")?;
    let ctl = Etcdctl::new(&cluster)?;
    Ok((cluster, ctl))
}

#[tokio::test(flavor = "multi_thread")]
async fn etcdctl_key_value_and_txn() -> anyhow::Result<()> {
    let (_cluster, ctl) = cluster().await?;

    // Like etcd, a fresh store is at revision 1 (0 is never a valid revision:
    // Kubernetes gives resourceVersion "0" a special meaning).
    let fresh = ctl.json(&["get", "k1"])?;
    assert_eq!(fresh["header"]["revision"].as_u64(), Some(1), "revision of a fresh store: {fresh}");

    assert_eq!(ctl.run(&["put", "k1", "v1"])?, "OK\n");
    let first = ctl.json(&["get", "k1"])?;
    let rev1 = first["kvs"][0]["mod_revision"].as_u64().ok_or_else(|| anyhow!("no mod_revision in {first}"))?;
    assert_eq!(ctl.run(&["put", "k1", "v2"])?, "OK\n");
    assert_eq!(ctl.run(&["get", "k1"])?, "k1\nv2\n");

    // -w json: header revision and base64 key/value.
    let doc = ctl.json(&["get", "k1"])?;
    let rev2 = num(&doc, &["header", "revision"])?;
    ensure!(rev2 > rev1, "header revision {rev2} not after first put at {rev1}: {doc}");
    assert_eq!(doc["kvs"][0]["key"], Value::from(b64(b"k1")), "{doc}");
    assert_eq!(doc["kvs"][0]["value"], Value::from(b64(b"v2")), "{doc}");
    assert_eq!(doc["kvs"][0]["mod_revision"].as_u64(), Some(rev2), "{doc}");
    assert_eq!(doc["count"].as_u64(), Some(1), "{doc}");

    // --rev reads the old value.
    assert_eq!(ctl.run(&["get", "k1", &format!("--rev={rev1}")])?, "k1\nv1\n");

    // --prefix returns keys in order, nothing outside the prefix.
    for (k, v) in [("p/b", "2"), ("p/a", "1"), ("q", "3")] {
        assert_eq!(ctl.run(&["put", k, v])?, "OK\n");
    }
    assert_eq!(ctl.run(&["get", "p/", "--prefix"])?, "p/a\n1\np/b\n2\n");

    // del prints the number of deleted keys.
    assert_eq!(ctl.run(&["del", "p/a"])?, "1\n");
    assert_eq!(ctl.run(&["del", "p/a"])?, "0\n");
    assert_eq!(ctl.run(&["put", "p/c", "4"])?, "OK\n");
    assert_eq!(ctl.run(&["del", "p/", "--prefix"])?, "2\n");
    assert_eq!(ctl.run(&["get", "p/", "--prefix"])?, "");
    assert_eq!(ctl.run(&["get", "q"])?, "q\n3\n");

    // txn: success branch.
    let out =
        ctl.run_stdin(&["txn", "--interactive=false"], "value(\"k1\") = \"v2\"\n\nput k1 v3\n\nput k1 wrong\n\n")?;
    assert_eq!(out, "SUCCESS\n\nOK\n");
    assert_eq!(ctl.run(&["get", "k1"])?, "k1\nv3\n");
    // txn: failure branch, with a read.
    let out =
        ctl.run_stdin(&["txn", "--interactive=false"], "value(\"k1\") = \"nope\"\n\nput k1 wrong\n\nget k1\n\n")?;
    assert_eq!(out, "FAILURE\n\nk1\nv3\n");
    // txn comparing a revision.
    let out = ctl.run_stdin(&["txn", "--interactive=false"], &format!("mod(\"k1\") > \"{rev2}\"\n\nput q 4\n\n\n"))?;
    assert_eq!(out, "SUCCESS\n\nOK\n");
    assert_eq!(ctl.run(&["get", "q"])?, "q\n4\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn etcdctl_watch_and_leases() -> anyhow::Result<()> {
    let (_cluster, ctl) = cluster().await?;

    // Watch from the next revision so no event can slip in before the watch
    // is established.
    // proto3 JSON omits zero values, so a missing revision reads as 0.
    let rev = ctl.json(&["get", "wkey"])?["header"]["revision"].as_u64().unwrap_or(0);
    let mut watch = ctl
        .command(&["watch", "wkey", &format!("--rev={}", rev + 1)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot spawn etcdctl watch")?;
    let stdout = watch.stdout.take().context("watch stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(ctl.run(&["put", "wkey", "w1"])?, "OK\n");
    assert_eq!(ctl.run(&["put", "other", "x"])?, "OK\n");
    assert_eq!(ctl.run(&["put", "wkey", "w2"])?, "OK\n");
    assert_eq!(ctl.run(&["del", "wkey"])?, "1\n");
    let expected = ["PUT", "wkey", "w1", "PUT", "wkey", "w2", "DELETE", "wkey"];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while lines.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = watch.kill();
    let status = watch.wait()?;
    let mut stderr = String::new();
    if let Some(mut e) = watch.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert_eq!(lines, expected, "etcdctl watch printed {lines:?} (exit {status}, stderr {stderr:?})");

    // Leases: grant, attach a key, keep alive once, inspect, revoke.
    let out = ctl.run(&["lease", "grant", "60"])?;
    let id = out
        .split_whitespace()
        .nth(1)
        .filter(|_| out.starts_with("lease ") && out.contains("granted with TTL(60s)"))
        .ok_or_else(|| anyhow!("unexpected lease grant output {out:?}"))?
        .to_string();
    assert_eq!(ctl.run(&["put", &format!("--lease={id}"), "lk", "lv"])?, "OK\n");
    let out = ctl.run(&["lease", "keep-alive", "--once", &id])?;
    ensure!(out.trim() == format!("lease {id} keepalived with TTL(60)"), "keep-alive printed {out:?}");
    let out = ctl.run(&["lease", "timetolive", &id, "--keys"])?;
    ensure!(
        out.starts_with(&format!("lease {id} granted with TTL(60s), remaining("))
            && out.trim_end().ends_with("attached keys([lk])"),
        "timetolive printed {out:?}"
    );
    let remaining: u64 = out
        .split("remaining(")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no remaining TTL in {out:?}"))?;
    ensure!((50..=60).contains(&remaining), "remaining TTL {remaining} after a fresh keep-alive: {out:?}");
    assert_eq!(ctl.run(&["get", "lk"])?, "lk\nlv\n");
    assert_eq!(ctl.run(&["lease", "revoke", &id])?, format!("lease {id} revoked\n"));
    assert_eq!(ctl.run(&["get", "lk"])?, "", "key attached to a revoked lease survived");
    let out = ctl.run(&["lease", "timetolive", &id])?;
    ensure!(out.contains("already expired"), "timetolive of a revoked lease printed {out:?}");
    Ok(())
}

/// Checks `endpoint status -w json` output: three entries agreeing on a
/// leader that is exactly one of them.
fn check_endpoint_status(status: &Value) -> anyhow::Result<u64> {
    let entries = status.as_array().ok_or_else(|| anyhow!("endpoint status is not a list: {status}"))?;
    assert_eq!(entries.len(), 3, "{status}");
    let mut leaders = Vec::new();
    let mut selves = Vec::new();
    for e in entries {
        let leader = num(e, &["Status", "leader"])?;
        let me = num(e, &["Status", "header", "member_id"])?;
        ensure!(leader != 0, "endpoint reports no leader: {e}");
        leaders.push(leader);
        selves.push(me);
    }
    ensure!(leaders.iter().all(|l| *l == leaders[0]), "endpoints disagree on the leader: {status}");
    assert_eq!(
        selves.iter().filter(|m| **m == leaders[0]).count(),
        1,
        "exactly one endpoint must be the leader: {status}"
    );
    Ok(leaders[0])
}

#[tokio::test(flavor = "multi_thread")]
async fn etcdctl_cluster_status() -> anyhow::Result<()> {
    let (cluster, ctl) = cluster().await?;

    // `endpoint status` with HOST:PORT endpoints: etcdctl 3.4 sends the endpoint string verbatim as
    // the HTTP/2 :authority for this subcommand, and "http://host:port" is not a valid authority for
    // the h2 server (a documented incompatibility, see the README).
    let bare = ctl.without_scheme();
    let leader = check_endpoint_status(&bare.json(&["endpoint", "status"])?)?;
    let table = bare.run(&["endpoint", "status"])?;
    assert_eq!(table.lines().count(), 3, "{table}");
    assert_eq!(
        table.lines().filter(|l| l.contains(", true, false,")).count(),
        1,
        "exactly one row with IS LEADER=true: {table}"
    );
    for endpoint in cluster.client_endpoints() {
        let bare_endpoint = endpoint.trim_start_matches("http://");
        ensure!(table.contains(bare_endpoint), "endpoint {bare_endpoint} missing from {table}");
    }

    let health = ctl.output(&["endpoint", "health"], "")?;
    let text = String::from_utf8_lossy(&health.stderr).into_owned() + &String::from_utf8_lossy(&health.stdout);
    ensure!(health.status.success(), "endpoint health failed: {text}");
    assert_eq!(text.matches("is healthy").count(), 3, "{text}");

    let members = ctl.json(&["member", "list"])?;
    let list = members["members"].as_array().ok_or_else(|| anyhow!("member list has no members: {members}"))?;
    assert_eq!(list.len(), 3, "{members}");
    let mut ids: Vec<u64> = list
        .iter()
        .map(|m| m["ID"].as_u64().ok_or_else(|| anyhow!("member without ID: {m}")))
        .collect::<anyhow::Result<_>>()?;
    ensure!(ids.contains(&leader), "leader {leader} is not a listed member: {members}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "member ids not distinct: {members}");
    for endpoint in cluster.client_endpoints() {
        ensure!(
            list.iter()
                .any(|m| m["clientURLs"].as_array().is_some_and(|u| u.contains(&Value::from(endpoint.as_str())))),
            "no member advertises client URL {endpoint}: {members}"
        );
    }
    let plain = ctl.run(&["member", "list"])?;
    assert_eq!(plain.lines().count(), 3, "{plain}");
    Ok(())
}
