//! The scheduler against a real 3-replica cluster with simulated nodes: a pod that fits nowhere shows
//! upstream's `FailedScheduling` reason in `kubectl describe pod` (the Events and the `PodScheduled`
//! condition), and is bound as soon as a node big enough registers, with a `Scheduled` event.

use std::future::Future;
use std::time::Duration;

use gantry_sim_nodes::{client_from_kubeconfig, SimConfig, SimNodes};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

/// Long enough for the scheduler's back-off (at most 10 s) plus the periodic retry.
const DEADLINE: Duration = Duration::from_secs(45);

/// Polls `check` until it returns `Ok`, failing with `what` and the last observation after DEADLINE.
async fn eventually<T, Fut: Future<Output = Result<T, String>>>(what: &str, check: impl FnMut() -> Fut) -> T {
    gantry_tests::poll::eventually(what, DEADLINE, check).await
}

fn nodes(prefix: &str, count: usize, cpu: &str) -> SimConfig {
    SimConfig {
        nodes: count,
        name_prefix: prefix.to_string(),
        cpu: cpu.to_string(),
        memory: "8Gi".to_string(),
        pods: 110,
        lease_interval: Duration::from_secs(1),
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_reports_why_and_is_scheduled_once_a_node_fits() {
    let (cluster, kubectl, _work) = gantry_tests::kube::start_api_cluster().await;
    let server = cluster.api_url(0).expect("api url");
    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client from admin kubeconfig");
    let small = SimNodes::start(client.clone(), nodes("small-", 2, "1")).await.expect("start small nodes");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "big", "namespace": "default" },
        "spec": { "containers": [{ "name": "app", "image": "registry.example/app:1",
            "resources": { "requests": { "cpu": "2", "memory": "100Mi" } } }] }
    }))
    .expect("pod json");
    pods.create(&PostParams::default(), &pod).await.expect("create pod");

    let expected = "0/2 nodes are available: 2 Insufficient cpu.";
    let described = eventually("the FailedScheduling event and condition", || async {
        let out = kubectl.run(&server, &["describe", "pod", "big", "-n", "default"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let condition = text.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words == ["PodScheduled", "False"]
        });
        let event = text.lines().any(|l| l.contains("FailedScheduling") && l.contains(expected));
        if condition && event {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    assert!(described.contains("Warning"), "{described}");
    let current = pods.get("big").await.expect("get pod");
    let scheduled = current
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .cloned()
        .expect("PodScheduled condition");
    assert_eq!(scheduled.status, "False");
    assert_eq!(scheduled.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(scheduled.message.as_deref(), Some(expected));
    assert_eq!(current.spec.as_ref().and_then(|s| s.node_name.clone()), None);

    let large = SimNodes::start(client.clone(), nodes("large-", 1, "8")).await.expect("start a large node");
    let node = eventually("the pod to be bound to the large node", || async {
        let pod = pods.get("big").await.map_err(|e| e.to_string())?;
        pod.spec.and_then(|s| s.node_name).ok_or_else(|| "not bound yet".to_string())
    })
    .await;
    assert_eq!(node, "large-0");
    eventually("the Scheduled event", || async {
        let out = kubectl.run(&server, &["describe", "pod", "big", "-n", "default"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().any(|l| l.contains("Scheduled") && l.contains("Successfully assigned default/big to large-0")) {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    large.shutdown().await;
    small.shutdown().await;
}
