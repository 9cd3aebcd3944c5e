//! The scheduler's event loop: keeps the [`ClusterSnapshot`] current from the pod and node informers,
//! takes pending pods from the [`SchedulingQueue`] one at a time, places each with the pure
//! [`schedule_in`], and binds concurrently.
//!
//! Decisions are sequential so every placement sees the resources of the previous ones: a placed pod is
//! *assumed* (counted on its node in the snapshot) before its binding is even sent, and the assumption is
//! replaced by the informer's bound pod once observed, or forgotten when the binding fails. Pods that fit
//! nowhere get `PodScheduled=False` and a `FailedScheduling` event, and are parked until a node or a
//! bound pod changes (with back-off, and at least every 30 s).
//!
//! Owns the scheduler's cache consistency; placement logic stays in the pure modules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::task::JoinSet;

use super::bind::{bind, report_unschedulable, SchedulerError};
use super::changes::{
    frees_resources, needs_scheduling, node_update_matters, pod_update_matters, reports_unschedulable,
    DEFAULT_SCHEDULER as SCHEDULER_NAME,
};
use super::queue::SchedulingQueue;
use super::schedule::{schedule_in, SearchWindow};
use super::snapshot::{bound_node, node_name, pod_key, ClusterSnapshot};
use crate::manager::ManagerConfig;
use crate::runtime::{Change, Context, EventRecorder, EventType, ObjectKey};

/// Bindings in flight at once: binding is an API write, so many overlap while decisions stay sequential.
const BIND_CONCURRENCY: usize = 64;
/// How often parked pods are checked for an expired back-off or the periodic retry.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Informer changes applied between two placements at most, so a burst of changes cannot starve them.
const CHANGES_PER_ROUND: usize = 4096;

/// Starts the scheduler on `tasks`.
pub fn spawn(ctx: &Context, _config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    // Events name the scheduler as their source, as upstream's do (`kubectl describe` "From" column).
    let recorder = EventRecorder::new(ctx.client.clone(), SCHEDULER_NAME);
    let driver = Driver::new(Context { recorder, ..ctx.clone() });
    tasks.spawn(driver.run());
}

/// The outcome of one binding, reported back to the loop.
struct BindResult {
    key: String,
    node: String,
    result: Result<(), SchedulerError>,
}

/// See the module docs.
pub struct Driver {
    ctx: Context,
    snapshot: ClusterSnapshot,
    queue: SchedulingQueue,
    /// Pods placed but not yet seen bound by the informer: `namespace/name` -> the pod as assumed.
    assumed: HashMap<String, Arc<Pod>>,
    /// Where the next node search starts (upstream's rotating `nextStartNodeIndex`).
    next_start: usize,
    bind_slots: Arc<Semaphore>,
    binds: JoinSet<()>,
    results_tx: mpsc::UnboundedSender<BindResult>,
    results_rx: mpsc::UnboundedReceiver<BindResult>,
}

/// What one non-blocking poll of a change stream gave.
enum Polled<T> {
    Change(T),
    Resync,
    Empty,
    Closed,
}

fn poll<T: Clone>(rx: &mut broadcast::Receiver<T>) -> Polled<T> {
    match rx.try_recv() {
        Ok(change) => Polled::Change(change),
        Err(TryRecvError::Lagged(missed)) => {
            tracing::debug!(missed, "scheduler fell behind the informer; resyncing");
            Polled::Resync
        }
        Err(TryRecvError::Empty) => Polled::Empty,
        Err(TryRecvError::Closed) => Polled::Closed,
    }
}

impl Driver {
    pub fn new(ctx: Context) -> Self {
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        Self {
            ctx,
            snapshot: ClusterSnapshot::default(),
            queue: SchedulingQueue::new(),
            assumed: HashMap::new(),
            next_start: 0,
            bind_slots: Arc::new(Semaphore::new(BIND_CONCURRENCY)),
            binds: JoinSet::new(),
            results_tx,
            results_rx,
        }
    }

