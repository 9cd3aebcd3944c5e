//! `podstart-bench`'s result: every batch's figures, the memory figures, the machine's load average
//! around each phase, the targets with met/missed (pure), the text table and the JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::api_pods::ApiBatch;
use super::cli::{Phase, PodStartArgs};
use super::figures::BatchFigures;
use super::memory::MemoryReport;
use super::raw::RawBatch;
use crate::latency::LatencySummary;
use crate::rss::MemoryStatus;

/// Sequential create->Ready p50 target, ms.
pub const TARGET_SEQ_P50_MS: f64 = 450.0;
/// Sequential create->Ready p99 target, ms.
pub const TARGET_SEQ_P99_MS: f64 = 700.0;
/// Pods-at-once throughput target, as a share of raw CRI's.
pub const TARGET_THROUGHPUT_SHARE: f64 = 0.90;
/// Agent RSS target with the memory pods running, bytes (50 MB).
pub const TARGET_AGENT_RSS_BYTES: u64 = 50_000_000;

/// The run's settings.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub phases: Vec<Phase>,
    pub sequential: usize,
    pub parallel: usize,
    pub memory_pods: usize,
    pub warmup: usize,
    pub bind_directly: bool,
    pub agent_log_level: String,
    pub node: String,
    pub cpus: usize,
}

/// `/proc/loadavg` at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadSample {
    /// What had just happened (`start`, `after raw`, ...).
    pub when: String,
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

impl LoadSample {
    /// Reads `/proc/loadavg` (`None` if unreadable).
    pub fn now(when: &str) -> Option<Self> {
        Self::parse(when, &std::fs::read_to_string("/proc/loadavg").ok()?)
    }

    /// Parses `0.52 0.58 0.59 1/467 12345`.
    pub fn parse(when: &str, text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace().map(str::parse::<f64>);
        let (one, five, fifteen) = (fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?);
        Some(Self { when: when.to_string(), one, five, fifteen })
    }
}

