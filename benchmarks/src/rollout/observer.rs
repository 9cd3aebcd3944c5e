//! What the pod and Deployment watches show, turned into `rollout-bench`'s figures: per pod its
//! template hash, binding, readiness and termination; the live/ready counts after every pod event;
//! the milestones of the running phase (creation or rolling update) and the extremes a rolling update
//! must keep within its bounds. Pure: every event comes with the instant it was read.
//!
//! A namespace watch delivers pod events in store order, so the counts after each event are a state
//! the store really had: the maximum and minimum over them are exact, not sampled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::api::watch_follow::{EventKind, Versioned};

/// The label the ReplicaSet controller puts on each pod, naming its template.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
}

/// The fields of a pod the benchmark reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodObject {
    #[serde(default)]
    pub metadata: PodMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub resource_version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub deletion_timestamp: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub node_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl Versioned for PodObject {
    fn resource_version(&self) -> Option<&str> {
        Some(&self.metadata.resource_version)
    }
}

/// The fields of a Deployment the benchmark reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeploymentObject {
    #[serde(default)]
    pub metadata: DeploymentMeta,
    #[serde(default)]
    pub status: DeploymentStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentMeta {
    #[serde(default)]
    pub resource_version: String,
    #[serde(default)]
    pub generation: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(default)]
    pub observed_generation: i64,
    #[serde(default)]
    pub replicas: i64,
    #[serde(default)]
    pub updated_replicas: i64,
    #[serde(default)]
    pub ready_replicas: i64,
    #[serde(default)]
    pub available_replicas: i64,
    #[serde(default, skip_serializing)]
    pub conditions: Vec<Condition>,
}

impl Versioned for DeploymentObject {
    fn resource_version(&self) -> Option<&str> {
        Some(&self.metadata.resource_version)
    }
}

impl DeploymentObject {
    fn observed(&self, min_generation: i64) -> bool {
        let observed = self.status.observed_generation;
        observed >= self.metadata.generation && observed >= min_generation
    }

    fn condition_true(&self, kind: &str) -> bool {
        self.status.conditions.iter().any(|c| c.kind == kind && c.status == "True")
    }

    /// Created and Available: `Available=True` with every replica updated and available.
    pub fn is_available(&self, replicas: i64, min_generation: i64) -> bool {
        let s = &self.status;
        self.observed(min_generation)
            && self.condition_true("Available")
            && s.updated_replicas == replicas
            && s.available_replicas == replicas
    }

    /// `kubectl rollout status` says "successfully rolled out": the controller has seen the latest
    /// spec, every replica is updated and available and no old replica is left.
    pub fn is_rolled_out(&self, replicas: i64, min_generation: i64) -> bool {
        let s = &self.status;
        self.observed(min_generation)
            && s.updated_replicas == replicas
            && s.replicas == s.updated_replicas
            && s.available_replicas == replicas
    }
}

/// Which phase is being measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    /// From creating the Deployment to Available.
    Create,
    /// From changing its template to the rollout being complete.
    Update,
}

#[derive(Debug, Clone)]
struct PodState {
    hash: Option<String>,
    bound: bool,
    ready: bool,
    terminating: bool,
    first_seen: Instant,
    bound_at: Option<Instant>,
}

/// Counts over the pods, kept up to date event by event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Pods in the store, terminating ones included.
    pub present: usize,
    /// Pods not being deleted (what the ReplicaSets count).
    pub live: usize,
    /// Live pods that are Ready.
    pub ready: usize,
    /// Live pods of the phase's template that are bound.
    pub phase_bound: usize,
    /// Live pods of the phase's template that are Ready.
    pub phase_ready: usize,
    /// Pods (terminating ones included) of the template being replaced.
    pub old_present: usize,
}

impl Tally {
    fn of(pod: &PodState, old_hash: Option<&str>) -> Self {
        let live = !pod.terminating;
        let old = old_hash.is_some() && pod.hash.as_deref() == old_hash;
        let phase = !old;
        Self {
            present: 1,
            live: usize::from(live),
            ready: usize::from(live && pod.ready),
            phase_bound: usize::from(live && phase && pod.bound),
            phase_ready: usize::from(live && phase && pod.ready),
            old_present: usize::from(old),
        }
    }

    fn add(&mut self, o: Self) {
        self.present += o.present;
        self.live += o.live;
        self.ready += o.ready;
        self.phase_bound += o.phase_bound;
        self.phase_ready += o.phase_ready;
        self.old_present += o.old_present;
    }

    fn sub(&mut self, o: Self) {
        self.present -= o.present;
        self.live -= o.live;
        self.ready -= o.ready;
        self.phase_bound -= o.phase_bound;
        self.phase_ready -= o.phase_ready;
        self.old_present -= o.old_present;
    }
}

