//! Stock `kubectl` (through `/usr/bin/kubectl`, which picks the binary matching the server's minor
//! version) against a 3-replica cluster serving the Kubernetes API: version and discovery, create,
//! get in several output forms through different replicas, label, three kinds of patch, errors as
//! upstream words them, delete, and refusal of unauthenticated requests. Every step is checked on
//! its output, not only its exit code.

use std::path::{Path, PathBuf};

use gantry_tests::kube::start_api_cluster;

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write manifest");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_basics_against_three_replicas() {
    let (cluster, k, work) = start_api_cluster().await;
    let (r0, r1, r2) =
        (cluster.api_url(0).expect("url"), cluster.api_url(1).expect("url"), cluster.api_url(2).expect("url"));

    let version = k.ok(&r0, &["version"]);
    assert!(version.contains("Server Version: v1.33"), "{version}");

    let resources = k.ok(&r1, &["api-resources"]);
    let deploy_line = resources.lines().find(|l| l.starts_with("deployments")).expect("deployments listed");
    assert!(
        deploy_line.contains("deploy") && deploy_line.contains("apps/v1") && deploy_line.contains("Deployment"),
        "{deploy_line}"
    );
    assert!(resources.lines().any(|l| l.starts_with("pods ") && l.contains(" po ")), "{resources}");

    let namespaces = k.ok(&r2, &["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(&format!("namespace/{ns}")), "{namespaces}");
    }

    let manifest = write(
        work.path(),
        "cm.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1","labels":{"app":"demo"}},"data":{"a":"1"}}"#,
    );
    let created = k.ok(&r0, &["create", "-f", manifest.to_str().expect("utf8")]);
    assert_eq!(created.trim(), "configmap/cm1 created");
    let again = k.fails(&r1, &["create", "-f", manifest.to_str().expect("utf8")]);
    assert!(again.contains("AlreadyExists") && again.contains("configmaps \"cm1\" already exists"), "{again}");

    // Read back through another replica, as JSON and as a table.
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&r1, &["get", "configmap", "cm1", "-o", "json"])).expect("json output");
    assert_eq!(json["data"]["a"], "1");
    assert!(!json["metadata"]["uid"].as_str().unwrap_or("").is_empty());
    let rv1: i64 = json["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("numeric rv");
    let table = k.ok(&r2, &["get", "configmaps"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "DATA", "AGE"], "{table}");
    let row: Vec<&str> = lines.find(|l| l.starts_with("cm1")).expect("cm1 row").split_whitespace().collect();
    assert_eq!(&row[..2], &["cm1", "1"], "{table}");

    // Label, then select by label.
    assert_eq!(k.ok(&r0, &["label", "configmap", "cm1", "tier=web"]).trim(), "configmap/cm1 labeled");
    assert_eq!(k.ok(&r2, &["get", "configmaps", "-l", "tier=web", "-o", "name"]).trim(), "configmap/cm1");
    assert_eq!(k.ok(&r2, &["get", "configmaps", "-l", "tier!=web", "-o", "name"]).trim(), "");

    // Three patch types.
    k.ok(&r1, &["patch", "configmap", "cm1", "--type", "merge", "-p", r#"{"data":{"b":"2"}}"#]);
    k.ok(
        &r2,
        &["patch", "configmap", "cm1", "--type", "json", "-p", r#"[{"op":"replace","path":"/data/a","value":"10"}]"#],
    );
    k.ok(&r0, &["patch", "configmap", "cm1", "-p", r#"{"data":{"c":"3"}}"#]);
    let patched: serde_json::Value =
        serde_json::from_str(&k.ok(&r0, &["get", "configmap", "cm1", "-o", "json"])).expect("json output");
    assert_eq!(patched["data"], serde_json::json!({"a": "10", "b": "2", "c": "3"}));
    let rv2: i64 = patched["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("numeric rv");
    assert!(rv2 > rv1, "resourceVersion moves forward: {rv1} -> {rv2}");

    let missing = k.fails(&r1, &["get", "configmap", "nope"]);
    assert!(missing.contains("Error from server (NotFound): configmaps \"nope\" not found"), "{missing}");

    assert_eq!(k.ok(&r2, &["delete", "configmap", "cm1"]).trim(), "configmap \"cm1\" deleted");
    let gone = k.fails(&r0, &["get", "configmap", "cm1"]);
    assert!(gone.contains("NotFound"), "{gone}");

    // An unknown bearer token (and no client certificate): 401.
    let empty = write(work.path(), "empty.kubeconfig", "apiVersion: v1\nkind: Config\n");
    let anonymous = std::process::Command::new("/usr/bin/kubectl")
        .args(["--kubeconfig", empty.to_str().expect("utf8"), "--insecure-skip-tls-verify", "--server", &r0])
        .args(["--token", "not-a-known-token", "get", "namespaces"])
        .output()
        .expect("kubectl");
    assert!(!anonymous.status.success());
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(stderr.contains("You must be logged in to the server"), "{stderr}");
}
