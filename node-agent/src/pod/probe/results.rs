//! The published probe results of a pod's containers, keyed by container id (a restarted container
//! starts with none), and what they mean for a running container: started, ready, or to be killed.
//! Plain data, handed to the planner and the status code. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;

use super::settings::ProbeKind;
use super::state::Verdict;

/// Published results by (container id, probe kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeResults {
    verdicts: BTreeMap<(String, ProbeKind), Verdict>,
}

impl ProbeResults {
    /// Sets a result; whether it changed.
    pub fn set(&mut self, container_id: &str, kind: ProbeKind, verdict: Verdict) -> bool {
        self.verdicts.insert((container_id.to_string(), kind), verdict) != Some(verdict)
    }

    pub fn get(&self, container_id: &str, kind: ProbeKind) -> Option<Verdict> {
        self.verdicts.get(&(container_id.to_string(), kind)).copied()
    }

    /// Forgets the results of containers for which `keep` is false.
    pub fn retain_containers(&mut self, keep: impl Fn(&str) -> bool) {
        self.verdicts.retain(|(id, _), _| keep(id));
    }

    /// Whether running container `id` (of spec `c`) has started: at once without a startup probe,
    /// else once the startup probe passed.
    pub fn started(&self, c: &Container, id: &str) -> bool {
        c.startup_probe.is_none() || self.get(id, ProbeKind::Startup) == Some(Verdict::Success)
    }

    /// Whether running container `id` is ready: started, and its readiness probe (if any) passed.
    pub fn ready(&self, c: &Container, id: &str) -> bool {
        self.started(c, id)
            && (c.readiness_probe.is_none() || self.get(id, ProbeKind::Readiness) == Some(Verdict::Success))
    }

    /// The probe whose failure means running container `id` must be killed (liveness, else startup).
    pub fn kill_reason(&self, c: &Container, id: &str) -> Option<ProbeKind> {
        [ProbeKind::Liveness, ProbeKind::Startup]
            .into_iter()
            .find(|kind| kind.of(c).is_some() && self.get(id, *kind) == Some(Verdict::Failure))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(probes: &[&str]) -> Container {
        let mut c = serde_json::json!({"name": "c"});
        for p in probes {
            c[*p] = serde_json::json!({"exec": {"command": ["true"]}});
        }
        serde_json::from_value(c).expect("container")
    }

    #[test]
    fn started_ready_and_kill_follow_the_published_results() {
        use ProbeKind::*;
        use Verdict::*;
        type Case = (&'static str, Vec<&'static str>, Vec<(ProbeKind, Verdict)>, bool, bool, Option<ProbeKind>);
        let cases: Vec<Case> = vec![
            ("no probes: started and ready", vec![], vec![], true, true, None),
            ("readiness not run yet: not ready", vec!["readinessProbe"], vec![], true, false, None),
            ("readiness passed", vec!["readinessProbe"], vec![(Readiness, Success)], true, true, None),
            ("readiness failed", vec!["readinessProbe"], vec![(Readiness, Failure)], true, false, None),
            ("startup pending gates readiness", vec!["startupProbe"], vec![], false, false, None),
            (
                "startup pending, readiness passed: still not ready",
                vec!["startupProbe", "readinessProbe"],
                vec![(Readiness, Success)],
                false,
                false,
                None,
            ),
            ("startup passed", vec!["startupProbe"], vec![(Startup, Success)], true, true, None),
            ("startup failed: kill", vec!["startupProbe"], vec![(Startup, Failure)], false, false, Some(Startup)),
            ("liveness failed: kill", vec!["livenessProbe"], vec![(Liveness, Failure)], true, true, Some(Liveness)),
            ("liveness passed", vec!["livenessProbe"], vec![(Liveness, Success)], true, true, None),
            ("a result without the probe means nothing", vec![], vec![(Liveness, Failure)], true, true, None),
        ];
        for (name, probes, verdicts, started, ready, kill) in cases {
            let c = container(&probes);
            let mut r = ProbeResults::default();
            for (kind, v) in verdicts {
                r.set("id1", kind, v);
            }
            assert_eq!(r.started(&c, "id1"), started, "{name}: started");
            assert_eq!(r.ready(&c, "id1"), ready, "{name}: ready");
            assert_eq!(r.kill_reason(&c, "id1"), kill, "{name}: kill");
        }
    }

    #[test]
    fn results_belong_to_one_container_id() {
        let c = container(&["readinessProbe"]);
        let mut r = ProbeResults::default();
        assert!(r.set("old", ProbeKind::Readiness, Verdict::Success));
        assert!(!r.set("old", ProbeKind::Readiness, Verdict::Success), "same value: no change");
        assert!(!r.ready(&c, "new"), "a restarted container starts without results");
        r.retain_containers(|id| id == "new");
        assert_eq!(r.get("old", ProbeKind::Readiness), None);
    }
}
