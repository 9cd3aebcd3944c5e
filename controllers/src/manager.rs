//! The controller manager: starts the shared informers, waits until each has its first full list (a
//! controller acting on a partial cache would create replicas that already exist), then runs the
//! scheduler and every controller until the returned future is dropped, which stops all of them.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::task::JoinSet;

use crate::runtime::{Context, ControllerMetrics, EventRecorder, InformerSet};

/// Tuning shared by the controllers.
#[derive(Clone)]
pub struct ManagerConfig {
    pub metrics: ControllerMetrics,
    /// Concurrent reconciles per controller.
    pub workers: usize,
    /// How long a node's Lease may go unrenewed before the node is NotReady (upstream 40 s).
    pub node_monitor_grace_period: Duration,
}

impl ManagerConfig {
    pub fn new(metrics: ControllerMetrics) -> Self {
        Self { metrics, workers: 8, node_monitor_grace_period: Duration::from_secs(40) }
    }
}

/// Runs the scheduler and controllers against `client` until dropped.
pub async fn run_controller_manager(client: Client, config: ManagerConfig) {
    let informers = Arc::new(InformerSet::new());
    let mut tasks = JoinSet::new();
    for (_, fut) in informers.start(&client) {
        tasks.spawn(fut);
    }
    informers.wait_ready().await;
    tracing::info!("informers synced; starting the scheduler and controllers");
    let ctx = Context {
        client: client.clone(),
        informers,
        recorder: EventRecorder::new(client, "gantry-controller-manager"),
    };
    crate::replicaset::spawn(&ctx, &config, &mut tasks);
    crate::deployment::spawn(&ctx, &config, &mut tasks);
    crate::job::spawn(&ctx, &config, &mut tasks);
    crate::cronjob::spawn(&ctx, &config, &mut tasks);
    crate::garbage_collector::spawn(&ctx, &config, &mut tasks);
    crate::serviceaccount::spawn(&ctx, &config, &mut tasks);
    crate::endpoints::spawn(&ctx, &config, &mut tasks);
    crate::endpointslice::spawn(&ctx, &config, &mut tasks);
    crate::scheduler::spawn(&ctx, &config, &mut tasks);
    crate::daemonset::spawn(&ctx, &config, &mut tasks);
    crate::statefulset::spawn(&ctx, &config, &mut tasks);
    crate::node_lifecycle::spawn(&ctx, &config, &mut tasks);
    crate::disruption::spawn(&ctx, &config, &mut tasks);
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            if e.is_panic() {
                tracing::error!(error = %e, "a controller task panicked");
            }
        }
    }
}
