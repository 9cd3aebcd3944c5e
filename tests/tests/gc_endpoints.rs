//! The garbage collector, ServiceAccount, Endpoints and EndpointSlice controllers against a real
//! 3-replica cluster with simulated nodes: `kubectl delete` cascades in the background, orphans with
//! `--cascade=orphan` and deletes dependents first with `--cascade=foreground`; a Service's Endpoints
//! and EndpointSlice follow its pods (ready, unready, deleted); a new namespace gets a `default`
//! ServiceAccount, recreated when deleted.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gantry_sim_nodes::{client_from_kubeconfig, SimConfig, SimNodes, READY};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

const NS: &str = "gc-e2e";
const DEADLINE: Duration = Duration::from_secs(90);

/// Polls `check` until it returns `Ok`, failing with `what` and the last observation after DEADLINE.
async fn eventually<T, Fut: Future<Output = Result<T, String>>>(what: &str, check: impl FnMut() -> Fut) -> T {
    gantry_tests::poll::eventually(what, DEADLINE, check).await
}

fn pod_ip(p: &Pod) -> Option<String> {
    p.status.as_ref().and_then(|s| s.pod_ip.clone())
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn pods_labelled(pods: &Api<Pod>, selector: &str) -> Result<Vec<Pod>, String> {
    Ok(pods.list(&ListParams::default().labels(selector)).await.map_err(|e| e.to_string())?.items)
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().filter_map(|p| p.metadata.name.clone()).collect()
}

fn replica_set(name: &str, replicas: i32, node: &str, grace: i64) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": { "name": name, "namespace": NS },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeName": node,
                    "terminationGracePeriodSeconds": grace,
                    "containers": [{ "name": "c", "image": "registry.example/app:1" }]
                }
            }
        }
    }))
    .expect("replicaset json")
}

