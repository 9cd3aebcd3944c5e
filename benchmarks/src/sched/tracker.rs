//! Create->bound bookkeeping of `sched-bench`: when each pod's create was sent, when a watch first
//! showed it with `spec.nodeName`, the latency histogram and the per-second counts.
//!
//! The watch is the shared pod watch of [`crate::api::pod_watch`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::api::client::Connector;
use crate::api::pod_watch;

/// Highest latency the histogram tracks exactly (longer ones are clamped).
const MAX_TRACKED: Duration = Duration::from_secs(3600);

#[derive(Debug)]
struct State {
    sent: HashMap<String, Instant>,
    bound: HashMap<String, Instant>,
    created: usize,
    create_errors: usize,
    first_error: Option<String>,
    latencies_us: Histogram<u64>,
    last_created: Option<Instant>,
    last_bound: Option<Instant>,
}

/// Shared between the creating clients, the watch and the reporter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
    pub started: Instant,
}

/// Figures at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub created: usize,
    pub create_errors: usize,
    pub bound: usize,
}

/// The final figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub created: usize,
    pub create_errors: usize,
    pub first_create_error: Option<String>,
    pub bound: usize,
    /// Seconds from the first create sent to the last create answered.
    pub create_seconds: f64,
    /// Seconds from the first create sent to the last pod seen bound.
    pub bind_seconds: f64,
    pub created_per_second: f64,
    pub bound_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

impl Tracker {
    pub fn new() -> Result<Self, hdrhistogram::CreationError> {
        let latencies_us = Histogram::new_with_max(MAX_TRACKED.as_micros() as u64, 3)?;
        let state = State {
            sent: HashMap::new(),
            bound: HashMap::new(),
            created: 0,
            create_errors: 0,
            first_error: None,
            latencies_us,
            last_created: None,
            last_bound: None,
        };
        Ok(Self { state: Arc::new(Mutex::new(state)), started: Instant::now() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The create of `name` is about to be sent.
    pub fn sending(&self, name: &str) {
        self.lock().sent.insert(name.to_string(), Instant::now());
    }

    /// The create of `name` was answered (`error` if it failed).
    pub fn created(&self, error: Option<String>) {
        let mut state = self.lock();
        match error {
            None => {
                state.created += 1;
                state.last_created = Some(Instant::now());
            }
            Some(e) => {
                state.create_errors += 1;
                state.first_error.get_or_insert(e);
            }
        }
    }

    /// A watch showed `name` bound at `at`; only the first sighting counts.
    fn bound(&self, name: &str, at: Instant) {
        let mut state = self.lock();
        if state.bound.contains_key(name) {
            return;
        }
        let Some(sent) = state.sent.get(name).copied() else { return };
        state.bound.insert(name.to_string(), at);
        let micros = at.saturating_duration_since(sent).as_micros().min(MAX_TRACKED.as_micros()) as u64;
        let _ = state.latencies_us.record(micros);
        state.last_bound = Some(at);
    }

    pub fn counts(&self) -> Counts {
        let state = self.lock();
        Counts { created: state.created, create_errors: state.create_errors, bound: state.bound.len() }
    }

    pub fn summary(&self) -> Summary {
        let state = self.lock();
        let first = state.sent.values().min().copied().unwrap_or(self.started);
        let secs = |end: Option<Instant>| end.map_or(0.0, |e| e.saturating_duration_since(first).as_secs_f64());
        let (create_seconds, bind_seconds) = (secs(state.last_created), secs(state.last_bound));
        let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let ms = |q: f64| state.latencies_us.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            created: state.created,
            create_errors: state.create_errors,
            first_create_error: state.first_error.clone(),
            bound: state.bound.len(),
            create_seconds,
            bind_seconds,
            created_per_second: rate(state.created, create_seconds),
            bound_per_second: rate(state.bound.len(), bind_seconds),
            latency_p50_ms: ms(0.5),
            latency_p90_ms: ms(0.9),
            latency_p99_ms: ms(0.99),
            latency_max_ms: state.latencies_us.max() as f64 / 1000.0,
        }
    }

    /// Follows the pods of `namespace` from `resource_version` until aborted, recording bindings.
    pub async fn watch(self, connector: Arc<Connector>, namespace: String, resource_version: String) {
        pod_watch::follow(connector, namespace, resource_version, move |event, at| {
            if event.is_bound() {
                self.bound(&event.name, at);
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_binding_of_a_sent_pod_counts() {
        let tracker = Tracker::new().expect("histogram");
        tracker.sending("a");
        tracker.created(None);
        let sent = tracker.lock().sent["a"];
        tracker.bound("a", sent + Duration::from_millis(20));
        tracker.bound("a", sent + Duration::from_secs(5));
        tracker.bound("unknown", sent);
        let summary = tracker.summary();
        assert_eq!((summary.created, summary.bound), (1, 1));
        assert!((summary.latency_max_ms - 20.0).abs() < 0.1, "{summary:?}");
    }
}
