//! A catalogue of bad requests, sent with curl (the admin client certificate, or none) to a
//! 3-replica cluster: each gets the Status code and reason upstream answers with, and none of them
//! changes the store (every key under `/registry/`, read through the etcd API, keeps its mod
//! revision). The replicas run no controllers; the only writes meanwhile are each replica's renewals
//! of its own API Lease (`kube-system/kube-apiserver-<id>`), which the comparison leaves out.

use std::path::Path;
use std::process::Command;

use std::collections::BTreeMap;

use etcd_client::GetOptions;
use gantry_tests::kube::start_api_only_cluster;
use gantry_tests::ProcessCluster;
use serde_json::Value;

/// Keys of every replica renewing its API Lease while the test runs.
const API_LEASES: &str = "/registry/coordination.k8s.io/leases/kube-system/kube-apiserver-";

/// Every key under `/registry/` with its mod revision, except the replicas' API Leases.
async fn store_state(cluster: &ProcessCluster) -> BTreeMap<String, i64> {
    let mut client = cluster.client(0).await.expect("etcd client");
    let resp = client.get("/registry/", Some(GetOptions::new().with_prefix().with_keys_only())).await.expect("get");
    resp.kvs()
        .iter()
        .map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.mod_revision()))
        .filter(|(k, _)| !k.starts_with(API_LEASES))
        .collect()
}

struct Curl<'a> {
    pki: &'a Path,
    work: &'a Path,
    server: String,
}