/// Waits until `n` pods labelled `app=<app>` run ready and returns them.
async fn ready_pods(pods: &Api<Pod>, app: &str, n: usize) -> Vec<Pod> {
    let selector = format!("app={app}");
    eventually(&format!("{n} ready pods of {app}"), || async {
        let list = pods_labelled(pods, &selector).await?;
        let live: Vec<Pod> = list.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        if live.len() == n && live.iter().all(|p| is_ready(p) && pod_ip(p).is_some()) {
            Ok(live)
        } else {
            Err(format!("{:?}", names(&live)))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_endpoints_and_service_accounts() {
    let (cluster, kubectl, _work) = gantry_tests::kube::start_api_cluster().await;
    let server = cluster.api_url(0).expect("api url");
    let client = client_from_kubeconfig(&cluster.kubeconfig()).await.expect("client from admin kubeconfig");
    let config = SimConfig {
        nodes: 2,
        name_prefix: "gc-node-".into(),
        labels: [("topology.kubernetes.io/zone".to_string(), "zone-a".to_string())].into(),
        lease_interval: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let _sim = SimNodes::start(client.clone(), config).await.expect("start simulated nodes");

    // A new namespace gets a default ServiceAccount, and gets it back when it is deleted.
    kubectl.ok(&server, &["create", "namespace", NS]);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let first = eventually("the default service account", || async {
        accounts.get_opt("default").await.map_err(|e| e.to_string())?.ok_or_else(|| "missing".to_string())
    })
    .await;
    kubectl.ok(&server, &["delete", "serviceaccount", "default", "-n", NS]);
    eventually("the default service account recreated", || async {
        match accounts.get_opt("default").await.map_err(|e| e.to_string())? {
            Some(sa) if sa.metadata.uid != first.metadata.uid => Ok(()),
            other => Err(format!("{:?}", other.map(|s| s.metadata.uid))),
        }
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    endpoints_follow_pods(&client, &pods).await;

    // Background (kubectl's default): the ReplicaSet goes at once, its pods after it.
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    sets.create(&PostParams::default(), &replica_set("bg", 2, "gc-node-0", 0)).await.expect("create rs bg");
    ready_pods(&pods, "bg", 2).await;
    kubectl.ok(&server, &["delete", "replicaset", "bg", "-n", NS]);
    eventually("the background-deleted replicaset's pods gone", || async {
        let left = pods_labelled(&pods, "app=bg").await?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", names(&left)))
        }
    })
    .await;

    // Orphan: the ReplicaSet goes, its pods stay without the owner reference.
    sets.create(&PostParams::default(), &replica_set("orphan", 2, "gc-node-1", 0)).await.expect("create rs orphan");
    let before = ready_pods(&pods, "orphan", 2).await;
    kubectl.ok(&server, &["delete", "replicaset", "orphan", "-n", NS, "--cascade=orphan"]);
    eventually("the orphaning replicaset gone", || async {
        match sets.get_opt("orphan").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(rs) => Err(format!("finalizers {:?}", rs.metadata.finalizers)),
        }
    })
    .await;
    // Give a (wrong) background collection time to act before checking the pods survived.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = pods_labelled(&pods, "app=orphan").await.expect("list orphans");
    let uids = |p: &[Pod]| p.iter().map(|p| p.metadata.uid.clone()).collect::<BTreeSet<_>>();
    assert_eq!(uids(&after), uids(&before), "orphaned pods must survive");
    for p in &after {
        assert!(p.metadata.deletion_timestamp.is_none(), "orphan {:?} is being deleted", p.metadata.name);
        assert!(
            p.metadata.owner_references.as_ref().is_none_or(|r| r.is_empty()),
            "orphan {:?} still has owners {:?}",
            p.metadata.name,
            p.metadata.owner_references
        );
    }

    // Foreground: the ReplicaSet waits (deleting, with the finalizer) until its pods are gone.
    sets.create(&PostParams::default(), &replica_set("fg", 2, "gc-node-0", 3)).await.expect("create rs fg");
    ready_pods(&pods, "fg", 2).await;
    kubectl.ok(&server, &["delete", "replicaset", "fg", "-n", NS, "--cascade=foreground", "--wait=false"]);
    let saw_waiting = AtomicBool::new(false);
    eventually("the foreground-deleted replicaset and its pods gone", || {
        let (pods, sets, saw) = (pods.clone(), sets.clone(), &saw_waiting);
        async move {
            let left = pods_labelled(&pods, "app=fg").await?;
            let rs = sets.get_opt("fg").await.map_err(|e| e.to_string())?;
            if let Some(rs) = &rs {
                let fg = rs.metadata.finalizers.iter().flatten().any(|f| f == "foregroundDeletion");
                if fg && rs.metadata.deletion_timestamp.is_some() && !left.is_empty() {
                    saw.store(true, Ordering::SeqCst);
                }
            }
            // Pods listed after the ReplicaSet was read: if it is gone, they must be too.
            let left_now = pods_labelled(&pods, "app=fg").await?;
            assert!(
                rs.is_some() || left_now.is_empty(),
                "the foreground-deleted replicaset vanished before its pods: {:?}",
                names(&left_now)
            );
            if rs.is_none() && left_now.is_empty() {
                Ok(())
            } else {
                Err(format!("rs present: {}, pods {:?}", rs.is_some(), names(&left_now)))
            }
        }
    })
    .await;
    assert!(
        saw_waiting.load(Ordering::SeqCst),
        "the replicaset never waited with foregroundDeletion while its pods existed"
    );

    deployment_cascades(&client, &pods, &sets, &kubectl, &server).await;
}

/// A Service's Endpoints and EndpointSlice list the ready pods and follow readiness and deletions.
async fn endpoints_follow_pods(client: &kube::Client, pods: &Api<Pod>) {
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "web", "namespace": NS },
        "spec": { "selector": { "app": "web" }, "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }] }
    }))
    .expect("service json");
    services.create(&PostParams::default(), &svc).await.expect("create service");
    for i in 0..3 {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("web-{i}"), "namespace": NS, "labels": { "app": "web" } },
            "spec": {
                "nodeName": format!("gc-node-{}", i % 2),
                "terminationGracePeriodSeconds": 0,
                "containers": [{ "name": "c", "image": "registry.example/web:1",
                                 "ports": [{ "containerPort": 8080, "name": "http" }] }]
            }
        }))
        .expect("pod json");
        pods.create(&PostParams::default(), &pod).await.expect("create pod");
    }
    let running = ready_pods(pods, "web", 3).await;
    let ip_of = |name: &str| {
        running.iter().find(|p| p.metadata.name.as_deref() == Some(name)).and_then(pod_ip).expect("pod ip")
    };
    let all: BTreeSet<String> = running.iter().filter_map(pod_ip).collect();

    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), NS);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    expect_listed(&endpoints, &slices, &all, &BTreeSet::new(), "endpoints and slices listing the 3 ready pods").await;

    let slice = slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await.expect("slices");
    assert_eq!(slice.items.len(), 1, "3 endpoints fit one slice");
    let s = &slice.items[0];
    assert!(s.metadata.name.as_deref().is_some_and(|n| n.starts_with("web-") && n.len() == "web-".len() + 5));
    assert_eq!(s.address_type, "IPv4");
    let owner = &s.metadata.owner_references.as_ref().expect("slice owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Service", "web"));
    let ep = endpoints.get("web").await.expect("endpoints");
    let skip = ep.metadata.labels.as_ref().and_then(|l| l.get("endpointslice.kubernetes.io/skip-mirror"));
    assert_eq!(skip.map(String::as_str), Some("true"));

    // web-0 turns unready: not ready in both; web-1 is deleted: gone from both.
    let patch = json!({"metadata": {"annotations": {READY: "false"}}});
    pods.patch("web-0", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("make web-0 unready");
    let unready: BTreeSet<String> = [ip_of("web-0")].into();
    let ready: BTreeSet<String> = all.iter().filter(|ip| !unready.contains(*ip)).cloned().collect();
    expect_listed(&endpoints, &slices, &ready, &unready, "web-0 listed as not ready").await;
    pods.delete("web-1", &Default::default()).await.expect("delete web-1");
    let ready: BTreeSet<String> = ready.into_iter().filter(|ip| *ip != ip_of("web-1")).collect();
    expect_listed(&endpoints, &slices, &ready, &unready, "web-1 gone from endpoints and slices").await;

    // Deleting the Service: its Endpoints are deleted, its slices collected as its dependents.
    services.delete("web", &Default::default()).await.expect("delete service");
    eventually("endpoints and slices of the deleted service gone", || async {
        let ep = endpoints.get_opt("web").await.map_err(|e| e.to_string())?;
        let left = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .map_err(|e| e.to_string())?
            .items;
        if ep.is_none() && left.is_empty() {
            Ok(())
        } else {
            Err(format!("endpoints {}, slices {}", ep.is_some(), left.len()))
        }
    })
    .await;
}

