//! `kubectl create <generator>` against a 3-replica cluster: kubectl >= 1.32 POSTs these objects as
//! `application/vnd.kubernetes.protobuf` (and never retries with JSON), so each command exercises the
//! server's protobuf decoder. Every object is read back as JSON through another replica and its content
//! checked, not only the exit code.

use serde_json::Value;

use gantry_tests::kube::{start_api_cluster, Kubectl};

const NS: &str = "proto-ns";

fn get_json(k: &Kubectl, server: &str, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-n", NS, "-o", "json"]);
    serde_json::from_str(&k.ok(server, &full)).expect("kubectl printed JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_generators_send_protobuf_that_the_server_decodes() {
    let (cluster, k, _work) = start_api_cluster().await;
    let (r0, r1) = (cluster.api_url(0).expect("url"), cluster.api_url(1).expect("url"));

    // The namespace: check on the wire that kubectl really sent protobuf.
    let out = k.run(&r0, &["create", "namespace", NS, "-v=8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "create namespace failed: {stderr}");
    assert!(stderr.contains("Content-Type: application/vnd.kubernetes.protobuf"), "kubectl did not send protobuf");
    let ns: Value = serde_json::from_str(&k.ok(&r1, &["get", "namespace", NS, "-o", "json"])).expect("json");
    assert_eq!(ns["metadata"]["name"], NS);
    assert!(!ns["metadata"]["uid"].as_str().unwrap_or("").is_empty(), "{ns}");

    let created =
        k.ok(&r0, &["create", "deployment", "d1", "--image=busybox", "--replicas=2", "--port=8080", "-n", NS]);
    assert_eq!(created.trim(), "deployment.apps/d1 created");
    let d = get_json(&k, &r1, &["deployment", "d1"]);
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "d1", "{d}");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "busybox", "{d}");
    assert_eq!(container["image"], "busybox", "{d}");
    assert_eq!(container["ports"][0]["containerPort"], 8080, "{d}");
    assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "d1", "{d}");

    k.ok(&r0, &["create", "configmap", "cm1", "--from-literal=greeting=hello", "--from-literal=n=1", "-n", NS]);
    let cm = get_json(&k, &r1, &["configmap", "cm1"]);
    assert_eq!(cm["data"], serde_json::json!({"greeting": "hello", "n": "1"}), "{cm}");

    k.ok(&r0, &["create", "secret", "generic", "s1", "--from-literal=password=s3cr3t!", "-n", NS]);
    let secret = get_json(&k, &r1, &["secret", "s1"]);
    assert_eq!(secret["type"], "Opaque", "{secret}");
    // Secret data is bytes on the wire and standard base64 in JSON: "s3cr3t!" encodes to "czNjcjN0IQ==".
    assert_eq!(secret["data"], serde_json::json!({"password": "czNjcjN0IQ=="}), "{secret}");

    k.ok(&r0, &["create", "service", "clusterip", "web", "--tcp=5678:8080", "-n", NS]);
    let svc = get_json(&k, &r1, &["service", "web"]);
    let port = &svc["spec"]["ports"][0];
    assert_eq!((port["port"].clone(), port["targetPort"].clone()), (5678.into(), 8080.into()), "{svc}");
    assert_eq!(port["protocol"], "TCP", "{svc}");
    assert_eq!(svc["spec"]["selector"]["app"], "web", "{svc}");

    k.ok(&r0, &["create", "serviceaccount", "sa1", "-n", NS]);
    assert_eq!(get_json(&k, &r1, &["serviceaccount", "sa1"])["metadata"]["name"], "sa1");

    k.ok(&r0, &["create", "job", "j1", "--image=busybox", "-n", NS, "--", "echo", "hi"]);
    let job = get_json(&k, &r1, &["job", "j1"]);
    let job_container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(job_container["image"], "busybox", "{job}");
    assert_eq!(job_container["command"], serde_json::json!(["echo", "hi"]), "{job}");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never", "{job}");

    k.ok(&r0, &["create", "role", "r1", "--verb=get,list", "--resource=pods", "-n", NS]);
    let role = get_json(&k, &r1, &["role", "r1"]);
    let rule = &role["rules"][0];
    assert_eq!(rule["verbs"], serde_json::json!(["get", "list"]), "{role}");
    assert_eq!(rule["resources"], serde_json::json!(["pods"]), "{role}");
    assert_eq!(rule["apiGroups"], serde_json::json!([""]), "{role}");

    k.ok(&r0, &["create", "rolebinding", "rb1", "--role=r1", "--serviceaccount", &format!("{NS}:sa1"), "-n", NS]);
    let binding = get_json(&k, &r1, &["rolebinding", "rb1"]);
    assert_eq!(binding["roleRef"]["name"], "r1", "{binding}");
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount", "{binding}");
    assert_eq!(binding["subjects"][0]["name"], "sa1", "{binding}");
}
