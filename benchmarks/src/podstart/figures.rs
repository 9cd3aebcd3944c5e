//! Figures of a batch of pods from their instants (pure): latency percentiles (HDR histogram, as the
//! other benches) and throughput, the pods divided by the time from the first request to the last
//! pod's milestone.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::latency::{LatencyError, LatencyRecorder, LatencySummary};

/// One batch: per-pod latencies and the batch's throughput.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchFigures {
    pub pods: usize,
    pub latency: LatencySummary,
    /// From the first request to the last pod's milestone.
    pub seconds: f64,
    pub pods_per_second: f64,
}

impl BatchFigures {
    /// From `(request, milestone)` instants, one pair per pod.
    pub fn from_intervals(intervals: &[(Instant, Instant)]) -> Result<Self, LatencyError> {
        let latency = summarize(intervals.iter().map(|(from, to)| to.saturating_duration_since(*from)))?;
        let first = intervals.iter().map(|(from, _)| *from).min();
        let last = intervals.iter().map(|(_, to)| *to).max();
        let seconds = match (first, last) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        Ok(Self { pods: intervals.len(), latency, seconds, pods_per_second: rate(intervals.len(), seconds) })
    }
}

/// Count, mean, p50, p99 and max of `durations`.
pub fn summarize(durations: impl IntoIterator<Item = Duration>) -> Result<LatencySummary, LatencyError> {
    let mut recorder = LatencyRecorder::new()?;
    for d in durations {
        recorder.record(d);
    }
    Ok(recorder.summary())
}

/// `n / seconds`, 0 for an empty span.
pub fn rate(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_and_throughput_of_a_batch() -> Result<(), LatencyError> {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 4 pods sent at 0, 10, 20, 30 ms; each ready 100 ms later except the last (400 ms).
        let intervals =
            [(t0, t0 + ms(100)), (t0 + ms(10), t0 + ms(110)), (t0 + ms(20), t0 + ms(120)), (t0 + ms(30), t0 + ms(430))];
        let f = BatchFigures::from_intervals(&intervals)?;
        assert_eq!(f.pods, 4);
        assert!((f.seconds - 0.43).abs() < 1e-9, "{f:?}");
        assert!((f.pods_per_second - 4.0 / 0.43).abs() < 1e-6, "{f:?}");
        assert!((f.latency.p50_ms - 100.0).abs() < 0.2, "{f:?}");
        assert!((f.latency.p99_ms - 400.0).abs() < 0.5, "{f:?}");
        assert!((f.latency.max_ms - 400.0).abs() < 0.5, "{f:?}");
        Ok(())
    }

    #[test]
    fn an_empty_batch_has_no_rate() -> Result<(), LatencyError> {
        let f = BatchFigures::from_intervals(&[])?;
        assert_eq!((f.pods, f.seconds, f.pods_per_second, f.latency.count), (0, 0.0, 0.0, 0));
        assert_eq!(rate(5, 0.0), 0.0);
        Ok(())
    }
}
