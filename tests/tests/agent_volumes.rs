//! The node agent's volumes and environment on a real containerd: ConfigMap and Secret env vars
//! (`valueFrom` and `envFrom`), `resourceFieldRef` and `fieldRef`; configMap, secret, downwardAPI,
//! emptyDir (disk and memory) and hostPath volumes hold the right content and modes, a configMap
//! volume follows an update of the ConfigMap; bad input (invalid image name, an unsupported volume
//! type, a hostPath outside the allowed prefixes, a missing ConfigMap) gives each pod a clear status
//! without disturbing the running pod; deleting the pod unmounts and removes its volumes.

use std::path::Path;
use std::time::Duration;

use gantry_tests::node_env::{
    container_output, cri_counts, wait_for, AgentConfig, AgentProcess, CniNetwork, KubeEnv, NodeRuntime,
};
use serde_json::{json, Value};

const NODE: &str = "vol-node";

fn pod(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["nodeName"] = json!(NODE);
    spec["terminationGracePeriodSeconds"] = json!(2);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "vols"}}, "spec": spec})
}

/// The waiting state of a pod's first container, once it has one.
fn waiting(env: &KubeEnv, name: &str) -> Option<(String, String)> {
    let pod = env.pod(name)?;
    let w = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
    Some((w["reason"].as_str()?.to_string(), w["message"].as_str().unwrap_or_default().to_string()))
}

/// The script of the pod under test: prints what it sees once, then the config file every second.
const REPORT: &str = r#"
echo "GREETING=$GREETING"
echo "PASSWORD=$PASSWORD"
echo "CFG_greeting=$CFG_greeting"
echo "MEM_LIMIT_MI=$MEM_LIMIT_MI"
echo "POD_NAME=$POD_NAME"
echo "ARG=$1"
echo "conf=$(cat /etc/app/conf/app.conf)"
echo "conf-mode=$(stat -L -c %a /etc/app/conf/app.conf)"
echo "secret=$(cat /etc/secret/password)"
echo "podinfo-name=$(cat /etc/podinfo/name)"
echo "podinfo-labels=$(cat /etc/podinfo/labels)"
echo "init=$(cat /scratch/init.txt)"
echo "mem-fs=$(grep ' /mem ' /proc/mounts | cut -d' ' -f3)"
echo "secret-fs=$(grep ' /etc/secret ' /proc/mounts | cut -d' ' -f3)"
if echo x > /etc/app/probe 2>/dev/null; then echo "config-writable=yes"; else echo "config-writable=no"; fi
echo from-pod > /host/written
echo "report-done"
while true; do echo "tick conf=$(cat /etc/app/conf/app.conf)"; sleep 1; done
"#;

