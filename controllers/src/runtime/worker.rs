//! Reconcile workers and the glue from informer changes to queue keys.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use super::error::ControllerError;
use super::informer::{Change, Informer};
use super::metrics::ControllerMetrics;
use super::object_key::ObjectKey;
use super::work_queue::WorkQueue;

/// What a successful reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing until the next change.
    Done,
    /// Look again after this long (deadlines, grace periods, progress checks).
    After(Duration),
}

/// One controller's reconcile step for a key of its queue. Must be idempotent: it reads the current
/// state from informers and may run any number of times for the same key.
pub trait Reconciler: Send + Sync + 'static {
    /// The controller's name in logs, metrics and Events.
    fn name(&self) -> &'static str;

    fn reconcile(&self, key: &ObjectKey) -> impl Future<Output = Result<Requeue, ControllerError>> + Send;
}

/// Runs `workers` concurrent workers taking keys from `queue` until it shuts down or the future is
/// dropped (the workers run inside it, not as separate tasks, so dropping it stops them all).
pub async fn run_workers<R: Reconciler>(
    reconciler: Arc<R>,
    queue: WorkQueue<ObjectKey>,
    workers: usize,
    metrics: ControllerMetrics,
) {
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let (reconciler, queue, metrics) = (reconciler.clone(), queue.clone(), metrics.clone());
        tasks.push(async move {
            while let Some(key) = queue.next().await {
                let name = reconciler.name();
                let started = Instant::now();
                let span = tracing::debug_span!("reconcile", controller = name, key = %key);
                let result = reconciler.reconcile(&key).instrument(span).await;
                metrics.observe(name, started.elapsed(), result.is_ok());
                match result {
                    Ok(Requeue::Done) => queue.forget(&key),
                    Ok(Requeue::After(delay)) => {
                        queue.forget(&key);
                        queue.add_after(key.clone(), delay);
                    }
                    Err(e) => {
                        let failures = queue.failures(&key);
                        if e.is_status(409) {
                            tracing::debug!(controller = name, key = %key, error = %e, "conflict; retrying");
                        } else {
                            tracing::warn!(controller = name, key = %key, failures, error = %e, "reconcile failed");
                        }
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
                metrics.set_depth(name, queue.len());
            }
        });
    }
    futures::future::join_all(tasks).await;
}

/// Feeds `queue` with the keys `keys_of` maps each change of `informer` to, until the informer's
/// broadcast closes or the future is dropped. Objects already cached count as created; a subscriber
/// that falls behind resyncs the same way.
pub fn enqueue_changes<K, F>(
    informer: &Informer<K>,
    queue: &WorkQueue<ObjectKey>,
    keys_of: F,
) -> impl Future<Output = ()> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    F: Fn(&Change<K>) -> Vec<ObjectKey> + Send + 'static,
{
    let mut rx = informer.subscribe();
    let informer = informer.clone();
    let queue = queue.clone();
    let resync = move |informer: &Informer<K>, queue: &WorkQueue<ObjectKey>, keys_of: &F| {
        for obj in informer.list() {
            for key in keys_of(&Change::Applied { old: None, new: obj }) {
                queue.add(key);
            }
        }
    };
    async move {
        // Everything already cached counts as new to this subscriber.
        resync(&informer, &queue, &keys_of);
        loop {
            match rx.recv().await {
                Ok(change) => {
                    for key in keys_of(&change) {
                        queue.add(key);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "change subscriber lagged; resyncing");
                    resync(&informer, &queue, &keys_of);
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}
