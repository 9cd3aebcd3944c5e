//! Which probes a container has and their timing, with the API's defaults applied (period 10 s,
//! timeout 1 s, success threshold 1, failure threshold 3; liveness and startup probes always need
//! one success). Pure.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};

/// The three kinds of container probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Startup, ProbeKind::Liveness, ProbeKind::Readiness];

    /// How kubelet messages name the kind (`Liveness probe failed: ...`).
    pub fn title(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
        }
    }

    /// The container's probe of this kind, if it has one.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            Self::Startup => c.startup_probe.as_ref(),
            Self::Liveness => c.liveness_probe.as_ref(),
            Self::Readiness => c.readiness_probe.as_ref(),
        }
    }

    /// Whether a failure past the threshold kills the container.
    pub fn kills(self) -> bool {
        matches!(self, Self::Startup | Self::Liveness)
    }
}

/// A probe's timing and thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

fn seconds(value: Option<i32>, default: u64, min: u64) -> Duration {
    Duration::from_secs(value.map_or(default, |v| u64::try_from(v).unwrap_or(0)).max(min))
}

fn count(value: Option<i32>, default: u32) -> u32 {
    value.map_or(default, |v| u32::try_from(v).unwrap_or(0)).max(1)
}

impl ProbeSettings {
    /// The settings of `probe` as a probe of kind `kind` (zero or negative values mean the minimum).
    pub fn of(kind: ProbeKind, probe: &Probe) -> Self {
        let success = if kind == ProbeKind::Readiness { count(probe.success_threshold, 1) } else { 1 };
        Self {
            initial_delay: seconds(probe.initial_delay_seconds, 0, 0),
            period: seconds(probe.period_seconds, 10, 1),
            timeout: seconds(probe.timeout_seconds, 1, 1),
            success_threshold: success,
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }

    /// How long to wait before the first probe of a container that has been running for
    /// `running_for`: probes are disabled for `initialDelaySeconds` after the container starts.
    pub fn first_probe_in(&self, running_for: Duration) -> Duration {
        self.initial_delay.saturating_sub(running_for)
    }

    /// How long until the next tick of a probe clock that ticks every period from when the pod's
    /// worker started, `since_start` ago. The kubelet's probe workers tick from when the pod was
    /// added, so a container's first probe lands somewhere within a period after it started (a
    /// server gets a moment to listen), and a restarted container keeps the pod's rhythm.
    pub fn next_tick_in(&self, since_start: Duration) -> Duration {
        let period = self.period.as_nanos().max(1);
        let into = since_start.as_nanos() % period;
        let wait = if into == 0 { 0 } else { period - into };
        Duration::from_nanos(u64::try_from(wait).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).expect("probe")
    }

    #[test]
    fn defaults_and_explicit_values() {
        let cases = [
            (ProbeKind::Readiness, serde_json::json!({}), ProbeSettings::default()),
            (
                ProbeKind::Readiness,
                serde_json::json!({"initialDelaySeconds": 5, "periodSeconds": 2, "timeoutSeconds": 3,
                    "successThreshold": 2, "failureThreshold": 4}),
                ProbeSettings {
                    initial_delay: Duration::from_secs(5),
                    period: Duration::from_secs(2),
                    timeout: Duration::from_secs(3),
                    success_threshold: 2,
                    failure_threshold: 4,
                },
            ),
            // Liveness and startup probes need one success whatever the spec says.
            (
                ProbeKind::Liveness,
                serde_json::json!({"successThreshold": 3}),
                ProbeSettings { success_threshold: 1, ..Default::default() },
            ),
            // Zero or negative values fall back to the minimum.
            (
                ProbeKind::Startup,
                serde_json::json!({"periodSeconds": 0, "timeoutSeconds": -1, "failureThreshold": 0,
                    "initialDelaySeconds": -3}),
                ProbeSettings { period: Duration::from_secs(1), failure_threshold: 1, ..Default::default() },
            ),
        ];
        for (kind, spec, expected) in cases {
            assert_eq!(ProbeSettings::of(kind, &probe(spec.clone())), expected, "{kind:?} {spec}");
        }
    }

    #[test]
    fn the_initial_delay_counts_from_the_container_start() {
        let s = ProbeSettings { initial_delay: Duration::from_secs(10), ..Default::default() };
        assert_eq!(s.first_probe_in(Duration::from_secs(3)), Duration::from_secs(7));
        assert_eq!(s.first_probe_in(Duration::from_secs(30)), Duration::ZERO);
        assert_eq!(ProbeSettings::default().first_probe_in(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn probes_keep_the_pods_rhythm() {
        let s = ProbeSettings { period: Duration::from_secs(10), ..Default::default() };
        let ms = Duration::from_millis;
        let cases = [(ms(0), ms(0)), (ms(2_500), ms(7_500)), (ms(10_000), ms(0)), (ms(23_000), ms(7_000))];
        for (since, expected) in cases {
            assert_eq!(s.next_tick_in(since), expected, "{since:?}");
        }
    }

    #[test]
    fn kinds_find_their_probe_on_the_container() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "livenessProbe": {"periodSeconds": 7}
        }))
        .expect("container");
        assert_eq!(ProbeKind::Liveness.of(&c).and_then(|p| p.period_seconds), Some(7));
        assert!(ProbeKind::Readiness.of(&c).is_none());
        assert!(ProbeKind::Liveness.kills() && ProbeKind::Startup.kills() && !ProbeKind::Readiness.kills());
    }
}
