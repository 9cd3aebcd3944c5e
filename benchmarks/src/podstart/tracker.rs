//! The milestones of each API pod: create sent and answered (by the creating client), first seen
//! bound, first seen Running and Ready, delete sent, and gone (from the shared pod watch), all on this
//! process's monotonic clock. Waiters are woken on every change, so a sequential series starts its
//! next pod as soon as the watch shows the previous one Ready.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use crate::api::client::Connector;
use crate::api::pod_watch::{self, PodEvent, PodEventKind};
use crate::sched::objects::rfc3339;

/// When each milestone of one pod happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodTimes {
    pub sent: Option<Instant>,
    pub created: Option<Instant>,
    pub bound: Option<Instant>,
    pub ready: Option<Instant>,
    pub delete_sent: Option<Instant>,
    pub gone: Option<Instant>,
}

impl PodTimes {
    /// Records what `event` shows; only the first sighting of each milestone counts.
    pub fn observe(&mut self, event: &PodEvent, at: Instant) {
        if event.is_bound() && self.bound.is_none() {
            self.bound = Some(at);
        }
        if event.is_running_and_ready() && self.ready.is_none() {
            self.ready = Some(at);
        }
        if event.kind == PodEventKind::Deleted && self.gone.is_none() {
            self.gone = Some(at);
        }
    }
}

/// One pod's milestones for the JSON report: when its create was sent (wall clock, to be matched
/// with the agent's and the replicas' log timestamps) and every later milestone in ms after that.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PodTimeline {
    pub name: String,
    /// RFC 3339 UTC with microseconds.
    pub sent_at: Option<String>,
    pub created_ms: Option<f64>,
    pub bound_ms: Option<f64>,
    pub ready_ms: Option<f64>,
    pub delete_sent_ms: Option<f64>,
    pub gone_ms: Option<f64>,
}

impl PodTimeline {
    /// `times` of pod `name`; `now` and `wall_now` are the same moment on both clocks.
    pub fn of(name: &str, times: &PodTimes, now: Instant, wall_now: SystemTime) -> Self {
        let after_sent = |t: Option<Instant>| Some(t?.saturating_duration_since(times.sent?).as_secs_f64() * 1000.0);
        let sent_at = times.sent.map(|sent| {
            let wall = wall_now.checked_sub(now.saturating_duration_since(sent)).unwrap_or(wall_now);
            rfc3339(wall, true)
        });
        Self {
            name: name.to_string(),
            sent_at,
            created_ms: after_sent(times.created),
            bound_ms: after_sent(times.bound),
            ready_ms: after_sent(times.ready),
            delete_sent_ms: after_sent(times.delete_sent),
            gone_ms: after_sent(times.gone),
        }
    }
}

/// A wait that ended without its condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {missing} of {total} pods still missing after {after:?} (first: {first})")]
pub struct WaitTimeout {
    pub what: &'static str,
    pub missing: usize,
    pub total: usize,
    pub first: String,
    pub after: Duration,
}

/// Shared between the creating clients, the watch and the waiters.
#[derive(Debug, Default)]
pub struct PodTracker {
    pods: Mutex<HashMap<String, PodTimes>>,
    changed: Notify,
}

