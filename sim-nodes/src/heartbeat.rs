//! The node side of a simulated kubelet: registers the Node, renews its Lease every lease interval
//! and posts its status every status interval (re-registering it if it was deleted). Writes only
//! Nodes and Leases; the objects themselves come from `node_object`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, warn};

use crate::node_object::{self, LEASE_NAMESPACE};
use crate::pod_plan::whole_second;
use crate::state::{lock, NodeState, Shared};

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Creates the Node (or adopts an existing one), posts its status and creates/renews its Lease.
pub async fn register(shared: &Shared, node: &NodeState) -> Result<(), kube::Error> {
    let _permit = shared.writes.acquire().await;
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let now = Timestamp::now();
    let object = node_object::node(&shared.config, node.index, whole_second(now));
    let created = match nodes.create(&PostParams::default(), &object).await {
        Ok(created) => created,
        Err(e) if is_status(&e, 409) => {
            let labels = json!({ "metadata": { "labels": object.metadata.labels } });
            nodes.patch(&node.name, &PatchParams::default(), &Patch::Merge(&labels)).await?
        }
        Err(e) => return Err(e),
    };
    *lock(&node.uid) = created.metadata.uid.clone();
    post_status(shared, node, &nodes).await?;
    renew_lease(shared, node, now).await
}

/// Posts the healthy status (the server may drop status on create, and an adopted Node has an old one).
async fn post_status(shared: &Shared, node: &NodeState, nodes: &Api<Node>) -> Result<(), kube::Error> {
    let now = whole_second(Timestamp::now());
    let since = *lock(&node.ready_since);
    let status = node_object::node_status(&shared.config, node.index, now, since);
    let patch = json!({ "status": status });
    nodes.patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
}

async fn renew_lease(shared: &Shared, node: &NodeState, now: Timestamp) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), LEASE_NAMESPACE);
    let patch = json!({ "spec": node_object::lease_spec(&node.name, now) });
    match leases.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => {
            let uid = lock(&node.uid).clone();
            let lease = node_object::lease(&node.name, uid.as_deref(), now);
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                // Created concurrently (a previous attempt whose answer was lost): renewed next time.
                Err(e) if is_status(&e, 409) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// One status heartbeat; re-registers the Node when it is gone.
async fn status_heartbeat(shared: &Shared, node: &NodeState) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let result = {
        let _permit = shared.writes.acquire().await;
        post_status(shared, node, &nodes).await
    };
    match result {
        Err(e) if is_status(&e, 404) => {
            debug!(node = %node.name, "node is gone: registering it again");
            register(shared, node).await
        }
        other => other,
    }
}

/// Runs the node's heartbeats until the task is aborted. `offset` spreads the nodes' renewals over the
/// interval so a thousand nodes do not write in lockstep.
pub async fn run(shared: Arc<Shared>, node: Arc<NodeState>, offset: Duration) {
    let config = &shared.config;
    let mut lease_tick = tokio::time::interval_at(Instant::now() + offset, config.lease_interval);
    lease_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let status_period = config.status_interval.max(Duration::from_millis(100));
    let mut next_status = Instant::now() + offset + status_period;
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {}
            _ = node.kick.notified() => {}
        }
        if !node.is_alive() {
            continue;
        }
        let due = node.status_due.swap(false, Ordering::AcqRel) || Instant::now() >= next_status;
        if due {
            next_status = Instant::now() + status_period;
            if let Err(e) = status_heartbeat(&shared, &node).await {
                warn!(node = %node.name, error = %e, "posting node status failed");
                node.status_due.store(true, Ordering::Release);
            }
        }
        let renewed = {
            let _permit = shared.writes.acquire().await;
            renew_lease(&shared, &node, Timestamp::now()).await
        };
        if let Err(e) = renewed {
            warn!(node = %node.name, error = %e, "renewing lease failed");
        }
    }
}

/// Marks the node alive again: Ready becomes True now, status and Lease are posted at once.
pub fn resume(node: &NodeState) {
    if !node.alive.swap(true, Ordering::AcqRel) {
        *lock(&node.ready_since) = whole_second(Timestamp::now());
    }
    node.status_due.store(true, Ordering::Release);
    node.kick.notify_one();
}

/// Watches all Nodes and re-registers a simulated one as soon as it is deleted (instead of waiting
/// for its next status heartbeat).
pub async fn watch_nodes(shared: Arc<Shared>) {
    use futures::StreamExt;
    use kube::runtime::watcher::{self, Event};
    use kube::runtime::WatchStreamExt;
    let api: Api<Node> = Api::all(shared.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Delete(deleted)) => {
                let name = deleted.metadata.name.unwrap_or_default();
                if let Some(node) = shared.nodes.get(&name) {
                    debug!(node = %name, "node deleted");
                    node.status_due.store(true, Ordering::Release);
                    node.kick.notify_one();
                }
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "node watch failed; retrying"),
        }
    }
}
