//! The delay before a Job re-creates pods after failures (upstream `backoffRecord`): 10 s after the
//! first failure since the last success, doubling per further failure, capped at 6 minutes.
//!
//! Pure: must not depend on the API client.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Delay after the first failure.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// Longest delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// Failures of one Job's pods since its last success, kept in memory per Job as upstream does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    pub failures_after_last_success: u32,
    pub last_failure: Option<Timestamp>,
}

impl BackoffRecord {
    /// The record after a sync that newly saw `succeeded` successes and failures finishing at `failed`.
    pub fn update(self, succeeded: usize, failed: &[Timestamp]) -> Self {
        let mut next = if succeeded > 0 { Self::default() } else { self };
        for at in failed {
            next.failures_after_last_success = next.failures_after_last_success.saturating_add(1);
            next.last_failure = Some(next.last_failure.map_or(*at, |l| l.max(*at)));
        }
        next
    }

    /// How long pod creation must still wait at `now`.
    pub fn remaining(&self, now: Timestamp) -> Duration {
        let (n, Some(last)) = (self.failures_after_last_success, self.last_failure) else { return Duration::ZERO };
        if n == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(n.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
        let delay = DEFAULT_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF);
        let elapsed = now.duration_since(last);
        if elapsed < SignedDuration::ZERO {
            return delay;
        }
        delay.saturating_sub(Duration::try_from(elapsed).unwrap_or(Duration::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_per_failure_is_capped_and_resets_on_success() {
        let t0 = Timestamp::from_second(1_000).expect("valid");
        let at = |s: i64| t0 + SignedDuration::from_secs(s);
        let cases: &[(&[i64], usize, i64, u64)] = &[
            // (failure times, successes, now, expected remaining seconds)
            (&[], 0, 0, 0),
            (&[0], 0, 0, 10),
            (&[0], 0, 4, 6),
            (&[0], 0, 11, 0),
            (&[0, 0], 0, 0, 20),
            (&[0, 0, 0], 0, 5, 35),
            (&[0; 10], 0, 0, 360),
            (&[0, 0], 1, 0, 20),
        ];
        for (failed, succeeded, now, want) in cases {
            let times: Vec<Timestamp> = failed.iter().map(|s| at(*s)).collect();
            let r = BackoffRecord::default().update(*succeeded, &times);
            assert_eq!(r.remaining(at(*now)), Duration::from_secs(*want), "{failed:?} {succeeded} {now}");
        }
        let r = BackoffRecord::default().update(0, &[at(0)]).update(1, &[]);
        assert_eq!(r.remaining(at(0)), Duration::ZERO, "a success resets the back-off");
    }
}
