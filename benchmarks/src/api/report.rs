//! Results of an `api-bench` run, their text tables and the JSON document.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::latency::LatencySummary;
use crate::report::{fmt_ms, fmt_ops, render_table, Align};
use crate::rss::{kib_to_mib, MemoryStatus};

/// Errors while writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ApiReportError {
    /// Serialisation failed.
    #[error("failed to serialise the api report as json")]
    Json(#[from] serde_json::Error),
    /// The file could not be written.
    #[error("failed to write {0}")]
    Write(PathBuf, #[source] std::io::Error),
}

/// One request-rate row (closed loop, open loop or list).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    /// What was measured, e.g. `create pod`.
    pub workload: String,
    /// Concurrent clients (`None` for the open-loop row).
    pub clients: Option<usize>,
    /// Successful requests in the measured window.
    pub ops: u64,
    /// Failed requests in the measured window.
    pub errors: u64,
    /// The first failure, for the progress line and the JSON.
    pub first_error: Option<String>,
    /// Measured seconds.
    pub duration_secs: f64,
    /// `ops / duration_secs`.
    pub ops_per_sec: f64,
    /// Latency of successful requests.
    pub latency: LatencySummary,
}

/// One watch-delay row.
#[derive(Debug, Clone, Serialize)]
pub struct WatchRow {
    /// Concurrent watchers.
    pub watchers: usize,
    /// Objects created while they watched.
    pub created: u64,
    /// Creates that failed.
    pub create_errors: u64,
    /// ADDED events expected (`created * watchers`).
    pub expected_events: u64,
    /// ADDED events received for created objects.
    pub received_events: u64,
    /// Watchers whose stream failed or ended early.
    pub broken_watchers: u64,
    /// Events seen before the writer had read the create's response (delay recorded as 0).
    pub early_events: u64,
    /// Delay from the create's 2xx response to each ADDED event.
    pub delay: LatencySummary,
    /// Delay from sending the create request to each ADDED event.
    pub since_request: LatencySummary,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Memory of one process at one point of the run.
#[derive(Debug, Clone, Serialize)]
pub struct MemorySample {
    /// When it was taken, e.g. `after 10000-pod preload`.
    pub when: String,
    /// Process name or `pid N`.
    pub process: String,
    /// Process id.
    pub pid: u32,
    /// `VmRSS` / `VmHWM`.
    pub memory: MemoryStatus,
}

/// Run settings, echoed in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ApiSettings {
    /// The API server(s) measured.
    pub servers: Vec<String>,
    /// Whether api-bench started the cluster itself.
    pub self_started: bool,
    /// Namespace of the run.
    pub namespace: String,
    /// Closed-loop client counts.
    pub clients: Vec<usize>,
    /// Measured seconds per row.
    pub duration_secs: f64,
    /// Warm-up seconds per closed-loop row.
    pub warmup_secs: f64,
}

/// Everything measured in one run.
#[derive(Debug, Clone, Serialize)]
pub struct ApiReport {
    /// Settings.
    pub settings: ApiSettings,
    /// Request-rate rows in the order run.
    pub rows: Vec<RequestRow>,
    /// Watch-delay rows.
    pub watch: Vec<WatchRow>,
    /// Memory samples.
    pub memory: Vec<MemorySample>,
    /// Errors that aborted a phase.
    pub failures: Vec<String>,
}

