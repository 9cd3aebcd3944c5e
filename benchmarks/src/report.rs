//! Results, plain-text tables and the JSON document.
//!
//! [`Report`] holds the results of both systems (either may be absent when
//! `--system` selects one) and renders three blocks: the throughput/latency
//! comparison, memory per replica/member, and the informational targets.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::TargetChoice;
use crate::cluster::{MemberMemory, SystemKind};
use crate::rss::kib_to_mib;
use crate::workload::{LevelResult, PreloadResult, Workload};

/// Idle RSS target per Gantry replica, MiB.
pub const IDLE_RSS_TARGET_MIB: f64 = 150.0;
/// Write p99 target at 256 clients, ms.
pub const WRITE_P99_TARGET_MS: f64 = 25.0;

/// Errors while writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Serialisation failed.
    #[error("failed to serialise the report as json")]
    Json(#[from] serde_json::Error),
    /// The file could not be written.
    #[error("failed to write {0}")]
    Write(PathBuf, #[source] std::io::Error),
}

/// Run settings, echoed in the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Concurrency levels.
    pub clients: Vec<usize>,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Measured seconds per row.
    pub duration_secs: f64,
    /// Warm-up seconds per row.
    pub warmup_secs: f64,
    /// Key space size.
    pub keys: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Clients per gRPC connection.
    pub clients_per_conn: usize,
    /// Idle seconds before the idle RSS sample.
    pub idle_secs: f64,
    /// Which members the clients talk to.
    pub target: TargetChoice,
}

/// Everything measured for one system.
#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    /// System.
    pub system: SystemKind,
    /// Server binary used.
    pub binary: String,
    /// Seconds from spawn to every member reporting a leader.
    pub startup_secs: f64,
    /// The member that led when the rows started.
    pub leader: String,
    /// `VmRSS` after the idle period following startup.
    pub idle_memory: Vec<MemberMemory>,
    /// Key-space preload.
    pub preload: Option<PreloadResult>,
    /// One entry per (workload, clients).
    pub rows: Vec<LevelResult>,
    /// `VmHWM` at the end of the run.
    pub peak_memory: Vec<MemberMemory>,
}

impl SystemReport {
    fn row(&self, workload: Workload, clients: usize) -> Option<&LevelResult> {
        self.rows.iter().find(|r| r.workload == workload && r.clients == clients)
    }
}

/// Results of a whole invocation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Settings.
    pub settings: Settings,
    /// Gantry results, if run.
    pub gantry: Option<SystemReport>,
    /// etcd results, if run.
    pub etcd: Option<SystemReport>,
    /// Errors that aborted a system's run.
    pub failures: Vec<String>,
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right.
    Left,
    /// Pad on the left (numbers).
    Right,
}

/// Renders an aligned plain-text table: header, dashed rule, rows. Columns
/// are separated by two spaces; missing cells render empty; no trailing
/// whitespace.
pub fn render_table(headers: &[&str], rows: &[Vec<String>], align: &[Align]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().take(cols).enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).copied().unwrap_or("");
            let pad = w.saturating_sub(cell.chars().count());
            if i > 0 {
                out.push_str("  ");
            }
            match align.get(i).copied().unwrap_or(Align::Left) {
                Align::Left => {
                    out.push_str(cell);
                    out.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(cell);
                }
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(rule.iter().map(String::as_str).collect()));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// `12345.6` → `12346`; `None` → `-`.
pub fn fmt_ops(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

/// Milliseconds with two decimals; `None` → `-`.
pub fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// `gantry / etcd` as `1.23x`; `-` when either is missing or etcd is zero.
pub fn fmt_ratio(gantry: Option<f64>, etcd: Option<f64>) -> String {
    match ratio(gantry, etcd) {
        Some(r) => format!("{r:.2}x"),
        None => "-".into(),
    }
}

fn ratio(gantry: Option<f64>, etcd: Option<f64>) -> Option<f64> {
    match (gantry, etcd) {
        (Some(g), Some(e)) if e > 0.0 => Some(g / e),
        _ => None,
    }
}

/// Outcome of one informational target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetStatus {
    /// Reached.
    Met,
    /// Not reached.
    Missed,
    /// The data needed was not measured.
    NotMeasured,
}

impl fmt::Display for TargetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Met => "met",
            Self::Missed => "MISSED",
            Self::NotMeasured => "n/a",
        })
    }
}

/// One informational target with its measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// What the target says.
    pub target: &'static str,
    /// What was measured.
    pub measured: String,
    /// Whether it was reached.
    pub status: TargetStatus,
}