    /// Runs until the informers close or the future is dropped (which aborts bindings in flight).
    pub async fn run(mut self) {
        let mut pods_rx = self.ctx.informers.pods.subscribe();
        let mut nodes_rx = self.ctx.informers.nodes.subscribe();
        self.resync();
        tracing::info!(nodes = self.snapshot.node_count(), pending = self.queue.active_len(), "scheduler started");
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = Instant::now();
        loop {
            if !self.drain(&mut pods_rx, &mut nodes_rx) {
                return;
            }
            if last_flush.elapsed() >= FLUSH_INTERVAL {
                last_flush = Instant::now();
                self.queue.flush(last_flush);
            }
            if let Some(key) = self.queue.pop() {
                self.schedule_one(&key).await;
                // Placement is CPU work: let the informers and bindings run between pods.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                change = pods_rx.recv() => match change {
                    Ok(change) => self.on_pod(change),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                change = nodes_rx.recv() => match change {
                    Ok(change) => self.on_node(change),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(result) = self.results_rx.recv() => self.on_bind_result(result),
                _ = tick.tick() => {
                    last_flush = Instant::now();
                    self.queue.flush(last_flush);
                }
            }
        }
    }

    /// Applies every change already waiting (up to [`CHANGES_PER_ROUND`]); false once the informers closed.
    fn drain(
        &mut self,
        pods_rx: &mut broadcast::Receiver<Change<Pod>>,
        nodes_rx: &mut broadcast::Receiver<Change<Node>>,
    ) -> bool {
        while self.binds.try_join_next().is_some() {}
        for _ in 0..CHANGES_PER_ROUND {
            let mut idle = true;
            match poll(nodes_rx) {
                Polled::Change(change) => {
                    idle = false;
                    self.on_node(change);
                }
                Polled::Resync => self.resync(),
                Polled::Closed => return false,
                Polled::Empty => {}
            }
            match poll(pods_rx) {
                Polled::Change(change) => {
                    idle = false;
                    self.on_pod(change);
                }
                Polled::Resync => self.resync(),
                Polled::Closed => return false,
                Polled::Empty => {}
            }
            if let Ok(result) = self.results_rx.try_recv() {
                idle = false;
                self.on_bind_result(result);
            }
            if idle {
                break;
            }
        }
        true
    }

    /// Rebuilds the snapshot and queue from the informer caches (at start and after missed changes),
    /// keeping assumptions whose pods the cache does not show bound yet.
    fn resync(&mut self) {
        let informers = &self.ctx.informers;
        let mut snapshot = ClusterSnapshot::default();
        for node in informers.nodes.list() {
            snapshot.upsert_node(node);
        }
        for pod in informers.pods.list() {
            let key = pod_key(&pod);
            if bound_node(&pod).is_some() {
                self.queue.remove(&key);
                self.assumed.remove(&key);
                snapshot.add_pod(pod);
            } else if needs_scheduling(&pod) && !self.assumed.contains_key(&key) {
                self.queue.add(&key);
            }
        }
        let pods = &informers.pods;
        self.assumed.retain(|key, _| pods.get(&object_key(key)).is_some());
        for pod in self.assumed.values() {
            snapshot.add_pod(pod.clone());
        }
        self.snapshot = snapshot;
        self.queue.move_all_unschedulable(Instant::now());
    }

    fn on_node(&mut self, change: Change<Node>) {
        match change {
            Change::Applied { old, new } => {
                let matters = old.as_deref().is_none_or(|old| node_update_matters(old, &new));
                self.snapshot.upsert_node(new);
                if matters {
                    self.queue.move_all_unschedulable(Instant::now());
                }
            }
            Change::Deleted(node) => self.snapshot.remove_node(node_name(&node)),
        }
    }

    fn on_pod(&mut self, change: Change<Pod>) {
        match change {
            Change::Applied { old, new } => {
                let key = pod_key(&new);
                if bound_node(&new).is_some() {
                    // Bound (by us or anyone): the informer's pod replaces any assumption.
                    self.assumed.remove(&key);
                    self.queue.remove(&key);
                    let freed = frees_resources(old.as_deref(), Some(new.as_ref()));
                    self.snapshot.add_pod(new);
                    if freed {
                        self.queue.move_all_unschedulable(Instant::now());
                    }
                } else if !needs_scheduling(&new) {
                    self.queue.remove(&key);
                } else if !self.assumed.contains_key(&key) {
                    let parked_and_unchanged =
                        self.queue.is_parked(&key) && old.as_deref().is_some_and(|old| !pod_update_matters(old, &new));
                    if !parked_and_unchanged {
                        self.queue.add(&key);
                    }
                }
            }
            Change::Deleted(pod) => {
                let key = pod_key(&pod);
                self.queue.remove(&key);
                let was_assumed = self.assumed.remove(&key).is_some();
                let counted = self.snapshot.remove_pod(&key).is_some();
                if counted && !was_assumed {
                    self.queue.move_all_unschedulable(Instant::now());
                }
            }
        }
    }

    fn on_bind_result(&mut self, done: BindResult) {
        let BindResult { key, node, result } = done;
        let Err(error) = result else {
            // Stays assumed until the informer shows the pod bound.
            return;
        };
        let still_assumed = self.assumed.get(&key).is_some_and(|pod| bound_node(pod) == Some(node.as_str()));
        if still_assumed {
            self.assumed.remove(&key);
            self.snapshot.remove_pod(&key);
        }
        match error.status_code() {
            // Already bound (by another scheduler, or a binding that raced ours), gated, or recreated:
            // the informer brings whatever the pod is now.
            Some(409) => tracing::debug!(pod = %key, node = %node, error = %error, "binding refused; not retrying"),
            Some(404) => tracing::debug!(pod = %key, "pod gone before its binding"),
            _ => {
                tracing::warn!(pod = %key, node = %node, error = %error, "binding failed; retrying after back-off");
                if let Some(pod) = self.ctx.informers.pods.get(&object_key(&key)) {
                    let message = format!("Binding rejected: {error}");
                    self.ctx.recorder.record(pod.as_ref(), EventType::Warning, "FailedScheduling", message);
                    if still_assumed && needs_scheduling(&pod) {
                        self.queue.park_and_retry(&key, Instant::now());
                    }
                }
            }
        }
    }

    /// One placement attempt for the pod `key`.
    async fn schedule_one(&mut self, key: &str) {
        let Some(pod) = self.ctx.informers.pods.get(&object_key(key)) else {
            self.queue.remove(key);
            return;
        };
        if !needs_scheduling(&pod) || self.assumed.contains_key(key) {
            return;
        }
        let start = self.next_start;
        match schedule_in(&pod, &self.snapshot, SearchWindow { start, exhaustive: false }) {
            Ok(placement) => {
                self.next_start = start.saturating_add(placement.checked) % self.snapshot.node_count().max(1);
                self.queue.scheduled(key);
                tracing::debug!(pod = %key, node = %placement.node, checked = placement.checked, "placed");
                let mut assumed = (*pod).clone();
                if let Some(spec) = assumed.spec.as_mut() {
                    spec.node_name = Some(placement.node.clone());
                }
                let assumed = Arc::new(assumed);
                self.snapshot.add_pod(assumed.clone());
                self.assumed.insert(key.to_string(), assumed);
                self.start_binding(key, pod, placement.node).await;
            }
            Err(unschedulable) => {
                let message = unschedulable.message();
                tracing::debug!(pod = %key, reason = %message, "no node fits");
                self.queue.park(key, Instant::now());
                self.ctx.recorder.record(pod.as_ref(), EventType::Warning, "FailedScheduling", message.clone());
                if !reports_unschedulable(&pod, &message) {
                    let client = self.ctx.client.clone();
                    self.binds.spawn(async move {
                        if let Err(e) = report_unschedulable(&client, &pod, &message).await {
                            // The next attempt writes it again.
                            tracing::debug!(error = %e, "could not report the pod unschedulable");
                        }
                    });
                }
            }
        }
    }

    /// Sends the binding of `pod` to `node` once a slot is free; the outcome comes back on the results
    /// channel.
    async fn start_binding(&mut self, key: &str, pod: Arc<Pod>, node: String) {
        let Ok(slot) = self.bind_slots.clone().acquire_owned().await else { return };
        let (client, recorder, results) = (self.ctx.client.clone(), self.ctx.recorder.clone(), self.results_tx.clone());
        let key = key.to_string();
        self.binds.spawn(async move {
            let result = bind(&client, &pod, &node).await;
            drop(slot);
            if result.is_ok() {
                let message = format!("Successfully assigned {key} to {node}");
                recorder.record(pod.as_ref(), EventType::Normal, "Scheduled", message);
            }
            let _ = results.send(BindResult { key, node, result });
        });
    }
}

/// The informer key of a `namespace/name` pod key.
fn object_key(key: &str) -> ObjectKey {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    ObjectKey::new(namespace, name)
}
