//! `rollout-bench`'s result: per phase the milestones, pod rates and latencies, the rolling update's
//! extremes against its bounds, and where the CPU, reconcile passes and API writes went; rendered as
//! text tables and serialized as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use super::objects::RollingBounds;
use super::observer::{quantile, PhaseFigures, PhaseKind};

/// The target: the Deployment Available within this long.
pub const AVAILABLE_TARGET: Duration = Duration::from_secs(15);

/// Request verbs that count as writes in the API table.
const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "APPLY"];

/// One phase's figures, in seconds since the phase's first request (and milliseconds for per-pod
/// latencies).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseReport {
    pub kind: PhaseKind,
    pub timed_out: bool,
    pub pods_created: usize,
    pub first_pod_created_s: Option<f64>,
    pub all_created_s: Option<f64>,
    /// Pods of the phase created per second (up to the last one).
    pub pods_created_per_s: Option<f64>,
    pub all_bound_s: Option<f64>,
    pub all_ready_s: Option<f64>,
    pub old_pods_gone_s: Option<f64>,
    /// Create: Available; update: rolled out.
    pub deployment_done_s: Option<f64>,
    pub created_to_bound_p50_ms: Option<f64>,
    pub created_to_bound_p99_ms: Option<f64>,
    pub bound_to_ready_p50_ms: Option<f64>,
    pub bound_to_ready_p99_ms: Option<f64>,
    pub max_live_pods: usize,
    pub min_ready_pods: usize,
    pub max_pods_including_terminating: usize,
    /// CPU seconds per process during the phase.
    pub cpu_seconds: BTreeMap<String, f64>,
    /// Reconcile passes per `controller/result` during the phase.
    pub reconciles: BTreeMap<String, f64>,
    /// Seconds spent reconciling, per controller.
    pub reconcile_seconds: BTreeMap<String, f64>,
    /// API requests per `verb/resource[/subresource]` during the phase, all servers.
    pub api_requests: BTreeMap<String, f64>,
    /// Their mean latency in milliseconds, as the servers measured it.
    pub api_mean_latency_ms: BTreeMap<String, f64>,
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

impl PhaseReport {
    pub fn new(kind: PhaseKind, figures: &PhaseFigures, timed_out: bool) -> Self {
        let rate = figures.all_created.filter(|d| !d.is_zero()).map(|d| figures.pods_created as f64 / d.as_secs_f64());
        Self {
            kind,
            timed_out,
            pods_created: figures.pods_created,
            first_pod_created_s: secs(figures.first_pod_created),
            all_created_s: secs(figures.all_created),
            pods_created_per_s: rate,
            all_bound_s: secs(figures.all_bound),
            all_ready_s: secs(figures.all_ready),
            old_pods_gone_s: secs(figures.old_pods_gone),
            deployment_done_s: secs(figures.deployment_done),
            created_to_bound_p50_ms: ms(quantile(&figures.created_to_bound, 0.5)),
            created_to_bound_p99_ms: ms(quantile(&figures.created_to_bound, 0.99)),
            bound_to_ready_p50_ms: ms(quantile(&figures.bound_to_ready, 0.5)),
            bound_to_ready_p99_ms: ms(quantile(&figures.bound_to_ready, 0.99)),
            max_live_pods: figures.max_live,
            min_ready_pods: figures.min_ready,
            max_pods_including_terminating: figures.max_present,
            cpu_seconds: BTreeMap::new(),
            reconciles: BTreeMap::new(),
            reconcile_seconds: BTreeMap::new(),
            api_requests: BTreeMap::new(),
            api_mean_latency_ms: BTreeMap::new(),
        }
    }

    /// Writes requested during the phase (the API table's rows).
    fn writes(&self) -> BTreeMap<String, f64> {
        only_writes(&self.api_requests)
    }

    /// Mean latency of those writes.
    fn write_latencies(&self) -> BTreeMap<String, f64> {
        only_writes(&self.api_mean_latency_ms)
    }
}

