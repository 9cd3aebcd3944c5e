//! The `api-bench` sequence: namespaces, the selected phases in order, memory samples, cleanup.
//!
//! A failing phase is recorded in the report and the next phase still runs; only failing to create
//! the namespaces aborts the run. The namespaces are deleted at the end (also after failures) unless
//! `--keep-namespaces` is given.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;

use super::cli::{ApiArgs, Phase};
use super::client::{ClientError, Connector};
use super::list::{full_list, paged_list, preload_pods};
use super::load::{closed_loop, open_loop_creates, Operation};
use super::objects::{namespace_body, ObjectKind};
use super::report::{ApiReport, ApiSettings, MemorySample, RequestRow};
use super::watch::watch_delay;
use crate::rss::MemoryStatus;

/// Pods created for the get rows when the create phase did not run.
const GET_PRELOAD: usize = 1000;

/// Errors that abort the whole run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A benchmark namespace could not be created.
    #[error("failed to create namespace {namespace}")]
    Namespace {
        /// Namespace name.
        namespace: String,
        /// Underlying error.
        #[source]
        source: ClientError,
    },
}

/// What is measured and which processes' memory is sampled.
#[derive(Debug, Clone)]
pub struct Target {
    /// Connections to the API server(s).
    pub connector: Arc<Connector>,
    /// Whether api-bench started the cluster.
    pub self_started: bool,
    /// `(name, pid)` of processes whose RSS is reported.
    pub processes: Vec<(String, u32)>,
}

/// Runs the phases selected in `args` against `target` in namespace `namespace`.
pub async fn run(args: &ApiArgs, target: &Target, namespace: &str) -> Result<ApiReport, BenchError> {
    let connector = &target.connector;
    let mut report = ApiReport {
        settings: ApiSettings {
            servers: connector.servers().iter().map(|s| s.authority()).collect(),
            self_started: target.self_started,
            namespace: namespace.to_string(),
            clients: args.clients.0.clone(),
            duration_secs: args.duration.as_secs_f64(),
            warmup_secs: args.warmup.as_secs_f64(),
        },
        rows: Vec::new(),
        watch: Vec::new(),
        memory: Vec::new(),
        failures: Vec::new(),
    };
    sample_memory(target, "start (idle)", &mut report);
    let list_namespace = format!("{namespace}-list");
    let mut namespaces = vec![namespace.to_string()];
    if args.runs(Phase::List) && !args.list_sizes.is_empty() {
        namespaces.push(list_namespace.clone());
    }
    let mut created = Vec::new();
    let mut result = Ok(());
    for ns in &namespaces {
        if let Err(source) = create_namespace(connector, ns).await {
            result = Err(BenchError::Namespace { namespace: ns.clone(), source });
            break;
        }
        created.push(ns.clone());
    }
    if result.is_ok() {
        phases(args, target, namespace, &list_namespace, &mut report).await;
    }
    sample_memory(target, "end", &mut report);
    if args.keep_namespaces {
        eprintln!("keeping namespaces {}", created.join(", "));
    } else {
        for ns in &created {
            if let Err(e) = delete_namespace(connector, ns).await {
                report.failures.push(format!("deleting namespace {ns}: {e}"));
            }
        }
    }
    result.map(|()| report)
}