/// The figures of one phase; times are since the phase started (the request that began it was
/// about to be sent).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PhaseFigures {
    /// Pods of the phase's template seen (created) so far.
    pub pods_created: usize,
    pub first_pod_created: Option<Duration>,
    /// When the `replicas`-th pod of the phase's template was seen.
    pub all_created: Option<Duration>,
    pub all_bound: Option<Duration>,
    pub all_ready: Option<Duration>,
    /// Update only: when no pod of the old template was left, terminating ones included.
    pub old_pods_gone: Option<Duration>,
    /// Create: Available; update: rolled out (`kubectl rollout status` semantics).
    pub deployment_done: Option<Duration>,
    /// Per pod: first seen to bound, and bound to Ready.
    #[serde(skip)]
    pub created_to_bound: Vec<Duration>,
    #[serde(skip)]
    pub bound_to_ready: Vec<Duration>,
    /// Extremes over every pod event of the phase (and the state when it began).
    pub max_live: usize,
    pub min_ready: usize,
    pub max_present: usize,
}

#[derive(Debug)]
struct Phase {
    kind: PhaseKind,
    started: Instant,
    replicas: usize,
    old_hash: Option<String>,
    min_generation: i64,
    figures: PhaseFigures,
    seen: HashSet<String>,
}

/// Everything the watches showed. See the module docs.
#[derive(Debug, Default)]
pub struct Observer {
    pods: HashMap<String, PodState>,
    tally: Tally,
    deployment: Option<DeploymentObject>,
    phase: Option<Phase>,
}

fn is_ready(pod: &PodObject) -> bool {
    pod.status.conditions.iter().any(|c| c.kind == "Ready" && c.status == "True")
}