impl Report {
    /// (workload, clients) pairs in first-seen order over both systems.
    fn row_keys(&self) -> Vec<(Workload, usize)> {
        let mut keys = Vec::new();
        for sys in [&self.gantry, &self.etcd].into_iter().flatten() {
            for r in &sys.rows {
                if !keys.contains(&(r.workload, r.clients)) {
                    keys.push((r.workload, r.clients));
                }
            }
        }
        keys
    }

    fn row(&self, system: SystemKind, workload: Workload, clients: usize) -> Option<&LevelResult> {
        let sys = match system {
            SystemKind::Gantry => self.gantry.as_ref(),
            SystemKind::Etcd => self.etcd.as_ref(),
        };
        sys.and_then(|s| s.row(workload, clients))
    }

    /// Throughput and latency, Gantry next to etcd.
    pub fn comparison_table(&self) -> String {
        let headers = [
            "workload",
            "clients",
            "gantry ops/s",
            "p50 ms",
            "p99 ms",
            "etcd ops/s",
            "p50 ms",
            "p99 ms",
            "gantry/etcd",
            "cpu us/op g/e",
            "errors g/e",
        ];
        let mut align = vec![Align::Left];
        align.extend(std::iter::repeat_n(Align::Right, headers.len() - 1));
        let rows: Vec<Vec<String>> = self
            .row_keys()
            .into_iter()
            .map(|(w, c)| {
                let g = self.row(SystemKind::Gantry, w, c);
                let e = self.row(SystemKind::Etcd, w, c);
                let ops = |r: Option<&LevelResult>| r.map(|r| r.ops_per_sec);
                let errs = |r: Option<&LevelResult>| r.map_or("-".into(), |r| r.errors.to_string());
                let cpu = |r: Option<&LevelResult>| {
                    r.and_then(LevelResult::cpu_us_per_op).map_or("-".into(), |c| format!("{c:.0}"))
                };
                vec![
                    w.label().to_string(),
                    c.to_string(),
                    fmt_ops(ops(g)),
                    fmt_ms(g.map(|r| r.latency.p50_ms)),
                    fmt_ms(g.map(|r| r.latency.p99_ms)),
                    fmt_ops(ops(e)),
                    fmt_ms(e.map(|r| r.latency.p50_ms)),
                    fmt_ms(e.map(|r| r.latency.p99_ms)),
                    fmt_ratio(ops(g), ops(e)),
                    format!("{}/{}", cpu(g), cpu(e)),
                    format!("{}/{}", errs(g), errs(e)),
                ]
            })
            .collect();
        render_table(&headers, &rows, &align)
    }

    /// Idle and peak RSS per replica/member.
    pub fn memory_table(&self) -> String {
        let headers = ["system", "member", "pid", "idle RSS MiB", "peak RSS (VmHWM) MiB"];
        let align = [Align::Left, Align::Left, Align::Right, Align::Right, Align::Right];
        let mut rows = Vec::new();
        for sys in [&self.gantry, &self.etcd].into_iter().flatten() {
            for idle in &sys.idle_memory {
                let peak = sys.peak_memory.iter().find(|p| p.member == idle.member);
                rows.push(vec![
                    sys.system.to_string(),
                    idle.member.clone(),
                    idle.pid.to_string(),
                    format!("{:.1}", kib_to_mib(idle.memory.rss_kib)),
                    peak.map_or("-".into(), |p| format!("{:.1}", kib_to_mib(p.memory.hwm_kib))),
                ]);
            }
        }
        render_table(&headers, &rows, &align)
    }

