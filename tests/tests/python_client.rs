//! The official Python `kubernetes` client (`tests/python/client_suite.py`) against a 3-replica
//! cluster: CRUD across replicas, 404/409/422 statuses, label and field selectors, limit/continue
//! paging, a watch resumed from a resourceVersion, bookmarks, `watch=True`, and a live watch.

use std::path::Path;

use gantry_tests::kube::start_api_cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_suite_passes() {
    let (cluster, _k, _work) = start_api_cluster().await;
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