impl ApiReport {
    /// Throughput and latency table.
    pub fn requests_table(&self) -> String {
        let headers = ["workload", "clients", "ops/s", "p50 ms", "p99 ms", "max ms", "errors"];
        let mut align = vec![Align::Left];
        align.extend(std::iter::repeat_n(Align::Right, headers.len() - 1));
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.workload.clone(),
                    r.clients.map_or_else(|| "open".into(), |c| c.to_string()),
                    fmt_ops(Some(r.ops_per_sec)),
                    fmt_ms(Some(r.latency.p50_ms)),
                    fmt_ms(Some(r.latency.p99_ms)),
                    fmt_ms(Some(r.latency.max_ms)),
                    r.errors.to_string(),
                ]
            })
            .collect();
        render_table(&headers, &rows, &align)
    }

    /// Watch-delay table.
    pub fn watch_table(&self) -> String {
        let headers = ["watchers", "creates", "events", "received", "p50 ms", "p99 ms", "max ms", "early", "broken"];
        let align = vec![Align::Right; headers.len()];
        let rows: Vec<Vec<String>> = self
            .watch
            .iter()
            .map(|w| {
                vec![
                    w.watchers.to_string(),
                    w.created.to_string(),
                    w.expected_events.to_string(),
                    w.received_events.to_string(),
                    fmt_ms(Some(w.delay.p50_ms)),
                    fmt_ms(Some(w.delay.p99_ms)),
                    fmt_ms(Some(w.delay.max_ms)),
                    w.early_events.to_string(),
                    w.broken_watchers.to_string(),
                    fmt_ms(Some(w.since_request.p50_ms)),
                    fmt_ms(Some(w.since_request.p99_ms)),
                ]
            })
            .collect();
        render_table(&headers, &rows, &align)
    }

    /// Memory table.
    pub fn memory_table(&self) -> String {
        let headers = ["when", "process", "pid", "RSS MiB", "peak RSS (VmHWM) MiB"];
        let align = [Align::Left, Align::Left, Align::Right, Align::Right, Align::Right];
        let rows: Vec<Vec<String>> = self
            .memory
            .iter()
            .map(|m| {
                vec![
                    m.when.clone(),
                    m.process.clone(),
                    m.pid.to_string(),
                    format!("{:.1}", kib_to_mib(m.memory.rss_kib)),
                    format!("{:.1}", kib_to_mib(m.memory.hwm_kib)),
                ]
            })
            .collect();
        render_table(&headers, &rows, &align)
    }

    /// All blocks, ready to print.
    pub fn render(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "api-bench: {} ({}), namespace {}; {:.0} s measured per row after {:.0} s warm-up",
            s.servers.join(", "),
            if s.self_started { "3 replicas started by api-bench" } else { "from kubeconfig" },
            s.namespace,
            s.duration_secs,
            s.warmup_secs
        );
        if !self.rows.is_empty() {
            out.push('\n');
            out.push_str(&self.requests_table());
        }
        if !self.watch.is_empty() {
            out.push_str(
                "\nwatch delay: create's 2xx response -> ADDED event at each watcher (early: event before the \
                 response, counted as 0)\n",
            );
            out.push_str(&self.watch_table());
        }
        if !self.memory.is_empty() {
            out.push('\n');
            out.push_str(&self.memory_table());
        }
        for f in &self.failures {
            let _ = writeln!(out, "\nfailed: {f}");
        }
        out
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), ApiReportError> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").map_err(|e| ApiReportError::Write(path.to_path_buf(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_every_row() {
        let latency = LatencySummary { count: 10, mean_ms: 2.0, p50_ms: 1.5, p99_ms: 9.25, max_ms: 12.0 };
        let report = ApiReport {
            settings: ApiSettings {
                servers: vec!["127.0.0.1:6443".into()],
                self_started: false,
                namespace: "api-bench-x".into(),
                clients: vec![1],
                duration_secs: 5.0,
                warmup_secs: 1.0,
            },
            rows: vec![RequestRow {
                workload: "create pod".into(),
                clients: Some(16),
                ops: 5000,
                errors: 1,
                first_error: None,
                duration_secs: 5.0,
                ops_per_sec: 1000.0,
                latency,
            }],
            watch: vec![WatchRow {
                watchers: 1000,
                created: 100,
                create_errors: 0,
                expected_events: 100_000,
                received_events: 100_000,
                broken_watchers: 0,
                early_events: 3,
                delay: latency,
                since_request: latency,
                first_error: None,
            }],
            memory: vec![],
            failures: vec!["list: boom".into()],
        };
        let text = report.render();
        assert!(text.contains("create pod") && text.contains("1000") && text.contains("9.25"), "{text}");
        assert!(text.contains("100000") && text.contains("failed: list: boom"), "{text}");
    }
}