    /// Evaluates the informational targets.
    pub fn target_checks(&self) -> Vec<TargetCheck> {
        let ops = |s, w, c| self.row(s, w, c).map(|r: &LevelResult| r.ops_per_sec);
        let mut checks = Vec::new();

        let (g1, e1) = (ops(SystemKind::Gantry, Workload::Put, 1), ops(SystemKind::Etcd, Workload::Put, 1));
        checks.push(ratio_check("writes, 1 client: gantry >= 1.0x etcd", g1, e1, 1.0, None));

        let p99 = self.row(SystemKind::Gantry, Workload::Put, 256).map(|r| r.latency.p99_ms);
        checks.push(ratio_check(
            "writes, 256 clients: gantry >= 1.5x etcd, p99 <= 25 ms",
            ops(SystemKind::Gantry, Workload::Put, 256),
            ops(SystemKind::Etcd, Workload::Put, 256),
            1.5,
            Some(p99),
        ));

        checks.push(ratio_check(
            "linearizable reads, 64 clients: gantry >= 2.0x etcd",
            ops(SystemKind::Gantry, Workload::Range, 64),
            ops(SystemKind::Etcd, Workload::Range, 64),
            2.0,
            None,
        ));

        let idle_max = self
            .gantry
            .as_ref()
            .and_then(|g| g.idle_memory.iter().map(|m| kib_to_mib(m.memory.rss_kib)).reduce(f64::max));
        checks.push(match idle_max {
            Some(mib) => TargetCheck {
                target: "idle RSS <= 150 MiB per gantry replica",
                measured: format!("max {mib:.1} MiB"),
                status: if mib <= IDLE_RSS_TARGET_MIB { TargetStatus::Met } else { TargetStatus::Missed },
            },
            None => TargetCheck {
                target: "idle RSS <= 150 MiB per gantry replica",
                measured: "-".into(),
                status: TargetStatus::NotMeasured,
            },
        });
        checks
    }

    /// The targets as a small table (informational, never asserted).
    pub fn targets_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .target_checks()
            .into_iter()
            .map(|c| vec![c.target.to_string(), c.measured, c.status.to_string()])
            .collect();
        render_table(&["target (informational)", "measured", "status"], &rows, &[Align::Left, Align::Left, Align::Left])
    }

    /// All text blocks, ready to print.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "store-bench: 3 members each, loopback; {:.0} s measured after {:.0} s warm-up per row; \
             {} keys, {}-byte values, {} clients per gRPC connection per endpoint; clients talk to {}",
            s.duration_secs, s.warmup_secs, s.keys, s.value_size, s.clients_per_conn, s.target
        );
        for sys in [&self.gantry, &self.etcd].into_iter().flatten() {
            let preload = sys
                .preload
                .map_or(String::from("no preload"), |p| format!("preload {} keys in {:.1} s", p.keys, p.secs));
            let _ = writeln!(
                out,
                "{}: {} (ready after {:.1} s; leader {}; {preload})",
                sys.system, sys.binary, sys.startup_secs, sys.leader
            );
        }
        out.push('\n');
        out.push_str(&self.comparison_table());
        out.push('\n');
        out.push_str(&self.memory_table());
        out.push('\n');
        out.push_str(&self.targets_table());
        for f in &self.failures {
            let _ = writeln!(out, "\nfailed: {f}");
        }
        out
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), ReportError> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").map_err(|e| ReportError::Write(path.to_path_buf(), e))
    }
}

