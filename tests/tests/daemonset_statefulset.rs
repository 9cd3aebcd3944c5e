//! The DaemonSet and StatefulSet controllers against a real 3-replica cluster with simulated nodes: a
//! DaemonSet puts one pod on every node, including a node that registers later, rolls a template change
//! and keeps a revision history `kubectl rollout history` shows; an OrderedReady StatefulSet creates pod
//! n only after pod n-1 is Ready (as seen by one watch), with stable identity and per-ordinal claims.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gantry_sim_nodes::{client_from_kubeconfig, SimConfig, SimNodes};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::json;

/// Scheduling, the simulated kubelet and the controllers each take a moment; several rounds of each.
const DEADLINE: Duration = Duration::from_secs(90);

/// Polls `check` until it returns `Ok`, failing with `what` and the last observation after DEADLINE.
async fn eventually<T, Fut: Future<Output = Result<T, String>>>(what: &str, check: impl FnMut() -> Fut) -> T {
    gantry_tests::poll::eventually(what, DEADLINE, check).await
}

fn nodes(prefix: &str, count: usize) -> SimConfig {
    SimConfig {
        nodes: count,
        name_prefix: prefix.to_string(),
        lease_interval: Duration::from_secs(1),
        ..SimConfig::default()
    }
}

fn is_ready(pod: &Pod) -> bool {
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    running && ready
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str)
}

/// Node name -> the ready pods bound there, of the pods labelled `selector` in `default`.
async fn ready_pods_by_node(pods: &Api<Pod>, selector: &str) -> Result<BTreeMap<String, Vec<Pod>>, String> {
    let list = pods.list(&ListParams::default().labels(selector)).await.map_err(|e| e.to_string())?;
    let mut by_node: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for pod in list.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "<unbound>".into());
        by_node.entry(node).or_default().push(pod);
    }
    Ok(by_node)
}

