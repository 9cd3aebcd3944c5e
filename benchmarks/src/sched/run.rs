//! The `sched-bench` sequence: namespace, nodes (and Lease renewal), a pod watch, pods created by
//! concurrent clients as fast as the API answers, a per-second progress line, then the summary and
//! cleanup.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokio::task::JoinSet;

use super::cli::SchedArgs;
use super::nodes::{self, NodesError};
use super::objects::{self, NodeShape};
use super::tracker::{Summary, Tracker};
use crate::api::client::{ClientError, Connector};
use crate::api::objects::{namespace_body, random_namespace};
use crate::api::pod_watch::list_resource_version;

/// Failures that end the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("creating namespace {namespace} failed")]
    Namespace {
        namespace: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Nodes(#[from] NodesError),
    #[error("reading the pod list of namespace {namespace} failed")]
    List {
        namespace: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot build the latency histogram")]
    Histogram(#[from] hdrhistogram::CreationError),
}

/// The benchmark's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub nodes: usize,
    pub pods: usize,
    pub clients: usize,
    pub namespace: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// Pods bound in each second since the first create.
    pub bound_per_second_timeline: Vec<usize>,
    pub timed_out: bool,
}

impl Report {
    /// Human-readable lines.
    pub fn render(&self) -> String {
        let s = &self.summary;
        let mut out = format!(
            "sched-bench: {} nodes, {} pods, {} clients\n\
             created   {:>6} pods in {:>7.2} s = {:>8.1} pods/s ({} errors)\n\
             bound     {:>6} pods in {:>7.2} s = {:>8.1} pods/s (first create -> last bound)\n\
             create->bound latency: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
            self.nodes,
            self.pods,
            self.clients,
            s.created,
            s.create_seconds,
            s.created_per_second,
            s.create_errors,
            s.bound,
            s.bind_seconds,
            s.bound_per_second,
            s.latency_p50_ms,
            s.latency_p90_ms,
            s.latency_p99_ms,
            s.latency_max_ms,
        );
        if let Some(e) = &s.first_create_error {
            out.push_str(&format!("first create error: {e}\n"));
        }
        if self.timed_out {
            out.push_str("TIMED OUT waiting for bindings\n");
        }
        out
    }
}

/// Runs the benchmark against `connector`'s cluster.
pub async fn run(args: &SchedArgs, connector: Arc<Connector>) -> Result<Report, RunError> {
    let namespace = random_namespace().replacen("api-bench", "sched-bench", 1);
    eprintln!("sched-bench: namespace {namespace}");
    let mut conn = connector.connection(0);
    conn.send(Method::POST, "/api/v1/namespaces", namespace_body(&namespace))
        .await
        .map_err(|source| RunError::Namespace { namespace: namespace.clone(), source })?;

    let names: Vec<String> = (0..args.nodes).map(|i| format!("{}{i}", args.node_prefix)).collect();
    let shape = NodeShape { cpu: args.node_cpu.clone(), memory: args.node_memory.clone(), pods: args.node_pods };
    let started = Instant::now();
    nodes::register(&connector, &names, &shape, args.clients).await?;
    eprintln!("registered {} nodes in {:.1} s", names.len(), started.elapsed().as_secs_f64());
    let mut renewers = if args.lease_interval.is_zero() {
        JoinSet::new()
    } else {
        nodes::renew_leases(connector.clone(), names.clone(), args.lease_interval, 4)
    };

    let result = measure(args, &connector, &namespace).await;
    renewers.abort_all();
    if args.keep {
        eprintln!("--keep: leaving namespace {namespace} and {} nodes", names.len());
    } else {
        eprintln!("cleaning up");
        let path = format!("/api/v1/namespaces/{namespace}");
        if let Err(e) = conn.send(Method::DELETE, &path, Bytes::new()).await {
            eprintln!("warning: deleting namespace {namespace} failed: {e}");
        }
        nodes::remove(&connector, &names, args.clients).await;
    }
    let (summary, timeline, timed_out) = result?;
    Ok(Report {
        nodes: args.nodes,
        pods: args.pods,
        clients: args.clients,
        namespace,
        summary,
        bound_per_second_timeline: timeline,
        timed_out,
    })
}

/// Creates the pods and waits for their bindings: (summary, bound per second, timed out).
async fn measure(
    args: &SchedArgs,
    connector: &Arc<Connector>,
    namespace: &str,
) -> Result<(Summary, Vec<usize>, bool), RunError> {
    let tracker = Tracker::new()?;
    let rv = list_resource_version(connector, namespace)
        .await
        .map_err(|source| RunError::List { namespace: namespace.to_string(), source })?;
    let watch = tokio::spawn(tracker.clone().watch(connector.clone(), namespace.to_string(), rv));

    let next = Arc::new(AtomicUsize::new(0));
    let mut creators = JoinSet::new();
    for client in 0..args.clients.max(1) {
        let (mut conn, next, tracker) = (connector.connection(client), next.clone(), tracker.clone());
        let (total, namespace) = (args.pods, namespace.to_string());
        let (cpu, memory) = (args.pod_cpu.clone(), args.pod_memory.clone());
        creators.spawn(async move {
            let path = format!("/api/v1/namespaces/{namespace}/pods");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let name = format!("pod-{i}");
                tracker.sending(&name);
                let result = conn.send(Method::POST, &path, objects::pod(&namespace, &name, &cpu, &memory)).await;
                tracker.created(result.err().map(|e| e.to_string()));
            }
        });
    }

    let begin = Instant::now();
    let deadline = begin + args.bind_timeout;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut timeline, mut last_bound, mut last_created) = (Vec::new(), 0, 0);
    let timed_out = loop {
        tick.tick().await;
        while creators.try_join_next().is_some() {}
        let counts = tracker.counts();
        let (new_bound, new_created) = (counts.bound - last_bound, counts.created - last_created);
        (last_bound, last_created) = (counts.bound, counts.created);
        timeline.push(new_bound);
        eprintln!(
            "t={:>4}s created {:>6} (+{:>5}/s) bound {:>6} (+{:>5}/s) create errors {}",
            begin.elapsed().as_secs(),
            counts.created,
            new_created,
            counts.bound,
            new_bound,
            counts.create_errors
        );
        let all_answered = counts.created + counts.create_errors >= args.pods;
        if all_answered && counts.bound >= counts.created {
            break false;
        }
        if Instant::now() >= deadline {
            break true;
        }
    };
    creators.abort_all();
    watch.abort();
    Ok((tracker.summary(), timeline, timed_out))
}
