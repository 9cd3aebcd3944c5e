//! The agent's memory while it runs many pods: `VmRSS` sampled once a second for a while (the last
//! and the largest sample) and `VmHWM`, its peak since it started; the replicas' memory for context.

use std::time::Duration;

use serde::Serialize;

use super::figures::BatchFigures;
use crate::cluster::MemberMemory;
use crate::rss::{MemoryStatus, RssError};

/// The agent's memory over the sampling period, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgentMemory {
    /// `VmRSS` of the last sample.
    pub rss_kib: u64,
    /// Largest `VmRSS` sampled.
    pub rss_max_kib: u64,
    /// `VmHWM` at the last sample (peak since the agent started).
    pub hwm_kib: u64,
    pub samples: usize,
}

impl AgentMemory {
    /// From samples in time order; `None` without samples.
    pub fn from_samples(samples: &[MemoryStatus]) -> Option<Self> {
        let last = samples.last()?;
        Some(Self {
            rss_kib: last.rss_kib,
            rss_max_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(last.rss_kib),
            hwm_kib: last.hwm_kib,
            samples: samples.len(),
        })
    }
}

/// The memory phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub pods: usize,
    /// The pods created at once: create sent -> Running and Ready.
    pub start: BatchFigures,
    pub agent: AgentMemory,
    /// The agent with no pods, right after its node became Ready.
    pub agent_idle: Option<MemoryStatus>,
    pub replicas: Vec<MemberMemory>,
    /// The pods deleted at once: delete sent -> gone.
    pub deletion: BatchFigures,
}

/// Samples `pid` once a second for `period` (at least once).
pub async fn sample(pid: u32, period: Duration) -> Result<Vec<MemoryStatus>, RssError> {
    let mut samples = vec![MemoryStatus::read(pid)?];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let end = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        samples.push(MemoryStatus::read(pid)?);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_and_largest_sample() {
        let s = |rss_kib, hwm_kib| MemoryStatus { rss_kib, hwm_kib };
        let m = AgentMemory::from_samples(&[s(100, 120), s(150, 150), s(130, 150)]).expect("samples");
        assert_eq!(m, AgentMemory { rss_kib: 130, rss_max_kib: 150, hwm_kib: 150, samples: 3 });
        assert_eq!(AgentMemory::from_samples(&[]), None);
    }

    #[tokio::test]
    async fn samples_this_process() -> Result<(), RssError> {
        let samples = sample(std::process::id(), Duration::ZERO).await?;
        assert_eq!(samples.len(), 1);
        assert!(samples[0].rss_kib > 0);
        Ok(())
    }
}