/// One target of the issue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCheck {
    pub target: String,
    /// What was measured (`None`: the phase did not run or failed).
    pub measured: Option<String>,
    pub met: Option<bool>,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub load: Vec<LoadSample>,
    pub raw_sequential: Option<RawBatch>,
    pub raw_parallel: Option<RawBatch>,
    pub api_sequential: Option<ApiBatch>,
    pub api_parallel: Option<ApiBatch>,
    pub agent_idle: Option<MemoryStatus>,
    pub memory: Option<MemoryReport>,
    pub targets: Vec<TargetCheck>,
    /// Phases that failed, with their error.
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(args: &PodStartArgs) -> Self {
        Self {
            settings: Settings {
                phases: args.phases.clone(),
                sequential: args.sequential,
                parallel: args.parallel,
                memory_pods: args.memory_pods,
                warmup: args.warmup,
                bind_directly: args.bind_directly,
                agent_log_level: args.agent_log_level.clone(),
                node: args.node_name.clone(),
                cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            },
            load: Vec::new(),
            raw_sequential: None,
            raw_parallel: None,
            api_sequential: None,
            api_parallel: None,
            agent_idle: None,
            memory: None,
            targets: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Notes the load average now.
    pub fn note_load(&mut self, when: &str) {
        if let Some(sample) = LoadSample::now(when) {
            self.load.push(sample);
        }
    }

    /// API throughput over raw CRI's, for the sequential and the at-once batches.
    pub fn throughput_ratios(&self) -> (Option<f64>, Option<f64>) {
        let ratio = |api: Option<&ApiBatch>, raw: Option<&RawBatch>| {
            let (api, raw) = (api?.ready.pods_per_second, raw?.start.pods_per_second);
            (raw > 0.0).then(|| api / raw)
        };
        (
            ratio(self.api_sequential.as_ref(), self.raw_sequential.as_ref()),
            ratio(self.api_parallel.as_ref(), self.raw_parallel.as_ref()),
        )
    }

    /// Fills [`Self::targets`] from the figures.
    pub fn check_targets(&mut self) {
        let mut checks = Vec::new();
        let seq = self.api_sequential.as_ref().map(|b| b.ready.latency);
        for (what, limit, value) in
            [("p50", TARGET_SEQ_P50_MS, seq.map(|l| l.p50_ms)), ("p99", TARGET_SEQ_P99_MS, seq.map(|l| l.p99_ms))]
        {
            checks.push(TargetCheck {
                target: format!("API sequential create->Ready {what} <= {limit:.0} ms"),
                measured: value.map(|v| format!("{v:.0} ms")),
                met: value.map(|v| v <= limit),
            });
        }
        let (_, at_once) = self.throughput_ratios();
        checks.push(TargetCheck {
            target: format!(
                "API {} at once >= {:.0} % of raw CRI pods/s",
                self.settings.parallel,
                TARGET_THROUGHPUT_SHARE * 100.0
            ),
            measured: at_once.map(|r| format!("{:.0} %", r * 100.0)),
            met: at_once.map(|r| r >= TARGET_THROUGHPUT_SHARE),
        });
        let rss = self.memory.as_ref().map(|m| m.agent.rss_max_kib * 1024);
        checks.push(TargetCheck {
            target: format!(
                "agent VmRSS <= {:.0} MB with {} pods",
                TARGET_AGENT_RSS_BYTES as f64 / 1e6,
                self.settings.memory_pods
            ),
            measured: rss.map(|b| format!("{:.1} MB ({:.1} MiB)", b as f64 / 1e6, b as f64 / 1048576.0)),
            met: rss.map(|b| b <= TARGET_AGENT_RSS_BYTES),
        });
        self.targets = checks;
    }

    /// The text table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "podstart-bench: one node ({}), {} CPUs, pods {} by the scheduler, agent log level {}",
            s.node,
            s.cpus,
            if s.bind_directly { "bound directly, not" } else { "bound" },
            s.agent_log_level
        );
        let loads: Vec<String> =
            self.load.iter().map(|l| format!("{} {:.2}/{:.2}/{:.2}", l.when, l.one, l.five, l.fifteen)).collect();
        if !loads.is_empty() {
            let _ = writeln!(out, "load average (1/5/15 min): {}", loads.join("; "));
        }
        let _ = writeln!(
            out,
            "\npod start (raw: request -> container running; API: create sent -> watch shows Running+Ready)"
        );
        let _ = writeln!(
            out,
            "{:<26} {:>5} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "", "pods", "p50 ms", "p99 ms", "max ms", "secs", "pods/s"
        );
        let rows: [(&str, Option<&BatchFigures>); 4] = [
            ("raw CRI, sequential", self.raw_sequential.as_ref().map(|b| &b.start)),
            ("raw CRI, at once", self.raw_parallel.as_ref().map(|b| &b.start)),
            ("API, sequential", self.api_sequential.as_ref().map(|b| &b.ready)),
            ("API, at once", self.api_parallel.as_ref().map(|b| &b.ready)),
        ];
        for (name, figures) in rows {
            match figures {
                Some(f) => row(&mut out, name, f),
                None => {
                    let _ = writeln!(out, "{name:<26} {:>5}", "-");
                }
            }
        }
        let (seq, at_once) = self.throughput_ratios();
        let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.0} %", r * 100.0));
        let _ = writeln!(out, "API/raw throughput: sequential {}, at once {}", ratio(seq), ratio(at_once));

        let _ = writeln!(out, "\nwhere the time goes, p50 / p99 ms");
        for (name, batch) in [("raw CRI, sequential", &self.raw_sequential), ("raw CRI, at once", &self.raw_parallel)] {
            if let Some(b) = batch {
                let _ = writeln!(
                    out,
                    "  {name:<22} RunPodSandbox {}, CreateContainer {}, StartContainer {}",
                    pair(&b.run_pod_sandbox),
                    pair(&b.create_container),
                    pair(&b.start_container)
                );
            }
        }
        for (name, batch) in [("API, sequential", &self.api_sequential), ("API, at once", &self.api_parallel)] {
            if let Some(b) = batch {
                let _ = writeln!(
                    out,
                    "  {name:<22} create call {}, create->bound {}, bound->Ready {}",
                    pair(&b.create_call),
                    pair(&b.to_bound),
                    pair(&b.bound_to_ready)
                );
            }
        }

        let _ = writeln!(out, "\nremoval of each batch, all pods at once (raw: stop+remove calls; API: delete sent -> watch shows DELETED)");
        let removals: [(&str, Option<&BatchFigures>); 5] = [
            ("raw CRI, sequential", self.raw_sequential.as_ref().map(|b| &b.removal)),
            ("raw CRI, at once", self.raw_parallel.as_ref().map(|b| &b.removal)),
            ("API, sequential", self.api_sequential.as_ref().map(|b| &b.deletion)),
            ("API, at once", self.api_parallel.as_ref().map(|b| &b.deletion)),
            ("API, memory pods", self.memory.as_ref().map(|m| &m.deletion)),
        ];
        for (name, figures) in removals {
            if let Some(f) = figures {
                row(&mut out, name, f);
            }
        }

        if let Some(m) = &self.memory {
            let _ = writeln!(out, "\nmemory with {} pods Running and Ready", m.pods);
            row(&mut out, "API, memory pods at once", &m.start);
            let _ = writeln!(
                out,
                "  gantry-node-agent: VmRSS {} (largest of {} samples {}), VmHWM {}{}",
                mib(m.agent.rss_kib),
                m.agent.samples,
                mib(m.agent.rss_max_kib),
                mib(m.agent.hwm_kib),
                m.agent_idle.map_or(String::new(), |i| format!("; with no pods VmRSS {}", mib(i.rss_kib)))
            );
            for r in &m.replicas {
                let _ = writeln!(
                    out,
                    "  {} (control plane): VmRSS {}, VmHWM {}",
                    r.member,
                    mib(r.memory.rss_kib),
                    mib(r.memory.hwm_kib)
                );
            }
        }

        let _ = writeln!(out, "\ntargets");
        for t in &self.targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            let _ = writeln!(out, "  {:<48} {:>22}  {verdict}", t.target, t.measured.as_deref().unwrap_or("-"));
        }
        for f in &self.failures {
            let _ = writeln!(out, "FAILED: {f}");
        }
        out
    }
}

