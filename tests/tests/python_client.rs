//! The official Python `kubernetes` client (`tests/python/client_suite.py`) against a 3-replica
//! cluster: CRUD across replicas, 404/409/422 statuses, label and field selectors, limit/continue
//! paging, a watch resumed from a resourceVersion, bookmarks, `watch=True`, and a live watch.

use std::path::Path;

use gantry_tests::cluster::{ClusterConfig, ProcessCluster};
use gantry_tests::kube::{wait_api_ready, Kubectl};
use gantry_tests::launcher::Launcher;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_suite_passes() {
    let config = ClusterConfig { kubernetes_api: true, ..Default::default() };
    let cluster = ProcessCluster::start(Launcher::gantry().expect("gantry binary"), config).await.expect("cluster");
    let work = tempfile::tempdir().expect("tempdir");
    let k = Kubectl { kubeconfig: cluster.kubeconfig(), cache_dir: work.path().join("cache") };
    wait_api_ready(&cluster, &k).await;
    let servers: Vec<String> = (0..cluster.size()).map(|i| cluster.api_url(i).expect("url")).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/client_suite.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("GANTRY_API_SERVERS", servers.join(","))
        .output()
        .await
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python suite failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(stdout.lines().filter(|l| l.starts_with("ok - ")).count() >= 20, "{stdout}");
}
