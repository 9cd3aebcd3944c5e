//! Latency recording and percentiles.
//!
//! Each client task records into its own [`LatencyRecorder`] (an HDR
//! histogram in microseconds, 3 significant digits, so any percentile is
//! within 0.1 % of the exact value); recorders are merged after a run and
//! summarised into a [`LatencySummary`].

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Lowest trackable latency: 1 µs.
const LOWEST_US: u64 = 1;
/// Highest trackable latency: 60 s (larger values are clamped).
const HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histogram.
const SIGFIGS: u8 = 3;

/// Errors from the histogram.
#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    /// The histogram could not be created.
    #[error("failed to create latency histogram")]
    Create(#[from] hdrhistogram::CreationError),
    /// Merging two histograms failed.
    #[error("failed to merge latency histograms")]
    Merge(#[from] hdrhistogram::AdditionError),
}

/// Per-task latency histogram.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> Result<Self, LatencyError> {
        Ok(Self { histogram: Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIGS)? })
    }

    /// Records one latency (clamped to 1 µs .. 60 s).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us.clamp(LOWEST_US, HIGHEST_US));
    }

    /// Adds all samples of `other`.
    pub fn merge(&mut self, other: &Self) -> Result<(), LatencyError> {
        self.histogram.add(&other.histogram)?;
        Ok(())
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Latency at quantile `q` in `[0, 1]` (0 when empty).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.histogram.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.histogram.value_at_quantile(q.clamp(0.0, 1.0)))
    }

    /// Count, mean, p50, p99 and max.
    pub fn summary(&self) -> LatencySummary {
        let empty = self.histogram.is_empty();
        LatencySummary {
            count: self.count(),
            mean_ms: if empty { 0.0 } else { self.histogram.mean() / 1000.0 },
            p50_ms: as_ms(self.quantile(0.50)),
            p99_ms: as_ms(self.quantile(0.99)),
            max_ms: if empty { 0.0 } else { self.histogram.max() as f64 / 1000.0 },
        }
    }
}

/// Latency figures of one benchmark row, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Mean latency.
    pub mean_ms: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th-percentile latency.
    pub p99_ms: f64,
    /// Largest latency.
    pub max_ms: f64,
}

fn as_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= b.abs() * rel
    }

    #[test]
    fn percentiles_of_uniform_samples() -> Result<(), LatencyError> {
        let mut r = LatencyRecorder::new()?;
        for ms in 1..=100 {
            r.record(Duration::from_millis(ms));
        }
        let s = r.summary();
        assert_eq!(s.count, 100);
        assert!(close(s.p50_ms, 50.0, 0.002), "p50 {}", s.p50_ms);
        assert!(close(s.p99_ms, 99.0, 0.002), "p99 {}", s.p99_ms);
        assert!(close(s.max_ms, 100.0, 0.002), "max {}", s.max_ms);
        assert!(close(s.mean_ms, 50.5, 0.002), "mean {}", s.mean_ms);
        Ok(())
    }

    #[test]
    fn tail_dominated_p99() -> Result<(), LatencyError> {
        // 98 fast, 2 slow: p99 must land on the slow ones, p50 on the fast.
        let mut r = LatencyRecorder::new()?;
        for _ in 0..98 {
            r.record(Duration::from_micros(500));
        }
        for _ in 0..2 {
            r.record(Duration::from_millis(30));
        }
        let s = r.summary();
        assert!(close(s.p50_ms, 0.5, 0.002), "p50 {}", s.p50_ms);
        assert!(close(s.p99_ms, 30.0, 0.002), "p99 {}", s.p99_ms);
        Ok(())
    }

    #[test]
    fn merge_adds_samples() -> Result<(), LatencyError> {
        let mut a = LatencyRecorder::new()?;
        let mut b = LatencyRecorder::new()?;
        for _ in 0..10 {
            a.record(Duration::from_millis(1));
            b.record(Duration::from_millis(3));
        }
        a.merge(&b)?;
        assert_eq!(a.count(), 20);
        assert!(close(as_ms(a.quantile(0.25)), 1.0, 0.002));
        assert!(close(as_ms(a.quantile(0.75)), 3.0, 0.002));
        Ok(())
    }

    #[test]
    fn empty_and_out_of_range() -> Result<(), LatencyError> {
        let mut r = LatencyRecorder::new()?;
        let s = r.summary();
        assert_eq!((s.count, s.p50_ms, s.p99_ms, s.max_ms), (0, 0.0, 0.0, 0.0));
        r.record(Duration::ZERO);
        r.record(Duration::from_secs(3600));
        assert_eq!(r.count(), 2);
        assert!(r.quantile(1.0) <= Duration::from_secs(61));
        Ok(())
    }
}
