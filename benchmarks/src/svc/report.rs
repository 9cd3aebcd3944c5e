//! `svc-bench`'s result: the figures of each phase, the machine's load around them, and the text
//! table printed at the end (targets shown for information, never asserted).

use std::fmt::Write as _;

use serde::Serialize;

use super::changes::ChangeFigures;
use super::latency::LatencyComparison;
use super::resync::{ResyncFigures, SyncTiming};

/// Full resync target (render + apply of 1,000 Services × 10 endpoints).
pub const FULL_SYNC_TARGET_MS: f64 = 1000.0;
/// EndpointSlice change → rule target, p99.
pub const CHANGE_TARGET_P99_MS: f64 = 200.0;
/// Added latency target of a ClusterIP over the pod IP.
pub const ADDED_LATENCY_TARGET_MS: f64 = 0.1;

/// `/proc/loadavg` when a phase started.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub phase: String,
    pub loadavg: String,
}

impl Load {
    pub fn now(phase: &str) -> Self {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Self { phase: phase.into(), loadavg: text.split_whitespace().take(3).collect::<Vec<_>>().join(" ") }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SvcReport {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub cpus: usize,
    pub create_s: f64,
    pub resync: ResyncFigures,
    /// From the agent's start to every ClusterIP in its table.
    pub agent_programmed_s: f64,
    pub changes: ChangeFigures,
    pub latency: Option<LatencyComparison>,
    pub load: Vec<Load>,
}

/// (median, max) of a field over syncs.
fn median_max(syncs: &[SyncTiming], field: fn(&SyncTiming) -> f64) -> (f64, f64) {
    let mut v: Vec<f64> = syncs.iter().map(field).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => (0.0, 0.0),
        n => (v[n / 2], v[n - 1]),
    }
}

fn sync_row(out: &mut String, label: &str, syncs: &[SyncTiming]) {
    let (total, total_max) = median_max(syncs, |s| s.total_ms);
    let (render, _) = median_max(syncs, |s| s.render_ms);
    let (list, _) = median_max(syncs, |s| s.list_ms);
    let (apply, _) = median_max(syncs, |s| s.apply_ms);
    let (bytes, _) = median_max(syncs, |s| s.script_bytes as f64);
    let _ = writeln!(
        out,
        "  {label:<34} {:>3}  {total:>8.1} {total_max:>8.1} {render:>8.1} {list:>7.1} {apply:>8.1} {:>9.0}",
        syncs.len(),
        bytes / 1024.0
    );
}

impl SvcReport {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let r = &self.resync;
        let _ = writeln!(
            out,
            "svc-bench: {} Services × {} endpoints ({} service ports, {} endpoints, {} rules, {} map elements), {} CPUs",
            self.services, self.endpoints_per_service, r.service_ports, r.endpoints, r.rules, r.elements, self.cpus
        );
        let _ = writeln!(
            out,
            "objects created in {:.1} s; catalog listed and built in {:.1} ms",
            self.create_s, r.catalog_ms
        );
        let _ = writeln!(
            out,
            "\nsyncs (ms; median unless max)          n     total      max   render    list    apply  script KiB"
        );
        sync_row(&mut out, "full, into an empty kernel", std::slice::from_ref(&r.first));
        sync_row(&mut out, "full, over the existing table", &r.full);
        sync_row(&mut out, "partial, one endpoint changed", &r.partial);
        let (full_median, _) = median_max(&r.full, |s| s.total_ms);
        let _ = writeln!(
            out,
            "  target: full resync ≤ {FULL_SYNC_TARGET_MS:.0} ms: first {:.0} ms, median {:.0} ms",
            r.first.total_ms, full_median
        );
        let _ = writeln!(out, "\nagent: all ClusterIPs programmed {:.2} s after it started", self.agent_programmed_s);
        let c = &self.changes;
        let _ = writeln!(
            out,
            "\nEndpointSlice change → rule in the kernel ({} changes, {} missed)\n  \
             patch request → response:  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms\n  \
             patch request → rule:      p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms   (target p99 ≤ {CHANGE_TARGET_P99_MS:.0} ms)",
            c.changes,
            c.missed.len(),
            c.api.p50_ms,
            c.api.p99_ms,
            c.api.max_ms,
            c.to_rule.p50_ms,
            c.to_rule_p90_ms,
            c.to_rule.p99_ms,
            c.to_rule.max_ms
        );
        if let Some(l) = &self.latency {
            let _ = writeln!(out, "\nrequest latency (ms)                 p50      p90      p99     max      n");
            for (label, p) in [("pod IP", &l.pod), ("ClusterIP", &l.cluster_ip)] {
                let _ = writeln!(
                    out,
                    "  {label:<10} new connection   {:>7.3}  {:>7.3}  {:>7.3} {:>7.3} {:>6}",
                    p.new_connection.p50_ms,
                    p.new_connection_p90_ms,
                    p.new_connection.p99_ms,
                    p.new_connection.max_ms,
                    p.new_connection.count
                );
                let _ = writeln!(
                    out,
                    "  {label:<10} kept connection  {:>7.3}  {:>7.3}  {:>7.3} {:>7.3} {:>6}",
                    p.kept_connection.p50_ms,
                    p.kept_connection_p90_ms,
                    p.kept_connection.p99_ms,
                    p.kept_connection.max_ms,
                    p.kept_connection.count
                );
            }
            let _ = writeln!(
                out,
                "  added by the ClusterIP: new connection p50 {:+.3} ms, p99 {:+.3} ms; kept connection p50 {:+.3} ms, \
                 p99 {:+.3} ms   (target ≤ {ADDED_LATENCY_TARGET_MS} ms)",
                l.cluster_ip.new_connection.p50_ms - l.pod.new_connection.p50_ms,
                l.cluster_ip.new_connection.p99_ms - l.pod.new_connection.p99_ms,
                l.cluster_ip.kept_connection.p50_ms - l.pod.kept_connection.p50_ms,
                l.cluster_ip.kept_connection.p99_ms - l.pod.kept_connection.p99_ms
            );
        }
        let _ = writeln!(out, "\nload average (1, 5, 15 min) at the start of each phase:");
        for l in &self.load {
            let _ = writeln!(out, "  {:<24} {}", l.phase, l.loadavg);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_maxima_of_syncs() {
        let t = |ms| SyncTiming {
            render_ms: 1.0,
            list_ms: 0.0,
            script_ms: 0.0,
            apply_ms: ms - 1.0,
            total_ms: ms,
            script_bytes: 1024,
        };
        assert_eq!(median_max(&[t(3.0), t(1.0), t(2.0)], |s| s.total_ms), (2.0, 3.0));
        assert_eq!(median_max(&[], |s| s.total_ms), (0.0, 0.0));
        assert!(Load::now("x").loadavg.split(' ').count() == 3);
    }
}
