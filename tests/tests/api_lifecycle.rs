//! Object lifecycles through stock `kubectl` against a 3-replica cluster: the `scale` subresource
//! (`kubectl scale`, GET/PUT of `autoscaling/v1` `Scale`), pod `binding` and `eviction`, graceful
//! deletion of bound pods (kept with a `deletionTimestamp` until a forced delete), immediate deletion
//! of unbound pods, and namespace deletion that empties the namespace and then removes it (waiting on
//! content that is still terminating). Every step is checked on its output, not only its exit code.

use std::path::{Path, PathBuf};

use gantry_tests::kube::{start_api_only_cluster, Kubectl};
use serde_json::{json, Value};

fn write(dir: &Path, name: &str, content: &Value) -> String {
    let p: PathBuf = dir.join(name);
    std::fs::write(&p, content.to_string()).expect("write manifest");
    p.to_str().expect("utf8 path").to_string()
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn pod(name: &str, ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
           "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}})
}

fn binding(pod: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
           "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
}

fn get_json(k: &Kubectl, server: &str, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&k.ok(server, &all)).expect("kubectl printed json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_binding_eviction_graceful_and_namespace_deletion() {
    // The API's own semantics, without controllers acting on the objects (as an apiserver test runs
    // without a controller manager): scale status and pod binding stay exactly what the test wrote.
    let (cluster, k, work) = start_api_only_cluster().await;
    let dir = work.path();
    let (r0, r1, r2) =
        (cluster.api_url(0).expect("url"), cluster.api_url(1).expect("url"), cluster.api_url(2).expect("url"));

    k.ok(&r0, &["create", "-f", &write(dir, "ns.json", &namespace("life"))]);

    // --- scale -------------------------------------------------------------------------------------
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "life"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/web:1"}]}}}
    });
    k.ok(&r0, &["create", "-f", &write(dir, "deploy.json", &deployment)]);
    let scaled = k.ok(&r1, &["scale", "-n", "life", "deployment", "web", "--replicas=3"]);
    assert_eq!(scaled.trim(), "deployment.apps/web scaled");
    let replicas = k.ok(&r2, &["get", "-n", "life", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "3");
    let generation = k.ok(&r2, &["get", "-n", "life", "deployment", "web", "-o", "jsonpath={.metadata.generation}"]);
    assert_eq!(generation, "2", "scaling changes the spec, so the generation moves");

    let scale_path = "/apis/apps/v1/namespaces/life/deployments/web/scale";
    let scale: Value = serde_json::from_str(&k.ok(&r0, &["get", "--raw", scale_path])).expect("scale json");
    assert_eq!((scale["kind"].as_str(), scale["apiVersion"].as_str()), (Some("Scale"), Some("autoscaling/v1")));
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"], json!({"replicas": 0, "selector": "app=web"}));
    assert_eq!(scale["metadata"]["name"], "web");
    assert!(!scale["metadata"]["uid"].as_str().unwrap_or("").is_empty(), "{scale}");

    // --current-replicas makes kubectl GET the Scale and PUT it back (without a Content-Type).
    let put = k.ok(&r1, &["scale", "-n", "life", "deployment/web", "--current-replicas=3", "--replicas=2"]);
    assert_eq!(put.trim(), "deployment.apps/web scaled");
    assert_eq!(k.ok(&r0, &["get", "-n", "life", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]), "2");
    let mut stale = scale.clone();
    stale["spec"]["replicas"] = json!(5);
    let conflict = k.fails(&r2, &["replace", "--raw", scale_path, "-f", &write(dir, "stale.json", &stale)]);
    assert!(conflict.contains("Conflict") || conflict.contains("the object has been modified"), "{conflict}");
    let mut negative: Value = serde_json::from_str(&k.ok(&r0, &["get", "--raw", scale_path])).expect("scale json");
    negative["spec"]["replicas"] = json!(-1);
    let invalid = k.fails(&r0, &["replace", "--raw", scale_path, "-f", &write(dir, "negative.json", &negative)]);
    assert!(invalid.contains("must be greater than or equal to 0"), "{invalid}");
    assert_eq!(k.ok(&r0, &["get", "-n", "life", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]), "2");

    // --- binding -----------------------------------------------------------------------------------
    for name in ["bound", "bound2", "evictee", "loose"] {
        k.ok(&r0, &["create", "-f", &write(dir, &format!("{name}.json"), &pod(name, "life"))]);
    }
    let bind_path = "/api/v1/namespaces/life/pods/bound/binding";
    let bound = k.ok(&r1, &["create", "--raw", bind_path, "-f", &write(dir, "b1.json", &binding("bound", "node-1"))]);
    assert!(bound.contains("Success"), "{bound}");
    let p = get_json(&k, &r2, &["-n", "life", "pod", "bound"]);
    assert_eq!(p["spec"]["nodeName"], "node-1");
    let scheduled = p["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"));
    assert_eq!(scheduled.map(|c| c["status"].clone()), Some(json!("True")), "{p}");
    let again =
        k.fails(&r2, &["create", "--raw", bind_path, "-f", &write(dir, "b2.json", &binding("bound", "node-2"))]);
    assert!(again.contains("pod bound is already assigned to node \"node-1\""), "{again}");
    // The bindings collection names the pod in the body.
    let collection = "/api/v1/namespaces/life/bindings";
    k.ok(&r0, &["create", "--raw", collection, "-f", &write(dir, "b3.json", &binding("bound2", "node-2"))]);
    k.ok(&r0, &["create", "--raw", collection, "-f", &write(dir, "b4.json", &binding("evictee", "node-2"))]);
    assert_eq!(k.ok(&r1, &["get", "-n", "life", "pod", "bound2", "-o", "jsonpath={.spec.nodeName}"]), "node-2");

    // --- graceful deletion of a bound pod ----------------------------------------------------------
    let deleted = k.ok(&r0, &["delete", "-n", "life", "pod", "bound", "--wait=false"]);
    assert_eq!(deleted.trim(), "pod \"bound\" deleted");
    let terminating = get_json(&k, &r1, &["-n", "life", "pod", "bound"]);
    assert!(terminating["metadata"]["deletionTimestamp"].is_string(), "{terminating}");
    assert_eq!(terminating["metadata"]["deletionGracePeriodSeconds"], 30);
    // A second delete may only shorten the grace period.
    k.ok(&r2, &["delete", "-n", "life", "pod", "bound", "--wait=false", "--grace-period=120"]);
    let still = get_json(&k, &r2, &["-n", "life", "pod", "bound"]);
    assert_eq!(still["metadata"]["deletionGracePeriodSeconds"], 30, "{still}");
    assert_eq!(still["metadata"]["deletionTimestamp"], terminating["metadata"]["deletionTimestamp"]);
    k.ok(&r1, &["delete", "-n", "life", "pod", "bound", "--wait=false", "--grace-period=10"]);
    assert_eq!(get_json(&k, &r0, &["-n", "life", "pod", "bound"])["metadata"]["deletionGracePeriodSeconds"], 10);
    let forced = k.ok(&r0, &["delete", "-n", "life", "pod", "bound", "--grace-period=0", "--force"]);
    assert_eq!(forced.trim(), "pod \"bound\" force deleted");
    let gone = k.fails(&r1, &["get", "-n", "life", "pod", "bound"]);
    assert!(gone.contains("NotFound"), "{gone}");

    // --- an unbound pod goes at once, so `delete --wait` returns --------------------------------
    let loose = k.ok(&r2, &["delete", "-n", "life", "pod", "loose", "--wait", "--timeout=30s"]);
    assert_eq!(loose.trim(), "pod \"loose\" deleted");
    assert!(k.fails(&r0, &["get", "-n", "life", "pod", "loose"]).contains("NotFound"));

    // --- eviction ----------------------------------------------------------------------------------
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": "evictee", "namespace": "life"},
                          "deleteOptions": {"gracePeriodSeconds": 0}});
    let evict_path = "/api/v1/namespaces/life/pods/evictee/eviction";
    let evicted = k.ok(&r1, &["create", "--raw", evict_path, "-f", &write(dir, "evict.json", &eviction)]);
    let status: Value = serde_json::from_str(&evicted).expect("eviction status json");
    assert_eq!((status["kind"].as_str(), status["status"].as_str()), (Some("Status"), Some("Success")), "{evicted}");
    assert!(k.fails(&r2, &["get", "-n", "life", "pod", "evictee"]).contains("NotFound"));
    // Without deleteOptions a bound pod is evicted gracefully: it stays, terminating.
    let eviction2 = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "bound2"}});
    let evict2 = "/api/v1/namespaces/life/pods/bound2/eviction";
    k.ok(&r0, &["create", "--raw", evict2, "-f", &write(dir, "evict2.json", &eviction2)]);
    let evicting = get_json(&k, &r0, &["-n", "life", "pod", "bound2"]);
    assert_eq!(evicting["metadata"]["deletionGracePeriodSeconds"], 30, "{evicting}");
    let mismatch = k.fails(&r0, &["create", "--raw", evict_path, "-f", &write(dir, "evict3.json", &eviction2)]);
    assert!(mismatch.contains("does not match"), "{mismatch}");

    // --- namespace deletion: contents first, then the namespace -------------------------------
    k.ok(&r0, &["create", "-f", &write(dir, "doomed.json", &namespace("doomed"))]);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "doomed"},
                    "data": {"a": "1"}});
    k.ok(&r1, &["create", "-f", &write(dir, "cm.json", &cm)]);
    k.ok(&r1, &["create", "-f", &write(dir, "dpod.json", &pod("p", "doomed"))]);
    let mut d2 = deployment.clone();
    d2["metadata"]["namespace"] = json!("doomed");
    k.ok(&r2, &["create", "-f", &write(dir, "d2.json", &d2)]);
    let ns_deleted = k.ok(&r2, &["delete", "namespace", "doomed", "--wait", "--timeout=60s"]);
    assert_eq!(ns_deleted.trim(), "namespace \"doomed\" deleted");
    assert!(k.fails(&r0, &["get", "namespace", "doomed"]).contains("NotFound"));
    for path in [
        "/api/v1/namespaces/doomed/configmaps",
        "/api/v1/namespaces/doomed/pods",
        "/apis/apps/v1/namespaces/doomed/deployments",
    ] {
        let list: Value = serde_json::from_str(&k.ok(&r1, &["get", "--raw", path])).expect("list json");
        assert_eq!(list["items"], json!([]), "{path} left behind: {list}");
    }

    // A namespace holding a pod in its grace period waits for it, saying so in its conditions.
    k.ok(&r0, &["create", "-f", &write(dir, "slow.json", &namespace("slow"))]);
    k.ok(&r0, &["create", "-f", &write(dir, "spod.json", &pod("lingering", "slow"))]);
    let slow_bind = "/api/v1/namespaces/slow/pods/lingering/binding";
    k.ok(&r0, &["create", "--raw", slow_bind, "-f", &write(dir, "sb.json", &binding("lingering", "node-1"))]);
    k.ok(&r1, &["delete", "namespace", "slow", "--wait=false"]);
    k.ok(&r2, &["wait", "--for=condition=NamespaceContentRemaining", "namespace/slow", "--timeout=60s"]);
    let slow = get_json(&k, &r2, &["namespace", "slow"]);
    assert_eq!(slow["status"]["phase"], "Terminating");
    let remaining = slow["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "NamespaceContentRemaining"))
        .expect("NamespaceContentRemaining condition");
    assert_eq!(remaining["message"], "Some resources are remaining: pods. has 1 resource instances", "{slow}");
    let lingering = get_json(&k, &r0, &["-n", "slow", "pod", "lingering"]);
    assert!(lingering["metadata"]["deletionTimestamp"].is_string(), "{lingering}");
    let refused = k.fails(&r1, &["create", "-f", &write(dir, "late.json", &pod("late", "slow"))]);
    assert!(refused.contains("because it is being terminated"), "{refused}");
    // What a node agent does once the containers have stopped: the final, grace-0 delete.
    k.ok(&r1, &["delete", "-n", "slow", "pod", "lingering", "--grace-period=0", "--force"]);
    k.ok(&r2, &["wait", "--for=delete", "namespace/slow", "--timeout=60s"]);
    assert!(k.fails(&r0, &["get", "namespace", "slow"]).contains("NotFound"));
}