async fn phases(args: &ApiArgs, target: &Target, namespace: &str, list_namespace: &str, report: &mut ApiReport) {
    let connector = &target.connector;
    let (warmup, duration) = (args.warmup, args.duration);
    let mut pods: Vec<String> = Vec::new();

    if args.runs(Phase::Create) {
        for kind in [ObjectKind::ConfigMap, ObjectKind::Pod] {
            for &clients in &args.clients.0 {
                let label = format!("create {}", singular(kind));
                let op = Operation::Create { kind, prefix: format!("create-{clients}c") };
                match closed_loop(connector, namespace, &label, &op, clients, warmup, duration).await {
                    Ok(outcome) => {
                        if kind == ObjectKind::Pod {
                            pods.extend(outcome.created);
                        }
                        push_row(report, outcome.row);
                    }
                    Err(e) => fail(report, &format!("{label}, {clients} clients"), &e),
                }
            }
        }
    }

    if args.runs(Phase::Steady) && args.steady_rate > 0.0 {
        let label = format!("create configmap @ {}/s", args.steady_rate);
        match open_loop_creates(connector, namespace, &label, ObjectKind::ConfigMap, args.steady_rate, duration).await {
            Ok(row) => push_row(report, row),
            Err(e) => fail(report, &label, &e),
        }
    }

    if args.runs(Phase::Get) {
        if pods.is_empty() {
            eprintln!("preloading {GET_PRELOAD} pods for the get rows");
            match preload_pods(connector, namespace, 0, GET_PRELOAD, args.preload_clients).await {
                Ok(_) => pods = (0..GET_PRELOAD).map(|i| format!("pod-{i}")).collect(),
                Err(e) => fail(report, "get preload", &e),
            }
        }
        let op = Operation::Get { kind: ObjectKind::Pod, names: Arc::new(pods) };
        for &clients in &args.clients.0 {
            match closed_loop(connector, namespace, "get pod", &op, clients, warmup, duration).await {
                Ok(outcome) => push_row(report, outcome.row),
                Err(e) => fail(report, &format!("get pod, {clients} clients"), &e),
            }
        }
    }

    if args.runs(Phase::List) {
        list_phase(args, target, list_namespace, report).await;
    }

    if args.runs(Phase::Watch) && args.watch_rate > 0.0 {
        for &watchers in &args.watchers {
            eprintln!("watch delay: opening {watchers} watcher(s), then {} creates/s", args.watch_rate);
            match watch_delay(connector, namespace, watchers, args.watch_rate, duration).await {
                Ok(row) => {
                    eprintln!(
                        "  {watchers} watchers: {} of {} events, p50 {:.2} ms, p99 {:.2} ms after the response \
                         ({} early), p50 {:.2} ms, p99 {:.2} ms after the request{}",
                        row.received_events,
                        row.expected_events,
                        row.delay.p50_ms,
                        row.delay.p99_ms,
                        row.early_events,
                        row.since_request.p50_ms,
                        row.since_request.p99_ms,
                        row.first_error.as_deref().map_or(String::new(), |e| format!("; first error: {e}"))
                    );
                    report.watch.push(row);
                }
                Err(e) => fail(report, &format!("watch delay, {watchers} watchers"), &e),
            }
        }
    }
}

async fn list_phase(args: &ApiArgs, target: &Target, namespace: &str, report: &mut ApiReport) {
    let connector = &target.connector;
    let mut sizes = args.list_sizes.clone();
    sizes.sort_unstable();
    let mut loaded = 0;
    for &size in &sizes {
        eprintln!("preloading pods {loaded}..{size} with {} writers", args.preload_clients);
        match preload_pods(connector, namespace, loaded, size, args.preload_clients).await {
            Ok(took) => {
                let rate = (size - loaded) as f64 / took.as_secs_f64().max(1e-9);
                eprintln!("  preloaded {} pods in {:.1} s ({rate:.0}/s)", size - loaded, took.as_secs_f64());
                loaded = size;
            }
            Err(e) => {
                fail(report, &format!("preload to {size} pods"), &e);
                return;
            }
        }
        if Some(&size) == sizes.last() {
            sample_memory(target, &format!("after {size}-pod preload"), report);
        }
        match full_list(connector, namespace, size, args.duration).await {
            Ok(row) => push_row(report, row),
            Err(e) => fail(report, &format!("full list of {size} pods"), &e),
        }
        match paged_list(connector, namespace, size, args.page_size, args.duration).await {
            Ok((all, page)) => {
                push_row(report, all);
                push_row(report, page);
            }
            Err(e) => fail(report, &format!("paged list of {size} pods"), &e),
        }
    }
}

fn singular(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::ConfigMap => "configmap",
        ObjectKind::Pod => "pod",
    }
}

fn push_row(report: &mut ApiReport, row: RequestRow) {
    eprintln!(
        "  {:<40} {:>9} {:>9.0} ops/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}{}",
        row.workload,
        row.clients.map_or_else(|| "open".to_string(), |c| format!("{c} cl")),
        row.ops_per_sec,
        row.latency.p50_ms,
        row.latency.p99_ms,
        row.errors,
        row.first_error.as_deref().map_or(String::new(), |e| format!(" (first: {e})"))
    );
    report.rows.push(row);
}

fn fail(report: &mut ApiReport, what: &str, error: &dyn std::error::Error) {
    let mut msg = format!("{what}: {error}");
    let mut source = error.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("error: {msg}");
    report.failures.push(msg);
}

fn sample_memory(target: &Target, when: &str, report: &mut ApiReport) {
    for (process, pid) in &target.processes {
        match MemoryStatus::read(*pid) {
            Ok(memory) => {
                report.memory.push(MemorySample { when: when.to_string(), process: process.clone(), pid: *pid, memory })
            }
            Err(e) => report.failures.push(format!("memory of {process} (pid {pid}): {e}")),
        }
    }
}

async fn create_namespace(connector: &Arc<Connector>, name: &str) -> Result<(), ClientError> {
    let mut conn = connector.connection(0);
    conn.send(Method::POST, "/api/v1/namespaces", namespace_body(name)).await.map(drop)
}

async fn delete_namespace(connector: &Arc<Connector>, name: &str) -> Result<(), ClientError> {
    let mut conn = connector.connection(0);
    conn.send(Method::DELETE, &format!("/api/v1/namespaces/{name}"), Bytes::new()).await.map(drop)
}