impl Curl<'_> {
    /// Sends a request; returns the HTTP code and the parsed body (Null when it is not JSON).
    fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        auth: bool,
    ) -> (u16, Value) {
        let out_file = self.work.join("response");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o"]).arg(&out_file).args(["-w", "%{http_code}", "-X", method]);
        cmd.arg("--cacert").arg(self.pki.join("ca.crt"));
        if auth {
            cmd.arg("--cert").arg(self.pki.join("admin.crt")).arg("--key").arg(self.pki.join("admin.key"));
        }
        if let Some(ct) = content_type {
            cmd.args(["-H", &format!("Content-Type: {ct}")]);
        }
        if let Some(b) = body {
            let body_file = self.work.join("request");
            std::fs::write(&body_file, b).expect("write request body");
            cmd.arg("--data-binary").arg(format!("@{}", body_file.display()));
        }
        let out = cmd.arg(format!("{}{path}", self.server)).output().expect("curl");
        assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
        let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("http code");
        let body = std::fs::read(&out_file).unwrap_or_default();
        (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

fn assert_status(case: &str, got: (u16, Value), code: u16, reason: &str, message_part: &str) {
    let (got_code, status) = got;
    assert_eq!(got_code, code, "{case}: {status}");
    assert_eq!(status["kind"], "Status", "{case}: {status}");
    assert_eq!(status["code"], code, "{case}: {status}");
    assert_eq!(status["reason"], reason, "{case}: {status}");
    let message = status["message"].as_str().unwrap_or("");
    assert!(message.contains(message_part), "{case}: message {message:?} lacks {message_part:?}");
}

const DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
  "spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
  "spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_upstream_statuses_and_change_nothing() {
    // Without controllers: the Deployment below must stay as written, so that the store only changes
    // if a bad request changed something.
    let (cluster, _k, work) = start_api_only_cluster().await;
    let pki = cluster.pki_dir();
    let c = Curl { pki: &pki, work: work.path(), server: cluster.api_url(1).expect("url") };
    let cms = "/api/v1/namespaces/default/configmaps";
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let json = Some("application/json");
    let (code, created) = c.send("POST", deployments, json, Some(DEPLOYMENT.as_bytes()), true);
    assert_eq!(code, 201, "{created}");
    let (code, cm) = c.send("POST", cms, json, Some(br#"{"metadata":{"name":"keep"},"data":{"a":"1"}}"#), true);
    assert_eq!(code, 201, "{cm}");
    // The leader's bootstrap writes settle first: kube-dns exists and the kubernetes Endpoints and
    // EndpointSlices list all three replicas (the slices are written after the Endpoints, one per
    // API port).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let slices_path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices\
                       ?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes";
    loop {
        let (_, dns) = c.send("GET", "/api/v1/namespaces/kube-system/services/kube-dns", None, None, true);
        let (_, ep) = c.send("GET", "/api/v1/namespaces/default/endpoints/kubernetes", None, None, true);
        let (_, slices) = c.send("GET", slices_path, None, None, true);
        let addresses: usize = ep["subsets"]
            .as_array()
            .map(|s| s.iter().map(|s| s["addresses"].as_array().map_or(0, Vec::len)).sum())
            .unwrap_or(0);
        let sliced: usize = slices["items"]
            .as_array()
            .map(|items| items.iter().map(|s| s["endpoints"].as_array().map_or(0, Vec::len)).sum())
            .unwrap_or(0);
        if dns["kind"] == "Service" && addresses == cluster.size() && sliced == cluster.size() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "bootstrap objects did not settle: {dns} {ep} {slices}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let before = store_state(&cluster).await;

    assert_status("malformed JSON", c.send("POST", cms, json, Some(b"{\"metadata\":"), true), 400, "BadRequest", "");
    assert_status(
        "malformed YAML",
        c.send("POST", cms, Some("application/yaml"), Some(b"metadata: [name: x\n"), true),
        400,
        "BadRequest",
        "",
    );
    assert_status(
        "apiVersion not matching the URL",
        c.send(
            "POST",
            cms,
            json,
            Some(br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#),
            true,
        ),
        400,
        "BadRequest",
        "apps/v1",
    );
    assert_status(
        "kind not matching the URL",
        c.send("POST", cms, json, Some(br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#), true),
        400,
        "BadRequest",
        "Secret",
    );
    assert_status(
        "name not matching the URL",
        c.send("PUT", &format!("{cms}/keep"), json, Some(br#"{"metadata":{"name":"other"},"data":{"a":"2"}}"#), true),
        400,
        "BadRequest",
        "does not match",
    );
    let mut moved: Value = serde_json::from_str(DEPLOYMENT).expect("json");
    moved["spec"]["selector"]["matchLabels"]["app"] = "moved".into();
    moved["spec"]["template"]["metadata"]["labels"]["app"] = "moved".into();
    assert_status(
        "immutable field change",
        c.send("PUT", &format!("{deployments}/web"), json, Some(moved.to_string().as_bytes()), true),
        422,
        "Invalid",
        "field is immutable",
    );
    let big = format!(r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#, "x".repeat(1_600_000));
    assert_status(
        "object over 1.5 MiB",
        c.send("POST", cms, json, Some(big.as_bytes()), true),
        413,
        "RequestEntityTooLarge",
        "",
    );
    assert_status(
        "unknown field under Strict",
        c.send(
            "POST",
            &format!("{cms}?fieldValidation=Strict"),
            json,
            Some(br#"{"metadata":{"name":"x"},"dta":{"a":"1"}}"#),
            true,
        ),
        400,
        "BadRequest",
        "unknown field \"dta\"",
    );
    assert_status(
        "unsupported media type",
        c.send("POST", cms, Some("text/plain"), Some(b"hello"), true),
        415,
        "UnsupportedMediaType",
        "",
    );
    assert_status(
        "garbage protobuf",
        c.send("POST", cms, Some("application/vnd.kubernetes.protobuf"), Some(b"k8s\0\x0a\xff\xff"), true),
        400,
        "BadRequest",
        "",
    );
    let mut no_image: Value = serde_json::from_str(DEPLOYMENT).expect("json");
    no_image["metadata"]["name"] = "noimage".into();
    no_image["spec"]["template"]["spec"]["containers"][0].as_object_mut().expect("container").remove("image");
    assert_status(
        "invalid object",
        c.send("POST", deployments, json, Some(no_image.to_string().as_bytes()), true),
        422,
        "Invalid",
        "spec.template.spec.containers[0].image: Required value",
    );
    assert_status(
        "invalid name",
        c.send("POST", cms, json, Some(br#"{"metadata":{"name":"Not_Valid"}}"#), true),
        422,
        "Invalid",
        "metadata.name",
    );
    assert_status(
        "unauthenticated",
        c.send("POST", cms, json, Some(br#"{"metadata":{"name":"anon"}}"#), false),
        401,
        "Unauthorized",
        "",
    );
    assert_status(
        "bad JSON patch",
        c.send("PATCH", &format!("{cms}/keep"), Some("application/json-patch+json"), Some(br#"[{"op":"jump"}]"#), true),
        400,
        "BadRequest",
        "",
    );

    assert_eq!(store_state(&cluster).await, before, "no bad request changed the store");
    let (_, kept) = c.send("GET", &format!("{cms}/keep"), None, None, true);
    assert_eq!(kept["data"]["a"], "1");
    let (_, web) = c.send("GET", &format!("{deployments}/web"), None, None, true);
    assert_eq!(web["spec"]["selector"]["matchLabels"]["app"], "web");
}
