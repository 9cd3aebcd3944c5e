//! The kubectl workflows of the suite that `kubectl_basic`, `kubectl_protobuf` and
//! `api_lifecycle` do not cover, against a 3-replica cluster: client-side `apply` twice (the live
//! object loses what the manifest dropped), server-side apply with a conflict and `--force-conflicts`,
//! output forms (`-o wide/yaml`, `--sort-by`, `--show-labels`, `-A`, `--field-selector`), `get -w`,
//! `describe`, and `annotate`. Each step is checked on its output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gantry_tests::kube::start_api_cluster;
use serde_json::Value;

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write manifest");
    p
}

fn deployment(image: &str, replicas: u32, env: &[(&str, &str)]) -> String {
    let env: Vec<String> = env.iter().map(|(k, v)| format!("        - name: {k}\n          value: \"{v}\"")).collect();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
        env:
{}
      - name: sidecar
        image: busybox:1.36
        command: [\"sleep\", \"3600\"]
",
        env.join("\n")
    )
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).expect("kubectl printed JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_suite_against_three_replicas() {
    let (cluster, k, work) = start_api_cluster().await;
    let (r0, r1, r2) =
        (cluster.api_url(0).expect("url"), cluster.api_url(1).expect("url"), cluster.api_url(2).expect("url"));
    let path = |p: &PathBuf| p.to_str().expect("utf8").to_string();

    // Client-side apply, twice: the second manifest changes the image and drops env B.
    let v1 = write(work.path(), "v1.yaml", &deployment("nginx:1.25", 2, &[("A", "1"), ("B", "2")]));
    assert_eq!(k.ok(&r0, &["apply", "-f", &path(&v1)]).trim(), "deployment.apps/web created");
    let v2 = write(work.path(), "v2.yaml", &deployment("nginx:1.27", 3, &[("A", "1")]));
    assert_eq!(k.ok(&r1, &["apply", "-f", &path(&v2)]).trim(), "deployment.apps/web configured");
    let live = json(&k.ok(&r2, &["get", "deployment", "web", "-o", "json", "--show-managed-fields"]));
    let nginx = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(nginx["image"], "nginx:1.27");
    assert_eq!(nginx["env"], serde_json::json!([{"name":"A","value":"1"}]), "env B is gone from the live object");
    assert_eq!(live["spec"]["replicas"], 3);
    assert_eq!(live["spec"]["template"]["spec"]["containers"][1]["name"], "sidecar");
    assert_eq!(live["metadata"]["generation"], 2);
    assert!(live["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|m| m.iter().any(|e| e["manager"] == "kubectl-client-side-apply" && e["operation"] == "Update")));
    assert_eq!(k.ok(&r0, &["apply", "-f", &path(&v2)]).trim(), "deployment.apps/web unchanged");

    // Output forms.
    let wide = k.ok(&r1, &["get", "deployment", "web", "-o", "wide"]);
    let header = wide.lines().next().expect("header");
    for column in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"] {
        assert!(header.contains(column), "{wide}");
    }
    assert!(wide.contains("nginx,sidecar") && wide.contains("nginx:1.27,busybox:1.36") && wide.contains("app=web"));
    let yaml = k.ok(&r2, &["get", "deployment", "web", "-o", "yaml"]);
    assert!(yaml.contains("kind: Deployment") && yaml.contains("image: nginx:1.27"), "{yaml}");
    let described = k.ok(&r0, &["describe", "deployment", "web"]);
    for needle in ["Name:", "web", "Replicas:", "3 desired", "Pod Template:", "nginx:1.27", "StrategyType:"] {
        assert!(described.contains(needle), "describe lacks {needle:?}:\n{described}");
    }

    k.ok(&r0, &["create", "namespace", "suite-b"]);
    for (ns, name, tier) in [("default", "zeta", "back"), ("default", "alpha", "front"), ("suite-b", "mid", "front")] {
        k.ok(&r1, &["create", "configmap", name, "-n", ns, "--from-literal=k=v"]);
        k.ok(&r1, &["label", "configmap", name, "-n", ns, &format!("tier={tier}")]);
    }
    let sorted = k.ok(&r2, &["get", "configmaps", "--sort-by=.metadata.name", "-o", "name", "-l", "tier"]);
    assert_eq!(sorted.lines().collect::<Vec<_>>(), vec!["configmap/alpha", "configmap/zeta"]);
    let labels = k.ok(&r0, &["get", "configmap", "alpha", "--show-labels"]);
    assert!(labels.lines().next().is_some_and(|h| h.contains("LABELS")) && labels.contains("tier=front"), "{labels}");
    let all = k.ok(&r1, &["get", "configmaps", "-A", "-l", "tier=front"]);
    assert!(all.lines().next().is_some_and(|h| h.starts_with("NAMESPACE")), "{all}");
    assert!(all.contains("default") && all.contains("alpha") && all.contains("suite-b") && all.contains("mid"));
    assert!(!all.contains("zeta"), "{all}");
    let by_field = k.ok(&r2, &["get", "configmaps", "-A", "--field-selector", "metadata.name=mid", "-o", "name"]);
    assert_eq!(by_field.trim(), "configmap/mid");
    assert_eq!(k.ok(&r0, &["annotate", "configmap", "alpha", "note=hello"]).trim(), "configmap/alpha annotated");
    let annotated = json(&k.ok(&r1, &["get", "configmap", "alpha", "-o", "json"]));
    assert_eq!(annotated["metadata"]["annotations"]["note"], "hello");

    // Server-side apply: create, conflict with another manager, then force.
    let ssa = write(
        work.path(),
        "ssa.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels:\n    owner: first\ndata:\n  a: \"1\"\n  b: \"2\"\n",
    );
    assert_eq!(k.ok(&r0, &["apply", "--server-side", "-f", &path(&ssa)]).trim(), "configmap/ssa serverside-applied");
    let other = write(
        work.path(),
        "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"9\"\n",
    );
    let conflict = k.fails(&r1, &["apply", "--server-side", "--field-manager=other", "-f", &path(&other)]);
    assert!(
        conflict.contains("Apply failed with 1 conflict")
            && conflict.contains("conflict with \"kubectl\"")
            && conflict.contains(".data.a"),
        "{conflict}"
    );
    let unchanged = json(&k.ok(&r2, &["get", "configmap", "ssa", "-o", "json"]));
    assert_eq!(unchanged["data"]["a"], "1", "a refused apply changes nothing");
    let forced =
        k.ok(&r1, &["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", &path(&other)]);
    assert_eq!(forced.trim(), "configmap/ssa serverside-applied");
    let after = json(&k.ok(&r2, &["get", "configmap", "ssa", "-o", "json", "--show-managed-fields"]));
    assert_eq!(after["data"]["a"], "9");
    assert_eq!(after["data"]["b"], "2", "fields only the first manager applied stay");
    let managers: Vec<&str> = after["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl") && managers.contains(&"other"), "{managers:?}");
    // The first manager stops applying b: it is removed, since nobody else owns it.
    let shrunk = write(work.path(), "shrunk.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n");
    k.ok(&r0, &["apply", "--server-side", "-f", &path(&shrunk)]);
    let pruned = json(&k.ok(&r0, &["get", "configmap", "ssa", "-o", "json"]));
    assert!(pruned["data"].get("b").is_none(), "{pruned}");
    assert_eq!(pruned["data"]["a"], "9", "a field another manager owns stays");

    // get -w: a watch through one replica sees a create made through another.
    let mut watch = Command::new("/usr/bin/kubectl")
        .args(["--kubeconfig", &path(&k.kubeconfig), "--cache-dir", &path(&k.cache_dir), "--server", &r2])
        .args(["get", "configmaps", "-n", "suite-b", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).expect("initial list"), "configmap/mid");
    k.ok(&r0, &["create", "configmap", "watched", "-n", "suite-b"]);
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).expect("watch event"), "configmap/watched");
    let _ = watch.kill();
    let _ = watch.wait();
}
