//! Clean shutdown and restart of replicas.
//!
//! SIGTERM must stop a replica promptly with exit code 0; restarted with the
//! same data directory it must rejoin and serve what was written while it was
//! down. A data directory must refuse to be started under another node id.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use etcd_client::GetOptions;
use std::os::unix::process::ExitStatusExt;

use gantry_tests::{bounded, error_chain, Backend, Launcher, ProcessCluster};
use nix::sys::signal::Signal;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// What "promptly" means for a SIGTERMed replica.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `keys` through any of the replicas in `via` (retrying elsewhere on error).
async fn write_keys(cluster: &ProcessCluster, via: &[usize], keys: &[String]) -> anyhow::Result<()> {
    for key in keys {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            let i = via[attempt % via.len()];
            attempt += 1;
            let result = async {
                let mut c = cluster.client(i).await?;
                bounded("put", REQUEST_TIMEOUT, c.put(key.as_str(), format!("v-{key}"), None)).await?;
                anyhow::Ok(())
            }
            .await;
            match result {
                Ok(()) => break,
                Err(e) if start.elapsed() > CATCH_UP_TIMEOUT => {
                    bail!("cannot write {key} through replicas {via:?}: {e:#}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

/// Waits until replica `i` serves every key of `keys` from its own state
/// (serializable read), then checks a linearizable read there too.
async fn wait_serves(cluster: &ProcessCluster, i: usize, prefix: &str, keys: &[String]) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < CATCH_UP_TIMEOUT {
        let attempt = async {
            let mut c = cluster.client(i).await?;
            let opts = GetOptions::new().with_prefix().with_serializable();
            let resp = bounded("serializable get", REQUEST_TIMEOUT, c.get(prefix, Some(opts))).await?;
            let have: Vec<String> =
                resp.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).into_owned()).collect();
            anyhow::Ok(have)
        }
        .await;
        match attempt {
            Ok(have) if keys.iter().all(|k| have.contains(k)) => {
                let mut c = cluster.client(i).await?;
                for key in keys {
                    let resp = bounded("get", REQUEST_TIMEOUT, c.get(key.as_str(), None)).await?;
                    let value = resp.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
                    ensure!(
                        value.as_deref() == Some(format!("v-{key}").as_str()),
                        "replica {i} returns {value:?} for {key}"
                    );
                }
                return Ok(());
            }
            Ok(have) => {
                last = format!("{} of {} keys present", keys.iter().filter(|k| have.contains(k)).count(), keys.len())
            }
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "replica {i} did not serve the keys written while it was down within {CATCH_UP_TIMEOUT:?} ({last}); log tail:\n{}",
        cluster.log_tail(i)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_cleanly_and_restart_catches_up() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start_default().await.context("cannot start the cluster")?;
    let leader = cluster.wait_for_leader(CATCH_UP_TIMEOUT).await?;
    let follower = (leader + 1) % cluster.size();

    // A follower, then the leader: each stops promptly with exit code 0, the
    // others keep accepting writes, and the restarted replica catches up.
    for (round, victim) in [follower, leader].into_iter().enumerate() {
        let prefix = format!("restart/{round}/");
        let before: Vec<String> = (0..5).map(|n| format!("{prefix}before-{n}")).collect();
        let all: Vec<usize> = (0..cluster.size()).collect();
        write_keys(&cluster, &all, &before).await?;

        let start = Instant::now();
        let status = cluster
            .terminate(victim, SHUTDOWN_TIMEOUT)
            .await
            .with_context(|| format!("SIGTERM of replica {victim}"))?;
        // Gantry's contract: exit code 0. etcd re-raises SIGTERM after its
        // clean shutdown, so for the reference run that counts as clean too.
        let clean =
            status.success() || (cluster.backend() == Backend::Etcd && status.signal() == Some(Signal::SIGTERM as i32));
        ensure!(
            clean,
            "replica {victim} exited with {status} after SIGTERM (wanted exit code 0); log tail:\n{}",
            cluster.log_tail(victim)
        );
        eprintln!("replica {victim} stopped {:?} after SIGTERM", start.elapsed());

        let others: Vec<usize> = all.iter().copied().filter(|i| *i != victim).collect();
        let during: Vec<String> = (0..50).map(|n| format!("{prefix}during-{n:02}")).collect();
        write_keys(&cluster, &others, &during).await?;

        cluster.restart(victim).await.with_context(|| format!("restart of replica {victim}"))?;
        let expected: Vec<String> = before.iter().chain(&during).cloned().collect();
        wait_serves(&cluster, victim, &prefix, &expected).await?;
    }
    let leader = cluster.wait_for_leader(CATCH_UP_TIMEOUT).await?;
    ensure!(cluster.running().len() == cluster.size(), "not all replicas run at the end");
    eprintln!("final leader: replica {leader}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn data_dir_refuses_another_node_id() -> anyhow::Result<()> {
    let launcher = Launcher::gantry()?;
    let mut cluster =
        ProcessCluster::start(launcher.clone(), Default::default()).await.context("cannot start the cluster")?;
    let keys = vec!["ids/a".to_string()];
    write_keys(&cluster, &[0, 1, 2], &keys).await?;
    // Make sure node 2 (index 1) has the key on disk before stopping it.
    wait_serves(&cluster, 1, "ids/", &keys).await?;
    let status = cluster.terminate(1, SHUTDOWN_TIMEOUT).await?;
    ensure!(status.success(), "node 2 exited with {status} after SIGTERM");

    // Node 2's data directory and ports, but --node-id 3.
    let mut args = cluster.member_args(1)?;
    let pos = args.iter().position(|a| a == "--node-id").context("no --node-id flag")?;
    ensure!(args[pos + 1] == "2", "unexpected flags {args:?}");
    args[pos + 1] = "3".to_string();
    let out = launcher.run_to_exit(&args, Duration::from_secs(20)).await?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.code().is_some_and(|c| c != 0),
        "node 2's data dir started as node 3 (exit {}); stderr: {stderr}",
        out.status
    );
    let lower = stderr.to_lowercase();
    ensure!(
        (lower.contains("node id") || lower.contains("node-id") || lower.contains("node_id"))
            && lower.contains('2')
            && lower.contains('3'),
        "error does not explain the node id mismatch (2 on disk, 3 given): {stderr}"
    );

    // The refused start left the data directory intact.
    cluster.restart(1).await.map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    wait_serves(&cluster, 1, "ids/", &keys).await?;
    Ok(())
}