/// `kubectl delete deployment` removes its ReplicaSets and their pods. Without a deployment
/// controller running, the ReplicaSet is created here, owned by the Deployment.
async fn deployment_cascades(
    client: &kube::Client,
    pods: &Api<Pod>,
    sets: &Api<ReplicaSet>,
    kubectl: &gantry_tests::kube::Kubectl,
    server: &str,
) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let template = replica_set("dep", 2, "gc-node-1", 0).spec.expect("spec").template;
    let dep: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "dep", "namespace": NS },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "dep" } }, "template": template }
    }))
    .expect("deployment json");
    let dep = deployments.create(&PostParams::default(), &dep).await.expect("create deployment");
    let uid = dep.metadata.uid.clone().expect("deployment uid");
    let owned = |sets: Vec<ReplicaSet>| -> Vec<ReplicaSet> {
        sets.into_iter().filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid)).collect()
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let existing = owned(sets.list(&ListParams::default()).await.expect("list rs").items);
    if existing.is_empty() {
        let mut rs = replica_set("dep-manual", 2, "gc-node-1", 0);
        rs.spec.as_mut().expect("spec").selector.match_labels = Some([("app".to_string(), "dep".to_string())].into());
        rs.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "dep".into(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        sets.create(&PostParams::default(), &rs).await.expect("create the deployment's replicaset");
    }
    ready_pods(pods, "dep", 2).await;
    kubectl.ok(server, &["delete", "deployment", "dep", "-n", NS]);
    eventually("the deployment's replicasets and pods gone", || async {
        let rs = owned(sets.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items);
        let left = pods_labelled(pods, "app=dep").await?;
        if rs.is_empty() && left.is_empty() {
            Ok(())
        } else {
            Err(format!("replicasets {}, pods {:?}", rs.len(), names(&left)))
        }
    })
    .await;
}

type Ips = BTreeSet<String>;

/// (ready, not ready) IPs of the Endpoints `web` and of the service's slices.
async fn observe(endpoints: &Api<Endpoints>, slices: &Api<EndpointSlice>) -> Result<(Ips, Ips, Ips, Ips), String> {
    let ep = endpoints.get_opt("web").await.map_err(|e| e.to_string())?.ok_or("no endpoints")?;
    let mut ep_ready = BTreeSet::new();
    let mut ep_unready = BTreeSet::new();
    for s in ep.subsets.iter().flatten() {
        let ports: Vec<i32> = s.ports.iter().flatten().map(|p| p.port).collect();
        if ports != [8080] {
            return Err(format!("endpoints ports {ports:?}"));
        }
        ep_ready.extend(s.addresses.iter().flatten().map(|a| a.ip.clone()));
        ep_unready.extend(s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
    }
    let list = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .map_err(|e| e.to_string())?
        .items;
    let mut sl_ready = BTreeSet::new();
    let mut sl_unready = BTreeSet::new();
    for s in &list {
        let managed = s.metadata.labels.as_ref().and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"));
        if managed.map(String::as_str) != Some("endpointslice-controller.k8s.io") {
            return Err(format!("slice {:?} not managed by the controller", s.metadata.name));
        }
        for e in &s.endpoints {
            if e.zone.as_deref() != Some("zone-a") {
                return Err(format!("endpoint {:?} without zone", e.addresses));
            }
            let ready = e.conditions.as_ref().and_then(|c| c.ready) == Some(true);
            let target = if ready { &mut sl_ready } else { &mut sl_unready };
            target.extend(e.addresses.iter().cloned());
        }
    }
    Ok((ep_ready, ep_unready, sl_ready, sl_unready))
}

/// Waits until both the Endpoints and the slices list exactly `ready` as ready and `unready` as not.
async fn expect_listed(
    endpoints: &Api<Endpoints>,
    slices: &Api<EndpointSlice>,
    ready: &Ips,
    unready: &Ips,
    what: &str,
) {
    eventually(what, || async {
        let got = observe(endpoints, slices).await?;
        if got == (ready.clone(), unready.clone(), ready.clone(), unready.clone()) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await
}
