//! The pod side of the simulated kubelets: ONE watch over all pods feeds a cache of the pods bound to
//! simulated nodes; a pool of workers applies `pod_plan` to them and writes the result (status merge
//! patches, final deletions). Pods of nodes with stopped heartbeats are left alone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use serde_json::json;
use tracing::{debug, warn};

use crate::pod_plan::{plan_pod, PodAction, PodFacts};
use crate::state::{lock, PodKey, Shared};

/// Workers applying pod plans; each does at most one write at a time.
pub const WORKERS: usize = 48;
/// Delay before retrying a pod whose write failed.
const RETRY: Duration = Duration::from_secs(1);

fn key_of(pod: &Pod) -> PodKey {
    PodKey {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
    }
}

/// The resourceVersion as a number when the server uses numbers (Gantry and etcd do), to keep a
/// late watch event from replacing the newer object a write returned.
fn revision(pod: &Pod) -> Option<u64> {
    pod.metadata.resource_version.as_deref().and_then(|rv| rv.parse().ok())
}

/// Caches `pod` unless the cache already holds a newer version of it; returns whether it was stored.
pub fn remember(shared: &Shared, mut pod: Pod) -> bool {
    pod.metadata.managed_fields = None;
    let key = key_of(&pod);
    let mut pods = lock(&shared.pods);
    if let Some(cached) = pods.get(&key) {
        let same_pod = cached.metadata.uid == pod.metadata.uid;
        if same_pod && matches!((revision(cached), revision(&pod)), (Some(old), Some(new)) if new < old) {
            return false;
        }
    }
    pods.insert(key, Arc::new(pod));
    true
}

fn forget(shared: &Shared, pod: &Pod) {
    let key = key_of(pod);
    let mut pods = lock(&shared.pods);
    if pods.get(&key).is_some_and(|cached| cached.metadata.uid == pod.metadata.uid) {
        pods.remove(&key);
    }
    drop(pods);
    if let Some(uid) = &pod.metadata.uid {
        lock(&shared.pod_ips).remove(uid);
    }
}

/// Feeds the cache and the queue from one watch over all pods until the task is aborted.
pub async fn watch_pods(shared: Arc<Shared>, synced: tokio::sync::watch::Sender<bool>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut relisted: Option<HashSet<PodKey>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => relisted = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                if shared.node_of(&pod).is_none() {
                    continue;
                }
                let key = key_of(&pod);
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(key.clone());
                }
                if remember(&shared, pod) {
                    shared.queue.add(key);
                }
            }
            Ok(Event::Delete(pod)) => forget(&shared, &pod),
            Ok(Event::InitDone) => {
                if let Some(seen) = relisted.take() {
                    let mut pods = lock(&shared.pods);
                    pods.retain(|k, _| seen.contains(k));
                    let uids: HashSet<String> = pods.values().filter_map(|p| p.metadata.uid.clone()).collect();
                    drop(pods);
                    lock(&shared.pod_ips).retain(|uid, _| uids.contains(uid));
                }
                synced.send_replace(true);
            }
            Err(e) => warn!(error = %e, "pod watch failed; retrying"),
        }
    }
}

/// Re-queues every cached pod of `node` (after its heartbeats resume).
pub fn requeue_node(shared: &Shared, node: &str) {
    let keys: Vec<PodKey> = lock(&shared.pods)
        .iter()
        .filter(|(_, p)| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .map(|(k, _)| k.clone())
        .collect();
    for key in keys {
        shared.queue.add(key);
    }
}

/// A worker: takes pod keys off the queue until the task is aborted.
pub async fn work(shared: Arc<Shared>) {
    loop {
        let key = shared.queue.next().await;
        if let Err(e) = process(&shared, &key).await {
            warn!(pod = %format!("{}/{}", key.namespace, key.name), error = %e, "pod sync failed; retrying");
            shared.queue.add_after(key.clone(), RETRY);
        }
        shared.queue.done(&key);
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(pod = %format!("{}/{}", key.namespace, key.name)))]
async fn process(shared: &Shared, key: &PodKey) -> Result<(), kube::Error> {
    let Some(pod) = lock(&shared.pods).get(key).cloned() else { return Ok(()) };
    let Some(node) = shared.node_of(&pod) else { return Ok(()) };
    if !node.is_alive() {
        return Ok(());
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let pod_ip = match pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
        Some(ip) => ip,
        None => shared.pod_ip(&uid),
    };
    let facts = PodFacts { now: Timestamp::now(), host_ip: node.host_ip.clone(), pod_ip };
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    match plan_pod(&pod, &facts) {
        PodAction::Wait { wake_in } => {
            if let Some(delay) = wake_in {
                shared.queue.add_after(key.clone(), delay);
            }
        }
        PodAction::Status { status, wake_in } => {
            let patch = json!({ "status": status });
            let result = {
                let _permit = shared.writes.acquire().await;
                api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await
            };
            match result {
                Ok(updated) => {
                    debug!(phase = ?updated.status.as_ref().and_then(|s| s.phase.as_deref()), "pod status written");
                    remember(shared, updated);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(e),
            }
            if let Some(delay) = wake_in {
                shared.queue.add_after(key.clone(), delay);
            }
        }
        PodAction::Delete { uid } => {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                ..DeleteParams::default()
            };
            let result = {
                let _permit = shared.writes.acquire().await;
                api.delete(&key.name, &params).await
            };
            match result {
                Ok(_) => debug!("pod deleted"),
                // Gone already, or replaced by a new pod of the same name (uid precondition).
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
