//! The store leader is SIGKILLed while the official Python client streams creates and holds a watch
//! open through it (`tests/python/leader_kill.py`): every acknowledged create survives, and the
//! watch, resumed from its last resourceVersion through another replica, sees every object exactly
//! once, in order.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gantry_tests::kube::start_api_cluster;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_and_the_watch_survive_a_leader_kill() {
    let t0 = std::time::Instant::now();
    let (mut cluster, _k, _work) = start_api_cluster().await;
    println!("# {:?} cluster ready", t0.elapsed());
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await.expect("leader");
    println!("# {:?} leader is replica {leader}", t0.elapsed());
    let servers: Vec<String> = (0..cluster.size()).map(|i| cluster.api_url(i).expect("url")).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/leader_kill.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(&script)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("GANTRY_API_SERVERS", servers.join(","))
        .env("GANTRY_LEADER_INDEX", leader.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running python3");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut transcript = String::new();
    let started = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = stdout.next_line().await.expect("read stdout") {
            transcript.push_str(&line);
            transcript.push('\n');
            if line == "started" {
                return true;
            }
        }
        false
    })
    .await
    .expect("the script starts its stream in time");
    if !started {
        let mut err = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut err).await.expect("stderr");
        panic!("the script ended before starting:\n{transcript}\n{err}");
    }
    println!("# {:?} script started its stream", t0.elapsed());
    cluster.kill(leader).expect("SIGKILL the leader");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"killed\n").await.expect("tell the script");
    drop(stdin);
    let rest = tokio::time::timeout(Duration::from_secs(240), async {
        let mut out = String::new();
        while let Some(line) = stdout.next_line().await.expect("read stdout") {
            out.push_str(&line);
            out.push('\n');
        }
        let mut err = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut err).await.expect("stderr");
        (out, err, child.wait().await.expect("wait"))
    })
    .await
    .expect("the script finishes in time");
    let (out, err, status) = rest;
    println!("# {:?} script done", t0.elapsed());
    transcript.push_str(&out);
    assert!(status.success(), "leader-kill script failed:\n{transcript}\n{err}");
    assert!(transcript.contains("all checks passed"), "{transcript}");
    println!("{transcript}");
    for check in [
        "every acknowledged create exists",
        "the watch saw every object exactly once",
        "the watch saw exactly the objects that exist",
        "the kill broke the watch, which resumed elsewhere",
    ] {
        assert!(transcript.contains(&format!("ok - {check}")), "missing {check:?}:\n{transcript}");
    }
}
