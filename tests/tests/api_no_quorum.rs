//! A replica that lost its quorum (the other two SIGKILLed) still serves `resourceVersion=0` lists
//! and watches from its cache, answers writes with 503 and `Retry-After`, and reports not ready;
//! with one peer back it accepts writes again and nothing was lost. Driven through the official
//! Python client (`tests/python/no_quorum.py`).

use std::path::Path;

use gantry_tests::cluster::ProcessCluster;
use gantry_tests::kube::start_api_cluster;

async fn phase(cluster: &ProcessCluster, server: &str, phase: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/no_quorum.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("GANTRY_API_SERVER", server)
        .env("GANTRY_PHASE", phase)
        .output()
        .await
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "phase {phase} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_quorum_serves_cached_reads_and_refuses_writes() {
    let (mut cluster, k, _work) = start_api_cluster().await;
    let survivor = cluster.api_url(0).expect("url");
    let created = k.ok(&survivor, &["create", "configmap", "before", "--from-literal=a=1"]);
    assert_eq!(created.trim(), "configmap/before created");
    // Warm the cache while the cluster is whole: a list through the survivor.
    assert!(k.ok(&survivor, &["get", "configmaps", "-o", "name"]).contains("configmap/before"));
    cluster.kill(1).expect("kill replica 1");
    cluster.kill(2).expect("kill replica 2");
    let alone = phase(&cluster, &survivor, "alone").await;
    for check in ["writes get 503", "with Retry-After", "watches are served from the cache", "readyz reports not ready"]
    {
        assert!(alone.contains(&format!("ok - {check}")), "missing {check:?}:\n{alone}");
    }
    cluster.restart(1).await.expect("restart replica 1");
    let back = phase(&cluster, &survivor, "quorum").await;
    assert!(back.contains("ok - nothing was lost and nothing half-written"), "{back}");
}