/// Reads one figure of a phase (a table cell).
type Figure = fn(&PhaseReport) -> Option<f64>;
/// Reads a p50/p99 pair of a phase.
type FigurePair = fn(&PhaseReport) -> (Option<f64>, Option<f64>);
/// Reads a per-process, per-controller or per-request breakdown of a phase.
type Breakdown = fn(&PhaseReport) -> BTreeMap<String, f64>;

fn only_writes(per_request: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    per_request
        .iter()
        .filter(|(k, _)| WRITE_VERBS.iter().any(|v| k.split('/').next() == Some(*v)))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// The whole result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RolloutReport {
    pub replicas: u32,
    pub nodes: usize,
    pub max_surge: String,
    pub max_unavailable: String,
    pub bounds: RollingBounds,
    pub namespace: String,
    /// Seconds until the simulated nodes were Ready.
    pub nodes_ready_s: f64,
    pub create: PhaseReport,
    pub update: Option<PhaseReport>,
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

impl RolloutReport {
    /// Whether the rolling update stayed within maxSurge/maxUnavailable at every observed instant.
    pub fn bounds_kept(&self) -> Option<bool> {
        self.update.as_ref().map(|u| {
            u.max_live_pods as u64 <= u64::from(self.bounds.max_pods(self.replicas))
                && u.min_ready_pods as u64 >= u64::from(self.bounds.min_available(self.replicas))
        })
    }

    /// Whether every measured phase finished.
    pub fn completed(&self) -> bool {
        !self.create.timed_out && self.update.as_ref().is_none_or(|u| !u.timed_out)
    }

    /// Human-readable tables.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let b = &self.bounds;
        let _ = writeln!(
            out,
            "rollout-bench: Deployment of {} replicas on {} simulated nodes (Ready after {:.1} s), \
             maxSurge {} = {} pods, maxUnavailable {} = {} pods",
            self.replicas, self.nodes, self.nodes_ready_s, self.max_surge, b.surge, self.max_unavailable, b.unavailable
        );
        self.render_milestones(&mut out);
        if let Some(kept) = self.bounds_kept() {
            let u = self
                .update
                .as_ref()
                .map_or((0, 0, 0), |u| (u.max_live_pods, u.min_ready_pods, u.max_pods_including_terminating));
            let verdict = if kept { "respected" } else { "VIOLATED" };
            let _ = writeln!(
                out,
                "\nrolling update bounds ({verdict}, every pod event observed): max live pods {} (bound <= {}), \
                 min ready pods {} (bound >= {}); max pods including terminating {}",
                u.0,
                b.max_pods(self.replicas),
                u.1,
                b.min_available(self.replicas),
                u.2
            );
        }
        if let Some(available) = self.create.deployment_done_s {
            let met = available <= AVAILABLE_TARGET.as_secs_f64();
            let _ = writeln!(
                out,
                "target: {} replicas Available in <= {} s: {} ({available:.2} s)",
                self.replicas,
                AVAILABLE_TARGET.as_secs(),
                if met { "met" } else { "MISSED" }
            );
        }
        self.render_costs(&mut out);
        out
    }

    fn phases(&self) -> Vec<&PhaseReport> {
        std::iter::once(&self.create).chain(self.update.as_ref()).collect()
    }

    fn render_milestones(&self, out: &mut String) {
        let phases = self.phases();
        let _ = writeln!(out, "\n{:<44}{:>12}{:>12}", "seconds since the phase's request", "create", "update");
        let rows: [(&str, Figure, usize); 7] = [
            ("first pod created", |p| p.first_pod_created_s, 2),
            ("all pods created", |p| p.all_created_s, 2),
            ("  pods created per second", |p| p.pods_created_per_s, 0),
            ("all pods bound", |p| p.all_bound_s, 2),
            ("all pods Ready", |p| p.all_ready_s, 2),
            ("old pods gone", |p| p.old_pods_gone_s, 2),
            ("Deployment Available / rolled out", |p| p.deployment_done_s, 2),
        ];
        for (label, get, decimals) in rows {
            let mut line = format!("{label:<44}");
            for p in &phases {
                let _ = write!(line, "{:>12}", cell(get(p), decimals));
            }
            let _ = writeln!(out, "{line}");
        }
        let pairs: [(&str, FigurePair); 2] = [
            ("per pod created->bound p50 / p99 (ms)", |p| (p.created_to_bound_p50_ms, p.created_to_bound_p99_ms)),
            ("per pod bound->Ready p50 / p99 (ms)", |p| (p.bound_to_ready_p50_ms, p.bound_to_ready_p99_ms)),
        ];
        for (label, get) in pairs {
            let mut line = format!("{label:<44}");
            for p in &phases {
                let (a, b) = get(p);
                let _ = write!(line, "{:>12}", format!("{} / {}", cell(a, 0), cell(b, 0)));
            }
            let _ = writeln!(out, "{line}");
        }
        for p in &phases {
            if p.timed_out {
                let _ = writeln!(out, "TIMED OUT in the {:?} phase (figures so far)", p.kind);
            }
        }
    }

    fn render_costs(&self, out: &mut String) {
        let phases = self.phases();
        let sections: [(&str, Breakdown, usize); 5] = [
            ("CPU seconds", |p| p.cpu_seconds.clone(), 1),
            ("reconcile passes (controller/result)", |p| p.reconciles.clone(), 0),
            ("seconds reconciling (controller)", |p| p.reconcile_seconds.clone(), 2),
            ("API writes (verb/resource/subresource)", PhaseReport::writes, 0),
            ("  their mean latency at the server (ms)", PhaseReport::write_latencies, 1),
        ];
        for (title, get, decimals) in sections {
            let maps: Vec<BTreeMap<String, f64>> = phases.iter().map(|p| get(p)).collect();
            let keys: BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
            if keys.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{title:<44}{:>12}{:>12}", "create", "update");
            for key in keys {
                let mut line = format!("  {key:<42}");
                for m in &maps {
                    let _ = write!(line, "{:>12}", cell(m.get(key).copied(), decimals));
                }
                let _ = writeln!(out, "{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(kind: PhaseKind, max_live: usize, min_ready: usize) -> PhaseReport {
        let figures = PhaseFigures {
            pods_created: 10,
            all_created: Some(Duration::from_secs(2)),
            deployment_done: Some(Duration::from_secs(4)),
            max_live,
            min_ready,
            ..PhaseFigures::default()
        };
        PhaseReport::new(kind, &figures, false)
    }

    fn report(update: Option<PhaseReport>) -> RolloutReport {
        RolloutReport {
            replicas: 10,
            nodes: 2,
            max_surge: "25%".into(),
            max_unavailable: "25%".into(),
            bounds: RollingBounds { surge: 3, unavailable: 2 },
            namespace: "ns".into(),
            nodes_ready_s: 1.0,
            create: phase(PhaseKind::Create, 10, 0),
            update,
        }
    }

    #[test]
    fn bounds_are_checked_against_the_update_extremes() {
        assert_eq!(report(None).bounds_kept(), None);
        assert_eq!(report(Some(phase(PhaseKind::Update, 13, 8))).bounds_kept(), Some(true));
        assert_eq!(report(Some(phase(PhaseKind::Update, 14, 8))).bounds_kept(), Some(false));
        assert_eq!(report(Some(phase(PhaseKind::Update, 13, 7))).bounds_kept(), Some(false));
    }

    #[test]
    fn the_text_shows_rates_the_target_and_write_counts() {
        let mut update = phase(PhaseKind::Update, 13, 8);
        update.api_requests = BTreeMap::from([("POST/pods".to_string(), 10.0), ("GET/pods".to_string(), 3.0)]);
        let text = report(Some(update)).render();
        assert!(text.contains("pods created per second"), "{text}");
        assert!(text.contains("           5"), "10 pods in 2 s: {text}");
        assert!(text.contains("Available in <= 15 s: met (4.00 s)"), "{text}");
        assert!(text.contains("POST/pods"), "{text}");
        assert!(!text.contains("GET/pods"), "reads are not writes: {text}");
        assert!(text.contains("respected"), "{text}");
    }
}
