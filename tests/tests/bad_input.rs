//! Bad requests and bad command lines are rejected cleanly.
//!
//! Oversized values, duplicate keys in a transaction, empty range keys and
//! compactions into the future must fail with the right gRPC errors and leave
//! the stored data untouched; a replica with a missing flag, a malformed
//! `--initial-cluster`, an id outside the cluster or a data directory that is a
//! regular file must exit non-zero, saying what is wrong.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use etcd_client::{Client, Txn, TxnOp};
use gantry_tests::{bounded, free_ports, ClientError, ClusterConfig, Code, Launcher, ProcessCluster};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Asserts that `result` is an error whose message mentions a size limit.
fn assert_too_large<T>(result: Result<T, ClientError>, what: &str) -> anyhow::Result<()> {
    let Err(err) = result else {
        bail!("{what} was accepted");
    };
    let msg = gantry_tests::error_chain(&err).to_lowercase();
    ensure!(
        ["too large", "limit", "exceed", "max"].iter().any(|w| msg.contains(w)),
        "{what} was rejected, but the error does not mention the size limit: {msg}"
    );
    Ok(())
}

fn assert_code<T>(result: Result<T, ClientError>, code: Code, what: &str) -> anyhow::Result<String> {
    match result {
        Ok(_) => bail!("{what} was accepted"),
        Err(e) => match e.status() {
            Some(s) if s.code() == code => Ok(s.message().to_string()),
            _ => bail!("{what}: expected {code:?}, got {}", gantry_tests::error_chain(&e)),
        },
    }
}

