//! Why and how long a container is given to stop, as the kubelet computes it (pure): the grace
//! period of a kill (the pod's deletion grace when it is being deleted; a failed probe's own
//! `terminationGracePeriodSeconds`; else the pod's), the time a `preStop` hook took deducted from it
//! (whole seconds, never below 2 s, so a container always gets a moment between SIGTERM and SIGKILL),
//! and the `Killing` event's message.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::plan::restart_policy;

/// The least time between StopContainer's SIGTERM and its SIGKILL (the kubelet's
/// `minimumGracePeriodInSeconds`).
pub const MIN_STOP_GRACE_SECONDS: i64 = 2;
/// The grace of a pod without `terminationGracePeriodSeconds` (the API's default).
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Why a container is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The pod is being deleted.
    Deletion,
    /// Its liveness probe failed past the threshold.
    LivenessProbe,
    /// Its startup probe failed past the threshold.
    StartupProbe,
    /// Its postStart hook failed.
    PostStartHook,
}

/// The grace period, in seconds, of stopping container `c` of `pod` for `reason` (before a preStop
/// hook takes its share).
pub fn kill_grace_seconds(pod: &Pod, c: &Container, reason: StopReason) -> i64 {
    if let Some(deleting) = pod.metadata.deletion_grace_period_seconds {
        return deleting.max(0);
    }
    let probe = match reason {
        StopReason::LivenessProbe => c.liveness_probe.as_ref(),
        StopReason::StartupProbe => c.startup_probe.as_ref(),
        StopReason::Deletion | StopReason::PostStartHook => None,
    };
    probe
        .and_then(|p| p.termination_grace_period_seconds)
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(DEFAULT_GRACE_SECONDS)
        .max(0)
}

/// The grace StopContainer gets out of `grace_seconds` after a preStop hook ran for `hook_took`
/// (`None`: no hook): the whole seconds the hook took are deducted, and at least 2 s remain.
pub fn stop_grace(grace_seconds: i64, hook_took: Option<Duration>) -> Duration {
    let used = hook_took.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let remaining = grace_seconds.saturating_sub(used).max(MIN_STOP_GRACE_SECONDS);
    Duration::from_secs(u64::try_from(remaining).unwrap_or(0))
}

/// The message of the `Killing` event for stopping container `name` of `pod`.
pub fn killing_message(pod: &Pod, name: &str, reason: StopReason) -> String {
    let restarts = if restart_policy(pod) == "Never" { "" } else { ", will be restarted" };
    match reason {
        StopReason::Deletion => format!("Stopping container {name}"),
        StopReason::LivenessProbe => format!("Container {name} failed liveness probe{restarts}"),
        StopReason::StartupProbe => format!("Container {name} failed startup probe{restarts}"),
        StopReason::PostStartHook => "FailedPostStartHook".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec_grace: Option<i64>, deletion_grace: Option<i64>, probe_grace: Option<i64>, policy: &str) -> Pod {
        let mut probe = serde_json::json!({"exec": {"command": ["true"]}});
        if let Some(g) = probe_grace {
            probe["terminationGracePeriodSeconds"] = g.into();
        }
        let mut p = serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "c", "livenessProbe": probe}]}
        });
        if let Some(g) = spec_grace {
            p["spec"]["terminationGracePeriodSeconds"] = g.into();
        }
        if let Some(g) = deletion_grace {
            p["metadata"]["deletionGracePeriodSeconds"] = g.into();
        }
        serde_json::from_value(p).expect("pod")
    }

    #[test]
    fn kill_grace_follows_deletion_then_probe_then_pod() {
        use StopReason::*;
        let cases = [
            ("deletion grace wins", pod(Some(30), Some(5), Some(1), "Always"), LivenessProbe, 5),
            ("the failed probe's own grace", pod(Some(30), None, Some(1), "Always"), LivenessProbe, 1),
            ("another reason ignores the probe's grace", pod(Some(30), None, Some(1), "Always"), StartupProbe, 30),
            ("the pod's grace", pod(Some(7), None, None, "Always"), LivenessProbe, 7),
            ("the default", pod(None, None, None, "Always"), PostStartHook, 30),
            ("negative means zero", pod(Some(30), Some(-1), None, "Always"), Deletion, 0),
        ];
        for (name, p, reason, expected) in cases {
            let c = &p.spec.as_ref().expect("spec").containers[0];
            assert_eq!(kill_grace_seconds(&p, c, reason), expected, "{name}");
        }
    }

    #[test]
    fn a_pre_stop_hook_uses_up_grace_but_two_seconds_remain() {
        let s = Duration::from_secs;
        let cases = [
            (30, None, s(30)),
            (30, Some(Duration::from_millis(900)), s(30)),
            (30, Some(s(10)), s(20)),
            (5, Some(Duration::from_millis(4_500)), s(2)),
            (5, Some(s(9)), s(2)),
            (0, None, s(2)),
            (1, None, s(2)),
        ];
        for (grace, took, expected) in cases {
            assert_eq!(stop_grace(grace, took), expected, "grace {grace} hook {took:?}");
        }
    }

    #[test]
    fn killing_messages_say_why_and_whether_it_restarts() {
        let always = pod(None, None, None, "Always");
        let never = pod(None, None, None, "Never");
        assert_eq!(
            killing_message(&always, "c", StopReason::LivenessProbe),
            "Container c failed liveness probe, will be restarted"
        );
        assert_eq!(killing_message(&never, "c", StopReason::LivenessProbe), "Container c failed liveness probe");
        assert_eq!(
            killing_message(&always, "c", StopReason::StartupProbe),
            "Container c failed startup probe, will be restarted"
        );
        assert_eq!(killing_message(&always, "c", StopReason::Deletion), "Stopping container c");
        assert_eq!(killing_message(&always, "c", StopReason::PostStartHook), "FailedPostStartHook");
    }
}
