//! Prometheus metrics of the controller pipeline, prefixed `gantry_controller_`, labelled by controller.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Reconcile counts, durations and queue depths. Cheap to clone (shared).
#[derive(Clone)]
pub struct ControllerMetrics {
    reconciles: IntCounterVec,
    duration: HistogramVec,
    depth: IntGaugeVec,
}

impl ControllerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self::unregistered()?;
        registry.register(Box::new(m.reconciles.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.depth.clone()))?;
        Ok(m)
    }

    /// Metrics nobody scrapes (tests, tools).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            reconciles: IntCounterVec::new(
                Opts::new("gantry_controller_reconcile_total", "Reconcile passes by controller and result."),
                &["controller", "result"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("gantry_controller_reconcile_duration_seconds", "Duration of reconcile passes.")
                    .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
                &["controller"],
            )?,
            depth: IntGaugeVec::new(
                Opts::new("gantry_controller_queue_depth", "Keys waiting in a controller's work queue."),
                &["controller"],
            )?,
        })
    }

    pub fn observe(&self, controller: &str, took: Duration, ok: bool) {
        self.reconciles.with_label_values(&[controller, if ok { "success" } else { "error" }]).inc();
        self.duration.with_label_values(&[controller]).observe(took.as_secs_f64());
    }

    pub fn set_depth(&self, controller: &str, depth: usize) {
        self.depth.with_label_values(&[controller]).set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Reconcile passes recorded for `controller` with `result` (`success` or `error`).
    pub fn reconciles(&self, controller: &str, result: &str) -> u64 {
        self.reconciles.with_label_values(&[controller, result]).get()
    }
}