async fn value_of(client: &mut Client, key: &str) -> anyhow::Result<(Option<String>, i64)> {
    let resp = bounded("get", REQUEST_TIMEOUT, client.get(key, None)).await?;
    let value = resp.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
    let mod_rev = resp.kvs().first().map_or(0, |kv| kv.mod_revision());
    Ok((value, mod_rev))
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_rejected_and_change_nothing() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start_default().await.context("cannot start the cluster")?;
    let mut client = cluster.client(0).await?;
    bounded("put", REQUEST_TIMEOUT, client.put("keep/a", "1", None)).await?;
    let put = bounded("put", REQUEST_TIMEOUT, client.put("keep/b", "2", None)).await?;
    let revision = put.header().map_or(0, |h| h.revision());
    ensure!(revision > 0, "put answered without a header revision");
    let before_a = value_of(&mut client, "keep/a").await?;
    let before_b = value_of(&mut client, "keep/b").await?;

    // Over the default 1.5 MiB request limit.
    let big = "x".repeat(1536 * 1024 + 64 * 1024);
    assert_too_large(
        bounded("oversized put", REQUEST_TIMEOUT, client.put("keep/a", big.as_str(), None)).await,
        "a 1.56 MiB value",
    )?;

    // The same key twice among a transaction's success operations.
    let txn = Txn::new().and_then([TxnOp::put("keep/a", "x", None), TxnOp::put("keep/a", "y", None)]);
    assert_code(
        bounded("txn", REQUEST_TIMEOUT, client.txn(txn)).await,
        Code::InvalidArgument,
        "a txn putting one key twice",
    )?;

    // A range with an empty key.
    assert_code(
        bounded("get", REQUEST_TIMEOUT, client.get("", None)).await,
        Code::InvalidArgument,
        "a range with an empty key",
    )?;

    // Compacting past the current revision.
    let future = revision + 1_000;
    if let Ok(resp) = bounded("compact", REQUEST_TIMEOUT, client.compact(future, None)).await {
        bail!("compaction at future revision {future} (store at {revision}) was accepted: {resp:?}");
    }

    // Nothing changed, on any replica.
    for i in 0..cluster.size() {
        let mut c = cluster.client(i).await?;
        assert_eq!(value_of(&mut c, "keep/a").await?, before_a, "keep/a on replica {i}");
        assert_eq!(value_of(&mut c, "keep/b").await?, before_b, "keep/b on replica {i}");
        let resp = bounded("get", REQUEST_TIMEOUT, c.get("keep/", None)).await?;
        assert_eq!(
            resp.header().map(|h| h.revision()),
            Some(revision),
            "the rejected requests moved the revision (replica {i})"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn max_request_bytes_flag_is_enforced() -> anyhow::Result<()> {
    let config =
        ClusterConfig { extra_args: vec!["--max-request-bytes".into(), "1024".into()], ..ClusterConfig::default() };
    let cluster = ProcessCluster::start(Launcher::from_env()?, config)
        .await
        .context("cannot start the cluster with --max-request-bytes 1024")?;
    let mut client = cluster.client(1).await?;
    bounded("small put", REQUEST_TIMEOUT, client.put("small", "ok", None)).await?;
    let value = "y".repeat(2048);
    assert_too_large(
        bounded("2 KiB put", REQUEST_TIMEOUT, client.put("big", value.as_str(), None)).await,
        "a 2 KiB value with --max-request-bytes 1024",
    )?;
    let resp = bounded("get", REQUEST_TIMEOUT, client.get("big", None)).await?;
    ensure!(resp.kvs().is_empty(), "the rejected 2 KiB value was stored");
    let resp = bounded("get", REQUEST_TIMEOUT, client.get("small", None)).await?;
    ensure!(resp.kvs().len() == 1, "the accepted small value is missing");
    Ok(())
}

/// Flags of a lone Gantry replica, in a 3-node `--initial-cluster`.
fn gantry_flags(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let p = free_ports(4)?;
    Ok(vec![
        "--node-id".into(),
        "1".into(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--listen-peer".into(),
        format!("127.0.0.1:{}", p[0]),
        "--listen-client".into(),
        format!("127.0.0.1:{}", p[1]),
        "--initial-cluster".into(),
        format!("1=127.0.0.1:{},2=127.0.0.1:{},3=127.0.0.1:{}", p[0], p[2], p[3]),
    ])
}

fn set_flag(args: &mut [String], flag: &str, value: &str) -> anyhow::Result<()> {
    let pos = args.iter().position(|a| a == flag).with_context(|| format!("no {flag} in {args:?}"))?;
    args[pos + 1] = value.to_string();
    Ok(())
}

/// Runs Gantry with `args`; requires a prompt non-zero exit; returns stderr.
async fn expect_refusal(args: &[String]) -> anyhow::Result<String> {
    let launcher = Launcher::gantry()?;
    let out = launcher.run_to_exit(args, EXIT_TIMEOUT).await?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.code().is_some_and(|c| c != 0),
        "gantry-control-plane {} exited with {} (wanted a non-zero exit code); stderr: {stderr}",
        args.join(" "),
        out.status
    );
    Ok(stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_flag_is_named() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut args = gantry_flags(dir.path())?;
    let pos = args.iter().position(|a| a == "--data-dir").context("flag")?;
    args.drain(pos..pos + 2);
    let stderr = expect_refusal(&args).await?;
    ensure!(stderr.contains("data-dir"), "stderr does not name --data-dir: {stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_initial_cluster_is_named() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for bad in ["1=127.0.0.1", "garbage", "1=127.0.0.1:1,x=127.0.0.1:2"] {
        let mut args = gantry_flags(dir.path())?;
        set_flag(&mut args, "--initial-cluster", bad)?;
        let stderr = expect_refusal(&args).await?;
        ensure!(
            stderr.contains("initial-cluster") || stderr.contains("initial cluster"),
            "stderr for --initial-cluster {bad:?} does not name the flag: {stderr}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn node_id_outside_initial_cluster_is_named() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut args = gantry_flags(dir.path())?;
    set_flag(&mut args, "--node-id", "7")?;
    let stderr = expect_refusal(&args).await?;
    let lower = stderr.to_lowercase();
    ensure!(
        lower.contains('7') && (lower.contains("initial") || lower.contains("node")),
        "stderr does not explain that node 7 is not in --initial-cluster: {stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn data_dir_that_is_a_file_is_named() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"plain file")?;
    let mut args = gantry_flags(dir.path())?;
    set_flag(&mut args, "--data-dir", &file.display().to_string())?;
    let stderr = expect_refusal(&args).await?;
    ensure!(
        stderr.contains(&file.display().to_string()),
        "stderr does not name the data dir {}: {stderr}",
        file.display()
    );
    ensure!(std::fs::read(&file)? == b"plain file", "the file given as data dir was modified");
    Ok(())
}
