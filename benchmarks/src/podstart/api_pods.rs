//! Pods through the API: each pod is created with a POST (left to the scheduler, or bound with
//! `spec.nodeName` when asked), the node agent runs it, and the shared pod watch shows it Running
//! and Ready; that instant minus the POST's send instant is the pod's start latency. Batches are
//! deleted all at once and followed until the watch shows every pod DELETED (the agent stops the
//! containers and finishes the deletion).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::Method;
use serde::Serialize;
use tokio::sync::Barrier;
use tokio::task::{JoinHandle, JoinSet};

use super::figures::{summarize, BatchFigures};
use super::tracker::{PodTimeline, PodTimes, PodTracker, WaitTimeout};
use super::workload::api_pod;
use crate::api::client::{ApiConnection, ClientError, Connector};
use crate::api::pod_watch::list_resource_version;
use crate::latency::{LatencyError, LatencySummary};

/// Why an API batch failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiPodsError {
    #[error("reading the pod list of namespace {namespace}")]
    List {
        namespace: String,
        #[source]
        source: ClientError,
    },
    #[error("creating pod {pod}")]
    Create {
        pod: String,
        #[source]
        source: ClientError,
    },
    #[error("deleting pod {pod}")]
    Delete {
        pod: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Wait(#[from] WaitTimeout),
    #[error(transparent)]
    Latency(#[from] LatencyError),
    #[error("a pod task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Figures of one batch of API pods.
#[derive(Debug, Clone, Serialize)]
pub struct ApiBatch {
    /// Create sent -> watch shows Running and Ready.
    pub ready: BatchFigures,
    /// Create sent -> create answered.
    pub create_call: LatencySummary,
    /// Create sent -> watch shows the pod bound (scheduling; ~0 with --bind-directly).
    pub to_bound: LatencySummary,
    /// Watch shows bound -> watch shows Ready (the agent's work, its status update and the watch).
    pub bound_to_ready: LatencySummary,
    /// All pods deleted at once: delete sent -> watch shows DELETED.
    pub deletion: BatchFigures,
    /// Every pod's milestones.
    pub pods: Vec<PodTimeline>,
}

/// Creates and deletes pods in one namespace and follows them with a watch (stopped on drop).
pub struct ApiPods {
    connector: Arc<Connector>,
    tracker: Arc<PodTracker>,
    requests: Arc<PodRequests>,
    watch: JoinHandle<()>,
}

impl Drop for ApiPods {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl ApiPods {
    /// Starts the watch of `namespace`; pods are bound to `bind_to` directly when given.
    pub async fn new(
        connector: Arc<Connector>,
        namespace: &str,
        bind_to: Option<String>,
    ) -> Result<Self, ApiPodsError> {
        let rv = list_resource_version(&connector, namespace)
            .await
            .map_err(|source| ApiPodsError::List { namespace: namespace.to_string(), source })?;
        let tracker = PodTracker::new();
        let watch = tokio::spawn(tracker.clone().watch(connector.clone(), namespace.to_string(), rv));
        let requests = Arc::new(PodRequests { tracker: tracker.clone(), namespace: namespace.to_string(), bind_to });
        Ok(Self { connector, tracker, requests, watch })
    }

    /// `warmup` unmeasured pods (each created, Ready, deleted and gone), then `n` pods each created
    /// once the previous one is Ready, then all deleted at once.
    pub async fn sequential(
        &self,
        n: usize,
        warmup: usize,
        pod_timeout: Duration,
        batch_timeout: Duration,
    ) -> Result<ApiBatch, ApiPodsError> {
        let mut conn = self.connector.connection(0);
        for i in 0..warmup {
            let name = vec![format!("warm-{i}")];
            self.requests.create(&mut conn, &name[0]).await?;
            self.tracker.wait_all(&name, "warm-up pod Ready", pod_timeout, |t| t.ready.is_some()).await?;
            self.requests.delete(&mut conn, &name[0]).await?;
            self.tracker.wait_all(&name, "warm-up pod deleted", pod_timeout, |t| t.gone.is_some()).await?;
        }
        let names: Vec<String> = (0..n).map(|i| format!("seq-{i}")).collect();
        for name in &names {
            self.requests.create(&mut conn, name).await?;
            let one = std::slice::from_ref(name);
            self.tracker.wait_all(one, "sequential pod Ready", pod_timeout, |t| t.ready.is_some()).await?;
        }
        self.finish(&names, batch_timeout).await
    }

    /// `n` pods created at once (one connection each, spread over the API servers), then deleted at
    /// once.
    pub async fn parallel(&self, n: usize, batch_timeout: Duration) -> Result<ApiBatch, ApiPodsError> {
        let names: Vec<String> = (0..n).map(|i| format!("par-{i}")).collect();
        self.start_at_once(&names, batch_timeout).await?;
        self.finish(&names, batch_timeout).await
    }

    /// Creates `names` at once and waits until all are Ready; returns their figures.
    pub async fn start_at_once(&self, names: &[String], timeout: Duration) -> Result<BatchFigures, ApiPodsError> {
        let mut conns = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let mut conn = self.connector.connection(i);
            // Dialled before the batch, so TLS handshakes are not part of it.
            conn.connect().await.map_err(|source| ApiPodsError::Create { pod: name.clone(), source })?;
            conns.push(conn);
        }
        let barrier = Arc::new(Barrier::new(names.len()));
        let mut tasks = JoinSet::new();
        for (mut conn, name) in conns.into_iter().zip(names.iter().cloned()) {
            let (barrier, requests) = (barrier.clone(), self.requests.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                requests.create(&mut conn, &name).await
            });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        self.tracker.wait_all(names, "pods Ready", timeout, |t| t.ready.is_some()).await?;
        Ok(BatchFigures::from_intervals(&intervals(&self.tracker.times(names), |t| t.sent, |t| t.ready))?)
    }

    /// Deletes `names` at once and waits until all are gone; returns the deletion figures.
    pub async fn delete_at_once(&self, names: &[String], timeout: Duration) -> Result<BatchFigures, ApiPodsError> {
        let mut tasks = JoinSet::new();
        for (i, name) in names.iter().cloned().enumerate() {
            let (mut conn, requests) = (self.connector.connection(i), self.requests.clone());
            tasks.spawn(async move { requests.delete(&mut conn, &name).await });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        self.tracker.wait_all(names, "pods deleted", timeout, |t| t.gone.is_some()).await?;
        Ok(BatchFigures::from_intervals(&intervals(&self.tracker.times(names), |t| t.delete_sent, |t| t.gone))?)
    }

    async fn finish(&self, names: &[String], timeout: Duration) -> Result<ApiBatch, ApiPodsError> {
        let deletion = self.delete_at_once(names, timeout).await?;
        let times = self.tracker.times(names);
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        let between = |from: fn(&PodTimes) -> Option<Instant>, to: fn(&PodTimes) -> Option<Instant>| {
            summarize(intervals(&times, from, to).into_iter().map(|(a, b)| b.saturating_duration_since(a)))
        };
        Ok(ApiBatch {
            ready: BatchFigures::from_intervals(&intervals(&times, |t| t.sent, |t| t.ready))?,
            create_call: between(|t| t.sent, |t| t.created)?,
            to_bound: between(|t| t.sent, |t| t.bound)?,
            bound_to_ready: between(|t| t.bound, |t| t.ready)?,
            deletion,
            pods: names.iter().zip(&times).map(|(name, t)| PodTimeline::of(name, t, now, wall_now)).collect(),
        })
    }
}

/// Creates and deletes pods, noting the instants in the tracker (shared with spawned tasks).
struct PodRequests {
    tracker: Arc<PodTracker>,
    namespace: String,
    bind_to: Option<String>,
}

impl PodRequests {
    fn path(&self) -> String {
        format!("/api/v1/namespaces/{}/pods", self.namespace)
    }

    async fn create(&self, conn: &mut ApiConnection, name: &str) -> Result<(), ApiPodsError> {
        let body = api_pod(&self.namespace, name, self.bind_to.as_deref());
        self.tracker.sending(name);
        conn.send(Method::POST, &self.path(), body)
            .await
            .map_err(|source| ApiPodsError::Create { pod: name.to_string(), source })?;
        self.tracker.created(name);
        Ok(())
    }

    async fn delete(&self, conn: &mut ApiConnection, name: &str) -> Result<(), ApiPodsError> {
        self.tracker.deleting(name);
        conn.send(Method::DELETE, &format!("{}/{name}", self.path()), Bytes::new())
            .await
            .map_err(|source| ApiPodsError::Delete { pod: name.to_string(), source })?;
        Ok(())
    }
}

/// `(from, to)` of every pod that reached both milestones.
fn intervals(
    times: &[PodTimes],
    from: impl Fn(&PodTimes) -> Option<Instant>,
    to: impl Fn(&PodTimes) -> Option<Instant>,
) -> Vec<(Instant, Instant)> {
    times.iter().filter_map(|t| Some((from(t)?, to(t)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_skip_pods_without_both_milestones() {
        let t0 = Instant::now();
        let done = PodTimes { sent: Some(t0), ready: Some(t0 + Duration::from_millis(300)), ..Default::default() };
        let pending = PodTimes { sent: Some(t0), ..Default::default() };
        let got = intervals(&[done, pending], |t| t.sent, |t| t.ready);
        assert_eq!(got, [(t0, t0 + Duration::from_millis(300))]);
    }
}