impl PodTracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, PodTimes>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut PodTimes)) {
        f(self.lock().entry(name.to_string()).or_default());
        self.changed.notify_waiters();
    }

    /// The create of `name` is about to be sent.
    pub fn sending(&self, name: &str) {
        self.update(name, |t| t.sent = Some(Instant::now()));
    }

    /// The create of `name` was answered with success.
    pub fn created(&self, name: &str) {
        self.update(name, |t| t.created = Some(Instant::now()));
    }

    /// The delete of `name` is about to be sent.
    pub fn deleting(&self, name: &str) {
        self.update(name, |t| t.delete_sent = Some(Instant::now()));
    }

    /// A watch event of a pod this run created (others are ignored).
    pub fn observe(&self, event: &PodEvent, at: Instant) {
        let mut pods = self.lock();
        if let Some(times) = pods.get_mut(&event.name) {
            times.observe(event, at);
            drop(pods);
            self.changed.notify_waiters();
        }
    }

    /// The milestones of `names`, in that order (default for unknown names).
    pub fn times(&self, names: &[String]) -> Vec<PodTimes> {
        let pods = self.lock();
        names.iter().map(|n| pods.get(n).copied().unwrap_or_default()).collect()
    }

    /// Waits until `reached` holds for every pod of `names`, or `timeout` passes.
    pub async fn wait_all(
        &self,
        names: &[String],
        what: &'static str,
        timeout: Duration,
        reached: impl Fn(&PodTimes) -> bool,
    ) -> Result<(), WaitTimeout> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change between the check and the await still wakes.
            notified.as_mut().enable();
            let missing: Vec<&String> = {
                let pods = self.lock();
                names.iter().filter(|n| !pods.get(*n).is_some_and(&reached)).collect()
            };
            if missing.is_empty() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(WaitTimeout {
                    what,
                    missing: missing.len(),
                    total: names.len(),
                    first: missing[0].clone(),
                    after: timeout,
                });
            }
        }
    }

    /// Follows `namespace`'s pods from `resource_version` until the future is dropped.
    pub async fn watch(self: Arc<Self>, connector: Arc<Connector>, namespace: String, resource_version: String) {
        pod_watch::follow(connector, namespace, resource_version, move |event, at| self.observe(&event, at)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: PodEventKind, node: Option<&str>, phase: &str, ready: bool) -> PodEvent {
        PodEvent {
            kind,
            name: "p".into(),
            resource_version: "1".into(),
            node_name: node.map(str::to_string),
            phase: Some(phase.into()),
            ready,
            deleting: false,
        }
    }

    #[test]
    fn milestones_keep_their_first_sighting() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut times = PodTimes::default();
        times.observe(&event(PodEventKind::Added, None, "Pending", false), t0);
        assert_eq!(times, PodTimes::default());
        times.observe(&event(PodEventKind::Modified, Some("n"), "Pending", false), t0 + ms(5));
        times.observe(&event(PodEventKind::Modified, Some("n"), "Running", true), t0 + ms(300));
        times.observe(&event(PodEventKind::Modified, Some("n"), "Running", true), t0 + ms(900));
        times.observe(&event(PodEventKind::Deleted, Some("n"), "Running", true), t0 + ms(2000));
        assert_eq!(times.bound, Some(t0 + ms(5)));
        assert_eq!(times.ready, Some(t0 + ms(300)));
        assert_eq!(times.gone, Some(t0 + ms(2000)));
    }

    #[test]
    fn timelines_are_relative_to_the_send() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let times =
            PodTimes { sent: Some(t0), bound: Some(t0 + ms(20)), ready: Some(t0 + ms(300)), ..Default::default() };
        let wall = std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        let line = PodTimeline::of("p", &times, t0 + ms(1000), wall);
        assert_eq!(line.sent_at.as_deref(), Some("2025-12-31T23:59:59.000000Z"));
        assert_eq!((line.bound_ms, line.ready_ms, line.gone_ms), (Some(20.0), Some(300.0), None));
    }

    #[tokio::test]
    async fn waiters_wake_on_the_watch_and_time_out_naming_the_missing() {
        let tracker = PodTracker::new();
        let names = vec!["p".to_string()];
        tracker.sending("p");
        tracker.observe(
            &PodEvent { name: "other".into(), ..event(PodEventKind::Added, Some("n"), "Running", true) },
            Instant::now(),
        );
        let waiter = {
            let (tracker, names) = (tracker.clone(), names.clone());
            tokio::spawn(async move {
                tracker.wait_all(&names, "ready", Duration::from_secs(10), |t| t.ready.is_some()).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        tracker.observe(&event(PodEventKind::Modified, Some("n"), "Running", true), Instant::now());
        assert_eq!(waiter.await.expect("join"), Ok(()));
        assert_eq!(tracker.times(&["other".to_string()]), [PodTimes::default()], "pods of others are ignored");

        let err = tracker.wait_all(&names, "gone", Duration::from_millis(50), |t| t.gone.is_some()).await;
        let err = err.expect_err("never deleted");
        assert_eq!((err.missing, err.total, err.first.as_str()), (1, 1, "p"));
    }
}