fn volumes_pod(host_dir: &Path) -> Value {
    pod(
        "vols",
        json!({
            "initContainers": [{
                "name": "init", "image": gantry_tests::images::BUSYBOX_IMAGE,
                "command": ["sh", "-c", "echo from-init > /scratch/init.txt"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]
            }],
            "containers": [{
                "name": "main", "image": gantry_tests::images::BUSYBOX_IMAGE,
                "command": ["sh", "-c", REPORT, "report", "$(POD_NAME)-arg"],
                "resources": {"limits": {"memory": "64Mi"}},
                "env": [
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "greeting"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}},
                    {"name": "MEM_LIMIT_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "CFG_"}],
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/app"},
                    {"name": "secret", "mountPath": "/etc/secret"},
                    {"name": "podinfo", "mountPath": "/etc/podinfo"},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "mem", "mountPath": "/mem"},
                    {"name": "host", "mountPath": "/host"}
                ]
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "app-config", "defaultMode": 0o440,
                    "items": [{"key": "app.conf", "path": "conf/app.conf"}]}},
                {"name": "secret", "secret": {"secretName": "app-secret"}},
                {"name": "podinfo", "downwardAPI": {"items": [
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
                ]}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
                {"name": "host", "hostPath": {"path": host_dir.join("data").display().to_string(), "type": "DirectoryOrCreate"}}
            ]
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_and_env_sources_hold_the_right_content_and_bad_input_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime =
        NodeRuntime::start(dir.path(), CniNetwork::new("gnavol0", "10.220.0.0/16")).expect("containerd with images");
    let endpoint = runtime.endpoint();
    let (cluster, k, work) = gantry_tests::kube::start_api_cluster().await;
    let env = KubeEnv { url: cluster.api_url(0).expect("api url"), k };
    let host_dir = dir.path().join("host");
    let mut config = AgentConfig::new(&cluster.kubeconfig(), &endpoint, NODE, dir.path());
    config.extra_args = vec!["--allowed-host-paths".into(), host_dir.display().to_string()];
    let agent = AgentProcess::start(config);
    let root = agent.config().root_dir.clone();

    env.create(
        work.path(),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "default"},
                "data": {"greeting": "hello", "app.conf": "mode=1"}}),
    );
    env.create(
        work.path(),
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secret", "namespace": "default"},
                "stringData": {"password": "hunter2"}}),
    );
    env.create(work.path(), &volumes_pod(&host_dir));
    let running = wait_for(
        Duration::from_secs(90),
        "vols Running",
        || env.pod("vols").filter(|p| p["status"]["phase"] == "Running"),
        || format!("{}\n{}", env.pod("vols").unwrap_or_default(), agent.log_tail()),
    )
    .await;
    let uid = running["metadata"]["uid"].as_str().expect("uid").to_string();
    let container_id = running["status"]["containerStatuses"][0]["containerID"].as_str().expect("id").to_string();
    let output = || container_output(&root, "default", "vols", &uid, "main", 0);
    let report = wait_for(
        Duration::from_secs(30),
        "the pod's report",
        || Some(output()).filter(|o| o.contains("report-done")),
        || format!("{}\n{}", output(), agent.log_tail()),
    )
    .await;
    for line in [
        "GREETING=hello",
        "PASSWORD=hunter2",
        "CFG_greeting=hello",
        "MEM_LIMIT_MI=64",
        "POD_NAME=vols",
        "ARG=vols-arg",
        "conf=mode=1",
        "conf-mode=440",
        "secret=hunter2",
        "podinfo-name=vols",
        "podinfo-labels=app=\"vols\"",
        "init=from-init",
        "mem-fs=tmpfs",
        "secret-fs=tmpfs",
        "config-writable=no",
    ] {
        assert!(report.lines().any(|l| l == line), "missing {line:?} in the pod's report:\n{report}");
    }
    assert_eq!(std::fs::read_to_string(host_dir.join("data/written")).expect("hostPath file").trim(), "from-pod");

    // The configMap volume follows an update of the ConfigMap.
    env.ok(&["patch", "configmap", "app-config", "--type=merge", "-p", r#"{"data":{"app.conf":"mode=2"}}"#]);
    wait_for(
        Duration::from_secs(30),
        "the updated config file in the running container",
        || Some(()).filter(|_| output().contains("tick conf=mode=2")),
        || format!("{}\n{}", output(), agent.log_tail()),
    )
    .await;

    // Bad input: each pod gets a clear reason; the running pod is not disturbed.
    let busybox = gantry_tests::images::BUSYBOX_IMAGE;
    let sleeper = |name: &str, extra: Value| {
        let mut spec = json!({"containers": [{"name": "c", "image": busybox, "command": ["sleep", "3600"]}]});
        for (k, v) in extra.as_object().expect("object") {
            if k == "container" {
                for (ck, cv) in v.as_object().expect("container fields") {
                    spec["containers"][0][ck] = cv.clone();
                }
            } else {
                spec[k] = v.clone();
            }
        }
        pod(name, spec)
    };
    let bad = [
        (
            "bad-image",
            json!({"container": {"image": "localhost/BusyBox:1"}}),
            "InvalidImageName",
            "repository name must be lowercase",
        ),
        (
            "bad-volume",
            json!({"volumes": [{"name": "n", "nfs": {"server": "192.0.2.1", "path": "/export"}}]}),
            "ContainerCreating",
            "volume type nfs is not supported",
        ),
        (
            "bad-hostpath",
            json!({"volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}]}),
            "ContainerCreating",
            "hostPath /etc is not allowed on this node",
        ),
        (
            "missing-image",
            json!({"container": {"image": "localhost/missing:1", "imagePullPolicy": "IfNotPresent"}}),
            "ImagePullBackOff",
            "Back-off pulling image \"localhost/missing:1\": ErrImagePull: ",
        ),
        (
            "bad-env",
            json!({"container": {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}}),
            "CreateContainerConfigError",
            "configmap \"nope\" not found",
        ),
    ];
    for (name, extra, _, _) in &bad {
        env.create(work.path(), &sleeper(name, extra.clone()));
    }
    for (name, _, reason, message) in &bad {
        let (got_reason, got_message) = wait_for(
            Duration::from_secs(60),
            &format!("{name} waiting with {reason}"),
            || waiting(&env, name).filter(|(r, _)| r == reason),
            || format!("{}\n{}", env.pod(name).unwrap_or_default(), agent.log_tail()),
        )
        .await;
        assert_eq!(&got_reason, reason);
        assert!(got_message.contains(message), "{name}: message {got_message:?} lacks {message:?}");
        let phase = env.pod(name).map(|p| p["status"]["phase"].clone()).unwrap_or_default();
        assert_eq!(phase, "Pending", "{name}");
    }
    // The pull failure carries the runtime's own message, in the status and in a `Failed` event.
    let events = env.get(&["events", "--field-selector", "involvedObject.name=missing-image"]).expect("events");
    let failed = events["items"].as_array().into_iter().flatten().find(|e| e["reason"] == "Failed").cloned();
    let failed = failed.unwrap_or_else(|| panic!("no Failed event for missing-image: {events}"));
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Failed to pull image \"localhost/missing:1\": "), "{message}");
    assert!(message.contains("localhost/missing:1") && message.len() > 60, "runtime's message missing: {message}");
    let vols = env.pod("vols").expect("vols");
    assert_eq!(vols["status"]["phase"], "Running");
    assert_eq!(vols["status"]["containerStatuses"][0]["containerID"], container_id.as_str(), "vols was restarted");
    assert_eq!(vols["status"]["containerStatuses"][0]["restartCount"], 0);
    // Fixing the missing ConfigMap lets the waiting pod start.
    env.create(
        work.path(),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nope", "namespace": "default"}, "data": {"k": "v"}}),
    );
    wait_for(
        Duration::from_secs(60),
        "bad-env Running once its ConfigMap exists",
        || env.pod("bad-env").filter(|p| p["status"]["phase"] == "Running"),
        || format!("{}\n{}", env.pod("bad-env").unwrap_or_default(), agent.log_tail()),
    )
    .await;

    // Deleting the pod unmounts and removes its volumes.
    let pod_dir = root.join("pods").join(&uid);
    assert!(pod_dir.join("volumes").is_dir());
    env.ok(&["delete", "pod", "vols", "--wait=true", "--timeout=60s"]);
    assert_eq!(cri_counts(&endpoint, &uid).await, (0, 0), "sandbox or container left behind");
    assert!(!pod_dir.exists(), "pod directory {} left behind", pod_dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&uid), "a mount of the deleted pod is left:\n{mounts}");
    assert_eq!(
        std::fs::read_to_string(host_dir.join("data/written")).expect("host file").trim(),
        "from-pod",
        "hostPath data is kept"
    );
    for (name, ..) in &bad {
        env.ok(&["delete", "pod", name, "--wait=false"]);
    }
    drop(agent);
    drop(runtime);
}
