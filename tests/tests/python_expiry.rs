//! After the store is compacted (through its etcd API), the official Python client gets 410 Expired
//! for a list continue token and for a watch from a resourceVersion older than the compaction
//! (`tests/python/expiry.py`).

use std::path::Path;
use std::time::Duration;

use gantry_tests::client::bounded;
use gantry_tests::cluster::ProcessCluster;
use gantry_tests::kube::start_api_cluster;

async fn stage(cluster: &ProcessCluster, stage: &str, env: &[(&str, String)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/expiry.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("GANTRY_API_SERVER", cluster.api_url(2).expect("url"))
        .env("GANTRY_STAGE", stage)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stage {stage} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("all checks passed"), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_expires_old_continue_tokens_and_watches() {
    let (cluster, _k, _work) = start_api_cluster().await;
    let out = stage(&cluster, "before", &[]).await;
    let first_page: serde_json::Value =
        serde_json::from_str(out.lines().find(|l| l.starts_with('{')).expect("JSON line")).expect("json");
    let mut etcd = cluster.client(0).await.expect("etcd client");
    // Two more writes: the compaction then removes the revision right after the page's, which a
    // watch from the page's resourceVersion would need.
    for value in ["1", "2"] {
        bounded("put", Duration::from_secs(10), etcd.put("/expiry-test/bump", value, None)).await.expect("put");
    }
    let status = bounded("status", Duration::from_secs(10), etcd.status()).await.expect("status");
    let revision = status.header().expect("header").revision();
    bounded("compact", Duration::from_secs(10), etcd.compact(revision, None)).await.expect("compact");
    let after = stage(
        &cluster,
        "after",
        &[
            ("GANTRY_TOKEN", first_page["token"].as_str().expect("token").to_string()),
            ("GANTRY_RV", first_page["rv"].as_str().expect("rv").to_string()),
        ],
    )
    .await;
    for check in
        ["a continue token older than the compaction gets 410", "a watch from a compacted resourceVersion gets 410"]
    {
        assert!(after.contains(&format!("ok - {check}")), "missing {check:?}:\n{after}");
    }
}