fn describe(by_node: &BTreeMap<String, Vec<Pod>>) -> String {
    by_node
        .iter()
        .map(|(n, pods)| {
            let p: Vec<String> = pods
                .iter()
                .map(|p| format!("{}(ready={})", p.metadata.name.as_deref().unwrap_or_default(), is_ready(p)))
                .collect();
            format!("{n}: {}", p.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_covers_every_node_including_late_ones_and_rolls_updates() {
    let (cluster, kubectl, _work) = gantry_tests::kube::start_api_cluster().await;
    let server = cluster.api_url(0).expect("api url");
    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client from admin kubeconfig");
    let first = SimNodes::start(client.clone(), nodes("ds-a-", 2)).await.expect("start first nodes");

    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": { "name": "agent", "namespace": "default" },
        "spec": {
            "selector": { "matchLabels": { "app": "agent" } },
            "template": {
                "metadata": { "labels": { "app": "agent" } },
                "spec": { "containers": [{ "name": "agent", "image": "registry.example/agent:1" }] }
            }
        }
    }))
    .expect("daemonset json");
    sets.create(&PostParams::default(), &ds).await.expect("create daemonset");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let covered = |want: Vec<&'static str>| {
        let pods = pods.clone();
        move || {
            let pods = pods.clone();
            let want = want.clone();
            async move {
                let by_node = ready_pods_by_node(&pods, "app=agent").await?;
                let ok = by_node.keys().map(String::as_str).eq(want.iter().copied())
                    && by_node.values().all(|p| p.len() == 1 && is_ready(&p[0]));
                if ok {
                    Ok(by_node)
                } else {
                    Err(describe(&by_node))
                }
            }
        }
    };
    let by_node =
        eventually("one ready daemon pod on each of the first nodes", covered(vec!["ds-a-0", "ds-a-1"])).await;
    for pod in by_node.values().flatten() {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let suffix = name.strip_prefix("agent-").unwrap_or_default();
        assert_eq!(suffix.len(), 5, "daemon pods are named <ds>-<5 random>: {name}");
        assert!(label(pod, "controller-revision-hash").is_some(), "{name} has no controller-revision-hash");
        let affinity = serde_json::to_value(pod.spec.as_ref().and_then(|s| s.affinity.clone())).expect("affinity json");
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        assert_eq!(
            affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
                ["matchFields"][0]["values"][0],
            json!(node),
            "{name} is pinned to its node by metadata.name affinity"
        );
    }

    let late = SimNodes::start(client.clone(), nodes("ds-b-", 1)).await.expect("start a late node");
    eventually("a daemon pod on the late node too", covered(vec!["ds-a-0", "ds-a-1", "ds-b-0"])).await;
    eventually("the DaemonSet status to count three ready pods", || async {
        let status = sets.get_status("agent").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        let done = status.desired_number_scheduled == 3
            && status.current_number_scheduled == 3
            && status.number_ready == 3
            && status.updated_number_scheduled == Some(3)
            && status.number_available == Some(3)
            && status.number_misscheduled == 0;
        if done {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await;
    kubectl.ok(&server, &["rollout", "status", "daemonset/agent", "-n", "default", "--timeout=60s"]);

    // A template change rolls every node to the new revision, and both revisions are in the history.
    let old_hash = {
        let by_node = ready_pods_by_node(&pods, "app=agent").await.expect("list daemon pods");
        label(&by_node["ds-a-0"][0], "controller-revision-hash").unwrap_or_default().to_string()
    };
    kubectl.ok(&server, &["set", "image", "daemonset/agent", "agent=registry.example/agent:2", "-n", "default"]);
    eventually("every daemon pod on the new revision", || async {
        let by_node = ready_pods_by_node(&pods, "app=agent").await?;
        let rolled = by_node.len() == 3
            && by_node.values().all(|p| {
                p.len() == 1 && is_ready(&p[0]) && label(&p[0], "controller-revision-hash") != Some(old_hash.as_str())
            });
        if rolled {
            Ok(())
        } else {
            Err(describe(&by_node))
        }
    })
    .await;
    kubectl.ok(&server, &["rollout", "status", "daemonset/agent", "-n", "default", "--timeout=60s"]);
    let history = kubectl.ok(&server, &["rollout", "history", "daemonset/agent", "-n", "default"]);
    let revisions: Vec<&str> =
        history.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    late.shutdown().await;
    first.shutdown().await;
}

/// What one watch saw, in order: `(pod, "created" | "ready")`, each at most once per pod.
type Sightings = Arc<Mutex<Vec<(String, &'static str)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_ready_statefulset_creates_pods_strictly_in_order() {
    let (cluster, kubectl, _work) = gantry_tests::kube::start_api_cluster().await;
    let server = cluster.api_url(0).expect("api url");
    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client from admin kubeconfig");
    let sim = SimNodes::start(client.clone(), nodes("sts-", 2)).await.expect("start nodes");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // One watch, started before the set exists, orders creations against readiness.
    let seen: Sightings = Arc::new(Mutex::new(Vec::new()));
    let watch = {
        let (pods, seen) = (pods.clone(), seen.clone());
        tokio::spawn(async move {
            // With back-off the stream waits between retries once the cluster is gone; without it, it
            // retries in a busy loop that never yields, and the runtime cannot shut down at the end.
            let stream = watcher(pods, watcher::Config::default().labels("app=web")).default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let objects = match event {
                    Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => vec![p],
                    _ => Vec::new(),
                };
                for pod in objects {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let mut seen = seen.lock().expect("sightings lock");
                    if !seen.iter().any(|(n, k)| *n == name && *k == "created") {
                        seen.push((name.clone(), "created"));
                    }
                    if is_ready(&pod) && !seen.iter().any(|(n, k)| *n == name && *k == "ready") {
                        seen.push((name, "ready"));
                    }
                }
            }
        })
    };
    // The watch must be established before the set exists, or it could miss the order.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let set: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "registry.example/web:1" }] }
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
            }]
        }
    }))
    .expect("statefulset json");
    sets.create(&PostParams::default(), &set).await.expect("create statefulset");

    eventually("three ready replicas in the set's status", || async {
        let status = sets.get_status("web").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        let done = status.replicas == 3
            && status.ready_replicas == Some(3)
            && status.updated_replicas == Some(3)
            && status.current_revision.is_some()
            && status.current_revision == status.update_revision;
        if done {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await;
    let sightings = seen.lock().expect("sightings lock").clone();
    watch.abort();
    let position = |name: &str, kind: &str| {
        sightings
            .iter()
            .position(|(n, k)| n == name && *k == kind)
            .unwrap_or_else(|| panic!("{name} never {kind}: {sightings:?}"))
    };
    for n in 1..3 {
        let created = position(&format!("web-{n}"), "created");
        let previous_ready = position(&format!("web-{}", n - 1), "ready");
        assert!(created > previous_ready, "web-{n} was created before web-{} was ready: {sightings:?}", n - 1);
    }

    for n in 0..3 {
        let name = format!("web-{n}");
        let pod = pods.get(&name).await.expect("get statefulset pod");
        assert_eq!(label(&pod, "statefulset.kubernetes.io/pod-name"), Some(name.as_str()));
        assert_eq!(label(&pod, "apps.kubernetes.io/pod-index"), Some(n.to_string().as_str()));
        assert!(label(&pod, "controller-revision-hash").is_some_and(|h| h.starts_with("web-")));
        let spec = pod.spec.clone().unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some(name.as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let claim =
            spec.volumes.iter().flatten().find(|v| v.name == "data").and_then(|v| v.persistent_volume_claim.clone());
        assert_eq!(claim.map(|c| c.claim_name), Some(format!("data-web-{n}")));
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let names: Vec<String> = claims
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list claims")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["data-web-0", "data-web-1", "data-web-2"]);

    // Scale-down removes the highest ordinal and keeps its claim (the default retention policy).
    kubectl.ok(&server, &["scale", "statefulset/web", "--replicas=2", "-n", "default"]);
    eventually("web-2 to be gone", || async {
        match pods.get_opt("web-2").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(p) => Err(format!("still there: {:?}", p.metadata.deletion_timestamp)),
        }
    })
    .await;
    assert!(pods.get_opt("web-1").await.expect("get web-1").is_some());
    assert!(claims.get_opt("data-web-2").await.expect("get claim").is_some(), "claims are kept on scale-down");
    sim.shutdown().await;
}