/// `gantry >= factor * etcd`, plus an optional gantry p99 bound
/// ([`WRITE_P99_TARGET_MS`]) when `p99` is `Some`.
fn ratio_check(
    target: &'static str,
    gantry: Option<f64>,
    etcd: Option<f64>,
    factor: f64,
    p99: Option<Option<f64>>,
) -> TargetCheck {
    let Some(r) = ratio(gantry, etcd) else {
        return TargetCheck { target, measured: "-".into(), status: TargetStatus::NotMeasured };
    };
    let mut measured = format!("{r:.2}x");
    let mut met = r >= factor;
    if let Some(p99) = p99 {
        match p99 {
            Some(p) => {
                let _ = write!(measured, ", p99 {p:.2} ms");
                met &= p <= WRITE_P99_TARGET_MS;
            }
            None => met = false,
        }
    }
    TargetCheck { target, measured, status: if met { TargetStatus::Met } else { TargetStatus::Missed } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::LatencySummary;
    use crate::rss::MemoryStatus;

    fn row(workload: Workload, clients: usize, ops: f64, p99: f64) -> LevelResult {
        LevelResult {
            workload,
            clients,
            connections: 1,
            ops: (ops * 10.0) as u64,
            errors: 0,
            first_error: None,
            duration_secs: 10.0,
            ops_per_sec: ops,
            latency: LatencySummary { count: 1, mean_ms: 1.0, p50_ms: 1.0, p99_ms: p99, max_ms: p99 },
            server_cpu_secs: Some(ops * 10.0 * 150e-6),
        }
    }

    fn mem(member: &str, rss_mib: u64, hwm_mib: u64) -> MemberMemory {
        MemberMemory {
            member: member.into(),
            pid: 42,
            memory: MemoryStatus { rss_kib: rss_mib * 1024, hwm_kib: hwm_mib * 1024 },
        }
    }

    fn system(kind: SystemKind, rows: Vec<LevelResult>, idle_mib: u64) -> SystemReport {
        SystemReport {
            system: kind,
            binary: "bin".into(),
            startup_secs: 1.0,
            leader: format!("{kind}-1"),
            idle_memory: vec![mem(&format!("{kind}-1"), idle_mib, idle_mib)],
            preload: None,
            rows,
            peak_memory: vec![mem(&format!("{kind}-1"), idle_mib, idle_mib * 2)],
        }
    }

    fn settings() -> Settings {
        Settings {
            clients: vec![1, 256],
            workloads: vec![Workload::Put, Workload::Range],
            duration_secs: 10.0,
            warmup_secs: 2.0,
            keys: 100,
            value_size: 256,
            clients_per_conn: 16,
            idle_secs: 5.0,
            target: TargetChoice::All,
        }
    }

    #[test]
    fn table_columns_are_aligned() {
        let out = render_table(
            &["name", "n"],
            &[vec!["a".into(), "1".into()], vec!["long name".into(), "12345".into()]],
            &[Align::Left, Align::Right],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "name           n");
        assert_eq!(lines[1], "---------  -----");
        assert_eq!(lines[2], "a              1");
        assert_eq!(lines[3], "long name  12345");
    }

    #[test]
    fn table_tolerates_short_rows() {
        let out = render_table(&["a", "b"], &[vec!["x".into()]], &[Align::Left, Align::Left]);
        assert_eq!(out.lines().nth(2), Some("x"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_ops(Some(12345.6)), "12346");
        assert_eq!(fmt_ops(None), "-");
        assert_eq!(fmt_ms(Some(1.234)), "1.23");
        assert_eq!(fmt_ratio(Some(3.0), Some(2.0)), "1.50x");
        assert_eq!(fmt_ratio(Some(3.0), Some(0.0)), "-");
        assert_eq!(fmt_ratio(None, Some(2.0)), "-");
    }

    #[test]
    fn comparison_table_with_one_system_missing() {
        let report = Report {
            settings: settings(),
            gantry: None,
            etcd: Some(system(SystemKind::Etcd, vec![row(Workload::Put, 1, 1000.0, 2.0)], 20)),
            failures: vec![],
        };
        let table = report.comparison_table();
        let data = table.lines().nth(2).unwrap_or_default();
        let cells: Vec<&str> = data.split_whitespace().collect();
        assert_eq!(cells, ["put", "1", "-", "-", "-", "1000", "1.00", "2.00", "-", "-/150", "-/0"]);
        assert!(report.memory_table().contains("etcd-1"));
        let checks = report.target_checks();
        assert!(checks.iter().all(|c| c.status == TargetStatus::NotMeasured));
    }

    #[test]
    fn targets_are_evaluated() {
        let report = Report {
            settings: settings(),
            gantry: Some(system(
                SystemKind::Gantry,
                vec![
                    row(Workload::Put, 1, 1100.0, 2.0),
                    row(Workload::Put, 256, 1400.0, 30.0),
                    row(Workload::Range, 64, 5000.0, 2.0),
                ],
                100,
            )),
            etcd: Some(system(
                SystemKind::Etcd,
                vec![
                    row(Workload::Put, 1, 1000.0, 2.0),
                    row(Workload::Put, 256, 1000.0, 10.0),
                    row(Workload::Range, 64, 2000.0, 2.0),
                ],
                30,
            )),
            failures: vec![],
        };
        let statuses: Vec<TargetStatus> = report.target_checks().into_iter().map(|c| c.status).collect();
        // 1.1x >= 1.0 met; 1.4x < 1.5 and p99 30 > 25 missed; 2.5x met; 100 MiB met.
        assert_eq!(statuses, [TargetStatus::Met, TargetStatus::Missed, TargetStatus::Met, TargetStatus::Met]);
        let table = report.comparison_table();
        assert!(table.contains("1.10x"));
        let text = report.render();
        assert!(text.contains("peak RSS (VmHWM) MiB"));
        assert!(text.contains("MISSED"));
    }

    #[test]
    fn json_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let report = Report {
            settings: settings(),
            gantry: None,
            etcd: Some(system(SystemKind::Etcd, vec![row(Workload::Range, 16, 500.0, 3.0)], 20)),
            failures: vec![],
        };
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("r.json");
        report.write_json(&path)?;
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        assert_eq!(v["etcd"]["rows"][0]["workload"], "range");
        assert_eq!(v["etcd"]["system"], "etcd");
        assert!(v["gantry"].is_null());
        Ok(())
    }
}