fn row(out: &mut String, name: &str, f: &BatchFigures) {
    let l = &f.latency;
    let _ = writeln!(
        out,
        "{name:<26} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>8.2} {:>8.2}",
        f.pods, l.p50_ms, l.p99_ms, l.max_ms, f.seconds, f.pods_per_second
    );
}

fn pair(l: &LatencySummary) -> String {
    format!("{:.0} / {:.0}", l.p50_ms, l.p99_ms)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::podstart::memory::AgentMemory;

    fn figures(p50_ms: f64, p99_ms: f64, pods_per_second: f64) -> BatchFigures {
        let latency = LatencySummary { count: 20, mean_ms: p50_ms, p50_ms, p99_ms, max_ms: p99_ms };
        BatchFigures { pods: 20, latency, seconds: 20.0 / pods_per_second, pods_per_second }
    }

    fn api(p50: f64, p99: f64, rate: f64) -> ApiBatch {
        let l = figures(p50, p99, rate).latency;
        ApiBatch {
            ready: figures(p50, p99, rate),
            create_call: l,
            to_bound: l,
            bound_to_ready: l,
            deletion: figures(1.0, 2.0, 3.0),
            pods: Vec::new(),
        }
    }

    fn raw(rate: f64) -> RawBatch {
        let l = figures(200.0, 300.0, rate).latency;
        RawBatch {
            start: figures(200.0, 300.0, rate),
            run_pod_sandbox: l,
            create_container: l,
            start_container: l,
            removal: figures(1.0, 2.0, 3.0),
            pods: Vec::new(),
        }
    }

    fn report() -> Result<Report, clap::Error> {
        Ok(Report::new(&PodStartArgs::try_parse_from(["podstart-bench"])?))
    }

    #[test]
    fn targets_are_met_or_missed_from_the_figures() -> Result<(), clap::Error> {
        let mut r = report()?;
        r.check_targets();
        assert!(r.targets.iter().all(|t| t.met.is_none()), "nothing measured: {:?}", r.targets);

        r.api_sequential = Some(api(400.0, 800.0, 2.0));
        r.raw_parallel = Some(raw(8.0));
        r.api_parallel = Some(api(2000.0, 2500.0, 7.5));
        let agent = AgentMemory { rss_kib: 40_000, rss_max_kib: 49_000, hwm_kib: 52_000, samples: 3 };
        r.memory = Some(MemoryReport {
            pods: 50,
            start: figures(1.0, 2.0, 3.0),
            agent,
            agent_idle: None,
            replicas: Vec::new(),
            deletion: figures(1.0, 2.0, 3.0),
        });
        r.check_targets();
        let met: Vec<Option<bool>> = r.targets.iter().map(|t| t.met).collect();
        // p50 400 <= 450; p99 800 > 700; 7.5/8 = 93.75 % >= 90 %; 49,000 KiB = 50.2 MB > 50 MB.
        assert_eq!(met, [Some(true), Some(false), Some(true), Some(false)], "{:?}", r.targets);
        assert_eq!(r.targets[2].measured.as_deref(), Some("94 %"));
        let text = r.render();
        assert!(text.contains("MISSED") && text.contains("API, at once"), "{text}");
        Ok(())
    }

    #[test]
    fn load_average_is_parsed() {
        let l = LoadSample::parse("start", "0.52 1.58 2.59 1/467 12345\n").expect("parsed");
        assert_eq!((l.one, l.five, l.fifteen), (0.52, 1.58, 2.59));
        assert_eq!(LoadSample::parse("x", "garbage"), None);
    }
}