impl Observer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts measuring a phase at `started`. Pods of `old_hash` are the ones being replaced; all
    /// others count as the phase's. The Deployment must have observed at least `min_generation`.
    pub fn begin(
        &mut self,
        kind: PhaseKind,
        started: Instant,
        replicas: usize,
        old_hash: Option<String>,
        min_generation: i64,
    ) {
        self.tally = Tally::default();
        for pod in self.pods.values() {
            self.tally.add(Tally::of(pod, old_hash.as_deref()));
        }
        let figures = PhaseFigures {
            max_live: self.tally.live,
            min_ready: self.tally.ready,
            max_present: self.tally.present,
            ..PhaseFigures::default()
        };
        // Pods of the phase's template already there (none, normally) count as created by it.
        let seen = self
            .pods
            .iter()
            .filter(|(_, p)| old_hash.is_none() || p.hash != old_hash)
            .map(|(n, _)| n.clone())
            .collect();
        self.phase = Some(Phase { kind, started, replicas, old_hash, min_generation, figures, seen });
    }

    /// Ends the phase and returns its figures.
    pub fn finish(&mut self) -> Option<PhaseFigures> {
        self.phase.take().map(|p| p.figures)
    }

    /// Whether the phase is over: the Deployment is done and the pods agree (all of the new template
    /// Ready, none of the old one left).
    pub fn phase_done(&self) -> bool {
        self.phase.as_ref().is_some_and(|p| {
            let f = &p.figures;
            f.deployment_done.is_some() && f.all_ready.is_some() && (p.old_hash.is_none() || f.old_pods_gone.is_some())
        })
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    pub fn figures(&self) -> Option<&PhaseFigures> {
        self.phase.as_ref().map(|p| &p.figures)
    }

    pub fn deployment_status(&self) -> Option<&DeploymentStatus> {
        self.deployment.as_ref().map(|d| &d.status)
    }

    pub fn deployment_generation(&self) -> i64 {
        self.deployment.as_ref().map_or(0, |d| d.metadata.generation)
    }

    /// The template hashes of the live pods, with their counts.
    pub fn live_hashes(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for pod in self.pods.values().filter(|p| !p.terminating) {
            *out.entry(pod.hash.clone().unwrap_or_default()).or_insert(0) += 1;
        }
        out
    }

    /// A pod event read at `at`.
    pub fn pod_event(&mut self, kind: EventKind, pod: PodObject, at: Instant) {
        let name = pod.metadata.name.clone();
        let old_hash = self.phase.as_ref().and_then(|p| p.old_hash.clone());
        let previous = self.pods.remove(&name);
        if let Some(p) = &previous {
            self.tally.sub(Tally::of(p, old_hash.as_deref()));
        }
        if kind != EventKind::Deleted {
            let bound = pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
            let state = PodState {
                hash: pod.metadata.labels.get(TEMPLATE_HASH_LABEL).cloned(),
                bound,
                ready: is_ready(&pod),
                terminating: pod.metadata.deletion_timestamp.is_some(),
                first_seen: previous.as_ref().map_or(at, |p| p.first_seen),
                bound_at: previous.as_ref().and_then(|p| p.bound_at).or(bound.then_some(at)),
            };
            self.tally.add(Tally::of(&state, old_hash.as_deref()));
            self.record(&name, previous.as_ref(), &state, at);
            self.pods.insert(name, state);
        }
        self.update_extremes(at);
    }

    /// Phase figures for one pod's change from `previous` to `now`.
    fn record(&mut self, name: &str, previous: Option<&PodState>, now: &PodState, at: Instant) {
        let Some(phase) = self.phase.as_mut() else { return };
        if phase.old_hash.is_some() && now.hash == phase.old_hash {
            return;
        }
        let since = at.saturating_duration_since(phase.started);
        let f = &mut phase.figures;
        if phase.seen.insert(name.to_string()) {
            f.pods_created = phase.seen.len();
            f.first_pod_created.get_or_insert(since);
            if f.pods_created >= phase.replicas {
                f.all_created.get_or_insert(since);
            }
        }
        let was_bound = previous.is_some_and(|p| p.bound);
        let was_ready = previous.is_some_and(|p| p.ready);
        if now.bound && !was_bound {
            f.created_to_bound.push(at.saturating_duration_since(now.first_seen));
        }
        if now.ready && !was_ready {
            f.bound_to_ready.push(at.saturating_duration_since(now.bound_at.unwrap_or(now.first_seen)));
        }
    }

    fn update_extremes(&mut self, at: Instant) {
        let t = self.tally;
        let Some(phase) = self.phase.as_mut() else { return };
        let since = at.saturating_duration_since(phase.started);
        let f = &mut phase.figures;
        f.max_live = f.max_live.max(t.live);
        f.min_ready = f.min_ready.min(t.ready);
        f.max_present = f.max_present.max(t.present);
        if t.phase_bound >= phase.replicas {
            f.all_bound.get_or_insert(since);
        }
        if t.phase_ready >= phase.replicas {
            f.all_ready.get_or_insert(since);
        }
        if phase.old_hash.is_some() && t.old_present == 0 {
            f.old_pods_gone.get_or_insert(since);
        }
    }

    /// A Deployment event read at `at`.
    pub fn deployment_event(&mut self, kind: EventKind, deployment: DeploymentObject, at: Instant) {
        if kind == EventKind::Deleted {
            self.deployment = None;
            return;
        }
        if let Some(phase) = self.phase.as_mut() {
            let replicas = i64::try_from(phase.replicas).unwrap_or(i64::MAX);
            let done = match phase.kind {
                PhaseKind::Create => deployment.is_available(replicas, phase.min_generation),
                PhaseKind::Update => deployment.is_rolled_out(replicas, phase.min_generation),
            };
            if done {
                phase.figures.deployment_done.get_or_insert(at.saturating_duration_since(phase.started));
            }
        }
        self.deployment = Some(deployment);
    }
}

