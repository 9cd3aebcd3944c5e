//! `SimNodes`: starts and stops the simulated kubelets (node heartbeats, the pod watch and its
//! workers) and lets callers kill and revive single nodes. Owns the tasks; decides nothing itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinSet;
use tracing::info;

use crate::config::SimConfig;
use crate::error::SimError;
use crate::heartbeat;
use crate::pod_worker;
use crate::state::Shared;

/// Nodes registered concurrently at start.
const REGISTER_CONCURRENCY: usize = 32;
/// How long `start` waits for the first list of pods before returning anyway.
const POD_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Running simulated nodes; see the crate docs. Dropping it without `shutdown` leaves the tasks running
/// until the runtime ends.
pub struct SimNodes {
    shared: Arc<Shared>,
    names: Vec<String>,
    tasks: JoinSet<()>,
}

impl SimNodes {
    /// Registers `config.nodes` Ready nodes (returning once all are registered with a Lease), then
    /// keeps them alive and runs the pods bound to them.
    pub async fn start(client: kube::Client, config: SimConfig) -> Result<SimNodes, SimError> {
        if config.lease_interval.is_zero() || config.status_interval.is_zero() {
            return Err(SimError::Config("lease and status intervals must be positive".to_string()));
        }
        let names: Vec<String> = (0..config.nodes).map(|i| config.node_name(i)).collect();
        let shared = Arc::new(Shared::new(client, config));
        futures::stream::iter(names.iter())
            .map(|name| {
                let shared = shared.clone();
                async move {
                    let Some(node) = shared.nodes.get(name) else { return Ok(()) };
                    heartbeat::register(&shared, node)
                        .await
                        .map_err(|source| SimError::Register { node: name.clone(), source })
                }
            })
            .buffer_unordered(REGISTER_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        info!(nodes = names.len(), "simulated nodes registered");

        let mut tasks = JoinSet::new();
        let count = u32::try_from(names.len().max(1)).unwrap_or(u32::MAX);
        for node in shared.nodes.values() {
            let offset = shared.config.lease_interval / count * u32::try_from(node.index).unwrap_or(0);
            tasks.spawn(heartbeat::run(shared.clone(), node.clone(), offset));
        }
        tasks.spawn(heartbeat::watch_nodes(shared.clone()));
        let (synced_tx, mut synced_rx) = tokio::sync::watch::channel(false);
        tasks.spawn(pod_worker::watch_pods(shared.clone(), synced_tx));
        for _ in 0..pod_worker::WORKERS {
            tasks.spawn(pod_worker::work(shared.clone()));
        }
        // Pods already bound to these nodes are picked up either way; waiting makes `start` return
        // with the node already acting on them.
        let _ = tokio::time::timeout(POD_SYNC_TIMEOUT, synced_rx.wait_for(|s| *s)).await;
        Ok(SimNodes { shared, names, tasks })
    }

    /// The simulated nodes' names, in index order.
    pub fn node_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Simulates a dead node: its Lease and Node status are no longer renewed and its pods are no
    /// longer updated or deleted. Unknown names are ignored.
    pub fn stop_heartbeats(&self, node: &str) {
        if let Some(state) = self.shared.nodes.get(node) {
            state.alive.store(false, Ordering::Release);
            info!(node, "heartbeats stopped");
        }
    }

    /// Revives a node: Lease and status (Ready=True) are posted at once and its pods are synced again.
    pub fn resume_heartbeats(&self, node: &str) {
        if let Some(state) = self.shared.nodes.get(node) {
            heartbeat::resume(state);
            pod_worker::requeue_node(&self.shared, node);
            info!(node, "heartbeats resumed");
        }
    }

    /// Stops every task. The Nodes and Leases stay (like a kubelet that is stopped).
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}