/// The `q` quantile (0..=1) of `values`, by the nearest-rank method.
pub fn quantile(values: &[Duration], q: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, hash: &str, node: Option<&str>, ready: bool, terminating: bool) -> PodObject {
        PodObject {
            metadata: PodMeta {
                name: name.into(),
                resource_version: "1".into(),
                labels: BTreeMap::from([(TEMPLATE_HASH_LABEL.to_string(), hash.to_string())]),
                deletion_timestamp: terminating.then(|| "2026-01-01T00:00:00Z".to_string()),
            },
            spec: PodSpec { node_name: node.map(str::to_string) },
            status: PodStatus {
                conditions: vec![Condition {
                    kind: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                }],
            },
        }
    }

    fn deployment(
        generation: i64,
        observed: i64,
        replicas: i64,
        updated: i64,
        available: i64,
        avail_cond: bool,
    ) -> DeploymentObject {
        DeploymentObject {
            metadata: DeploymentMeta { resource_version: "1".into(), generation },
            status: DeploymentStatus {
                observed_generation: observed,
                replicas,
                updated_replicas: updated,
                ready_replicas: available,
                available_replicas: available,
                conditions: vec![Condition {
                    kind: "Available".into(),
                    status: if avail_cond { "True" } else { "False" }.into(),
                }],
            },
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn creation_milestones_come_from_the_pod_and_deployment_watches() {
        let t0 = Instant::now();
        let mut o = Observer::new();
        o.begin(PhaseKind::Create, t0, 2, None, 1);
        o.pod_event(EventKind::Added, pod("a", "h1", None, false, false), t0 + ms(10));
        o.pod_event(EventKind::Added, pod("b", "h1", None, false, false), t0 + ms(20));
        o.pod_event(EventKind::Modified, pod("a", "h1", Some("n1"), false, false), t0 + ms(30));
        o.pod_event(EventKind::Modified, pod("b", "h1", Some("n2"), false, false), t0 + ms(40));
        o.pod_event(EventKind::Modified, pod("a", "h1", Some("n1"), true, false), t0 + ms(50));
        // A repeated event changes nothing.
        o.pod_event(EventKind::Modified, pod("a", "h1", Some("n1"), true, false), t0 + ms(55));
        o.deployment_event(EventKind::Modified, deployment(1, 1, 2, 2, 1, false), t0 + ms(56));
        assert!(!o.phase_done());
        o.pod_event(EventKind::Modified, pod("b", "h1", Some("n2"), true, false), t0 + ms(60));
        o.deployment_event(EventKind::Modified, deployment(1, 1, 2, 2, 2, true), t0 + ms(70));
        assert!(o.phase_done());
        let f = o.finish().expect("phase");
        assert_eq!(f.pods_created, 2);
        assert_eq!(
            (f.first_pod_created, f.all_created, f.all_bound, f.all_ready, f.deployment_done),
            (Some(ms(10)), Some(ms(20)), Some(ms(40)), Some(ms(60)), Some(ms(70)))
        );
        assert_eq!(f.created_to_bound, vec![ms(20), ms(20)]);
        assert_eq!(f.bound_to_ready, vec![ms(20), ms(20)]);
        assert_eq!((f.max_live, f.min_ready), (2, 0));
    }

    #[test]
    fn a_rolling_update_tracks_surge_and_availability_at_every_event() {
        let t0 = Instant::now();
        let mut o = Observer::new();
        for name in ["a", "b"] {
            o.pod_event(EventKind::Added, pod(name, "old", Some("n"), true, false), t0);
        }
        o.deployment_event(EventKind::Modified, deployment(1, 1, 2, 2, 2, true), t0);
        let t1 = t0 + ms(100);
        o.begin(PhaseKind::Update, t1, 2, Some("old".into()), 2);
        assert_eq!(o.tally().old_present, 2);
        // A stale status of the first generation does not count as rolled out.
        o.deployment_event(EventKind::Modified, deployment(1, 1, 2, 2, 2, true), t1 + ms(1));
        o.pod_event(EventKind::Added, pod("c", "new", None, false, false), t1 + ms(10));
        o.pod_event(EventKind::Modified, pod("a", "old", Some("n"), true, true), t1 + ms(20));
        o.pod_event(EventKind::Modified, pod("c", "new", Some("n"), true, false), t1 + ms(30));
        o.pod_event(EventKind::Deleted, pod("a", "old", Some("n"), true, true), t1 + ms(40));
        o.pod_event(EventKind::Added, pod("d", "new", Some("n"), true, false), t1 + ms(50));
        o.pod_event(EventKind::Modified, pod("b", "old", Some("n"), false, true), t1 + ms(60));
        o.deployment_event(EventKind::Modified, deployment(2, 2, 2, 2, 2, true), t1 + ms(65));
        assert!(!o.phase_done(), "an old pod is still terminating");
        o.pod_event(EventKind::Deleted, pod("b", "old", Some("n"), false, true), t1 + ms(70));
        assert!(o.phase_done());
        let f = o.finish().expect("phase");
        assert_eq!(f.pods_created, 2);
        assert_eq!((f.all_created, f.all_ready, f.old_pods_gone), (Some(ms(50)), Some(ms(50)), Some(ms(70))));
        assert_eq!(f.deployment_done, Some(ms(65)));
        // Live: a, b, c after the first new pod; ready dips to 1 when a terminates before c is Ready.
        assert_eq!((f.max_live, f.min_ready, f.max_present), (3, 1, 3));
    }

    #[test]
    fn rollout_status_needs_the_new_generation_and_no_old_replicas() {
        let d = deployment(3, 3, 12, 10, 10, true);
        assert!(!d.is_rolled_out(10, 3), "two old replicas are left");
        assert!(deployment(3, 3, 10, 10, 10, true).is_rolled_out(10, 3));
        assert!(!deployment(3, 2, 10, 10, 10, true).is_rolled_out(10, 3));
        assert!(!deployment(3, 3, 10, 10, 10, true).is_rolled_out(10, 4));
        assert!(!deployment(1, 1, 10, 10, 10, false).is_available(10, 1));
        assert!(deployment(1, 1, 10, 10, 10, true).is_available(10, 1));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(quantile(&values, 0.5), Some(ms(50)));
        assert_eq!(quantile(&values, 0.99), Some(ms(99)));
        assert_eq!(quantile(&values, 1.0), Some(ms(100)));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
