//! The `podstart-bench` sequence: locks, containerd with its network and images, the cluster and
//! the node agent (when the API or memory phase runs), then the raw CRI batches, the API batches and
//! the memory phase, each filling the report. A failing phase is recorded and the next one still
//! runs; failing to set up the node ends the run. Teardown is the caller's ([`NodeEnv::teardown`]).

use http::Method;

use super::api_pods::{ApiPods, ApiPodsError};
use super::cli::{Phase, PodStartArgs};
use super::memory::{sample, AgentMemory, MemoryReport};
use super::node::{NodeEnv, NodeError};
use super::raw::{RawError, RawRunner};
use super::report::Report;
use crate::api::client::ClientError;
use crate::api::objects::{namespace_body, random_namespace};
use crate::cluster::ClusterError;
use crate::rss::RssError;

/// Why a phase (or the whole run) failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("raw CRI: {0}")]
    Raw(#[from] RawError),
    #[error("API pods: {0}")]
    Api(#[from] ApiPodsError),
    #[error("creating namespace {namespace}")]
    Namespace {
        namespace: String,
        #[source]
        source: ClientError,
    },
    #[error("reading the agent's memory")]
    Memory(#[from] RssError),
    #[error("reading the replicas' memory")]
    Replicas(#[from] ClusterError),
    #[error("the agent is not running")]
    NoAgent,
}

/// Runs the selected phases on `env`, filling `report`.
pub async fn run(args: &PodStartArgs, env: &mut NodeEnv, report: &mut Report) -> Result<(), RunError> {
    if !args.no_locks {
        env.lock().await?;
    }
    report.note_load("start");
    eprintln!("starting containerd (bridge {}, {}) and importing the images", args.bridge, args.subnet);
    env.start_runtime().await?;
    let mut cluster = None;
    if args.needs_cluster() {
        eprintln!("starting 3 control-plane replicas");
        let connector = env.start_cluster(args).await?;
        eprintln!("starting the node agent as {}", env.node_name());
        env.start_agent(&connector, &args.agent_log_level, args.startup_timeout).await?;
        report.agent_idle = env.agent_memory()?;
        let namespace = random_namespace().replacen("api-bench", "podstart-bench", 1);
        connector
            .connection(0)
            .send(Method::POST, "/api/v1/namespaces", namespace_body(&namespace))
            .await
            .map_err(|source| RunError::Namespace { namespace: namespace.clone(), source })?;
        eprintln!("node Ready; pods go into namespace {namespace}");
        cluster = Some((connector, namespace));
    }
    report.note_load("set-up done");

    if args.runs(Phase::Raw) {
        if let Err(e) = raw_phase(args, env, report).await {
            report.failures.push(format!("raw phase: {e}"));
        }
        report.note_load("after raw");
    }
    if let Some((connector, namespace)) = cluster {
        let bind_to = args.bind_directly.then(|| env.node_name().to_string());
        let pods = ApiPods::new(connector, &namespace, bind_to).await?;
        if args.runs(Phase::Api) {
            if let Err(e) = api_phase(args, &pods, report).await {
                report.failures.push(format!("api phase: {e}"));
            }
            report.note_load("after api");
        }
        if args.runs(Phase::Memory) {
            if let Err(e) = memory_phase(args, env, &pods, report).await {
                report.failures.push(format!("memory phase: {e}"));
            }
            report.note_load("after memory");
        }
    }
    Ok(())
}

async fn raw_phase(args: &PodStartArgs, env: &mut NodeEnv, report: &mut Report) -> Result<(), RunError> {
    let run_id = random_namespace().replacen("api-bench-", "", 1);
    let log_root = env.dir().join("raw-logs");
    let runner = RawRunner::connect(&env.endpoint(), &run_id, &log_root, args.request_timeout).await?;
    env.raw = Some(runner.clone());
    runner.check_image().await?;
    eprintln!("raw CRI: {} pods one after the other ({} warm-up)", args.sequential, args.warmup);
    let batch = runner.sequential(args.sequential, args.warmup).await?;
    eprintln!("  p50 {:.0} ms, p99 {:.0} ms", batch.start.latency.p50_ms, batch.start.latency.p99_ms);
    report.raw_sequential = Some(batch);
    eprintln!("raw CRI: {} pods at once", args.parallel);
    let batch = runner.parallel(args.parallel).await?;
    eprintln!("  {:.2} pods/s, p50 {:.0} ms", batch.start.pods_per_second, batch.start.latency.p50_ms);
    report.raw_parallel = Some(batch);
    Ok(())
}

async fn api_phase(args: &PodStartArgs, pods: &ApiPods, report: &mut Report) -> Result<(), RunError> {
    eprintln!("API: {} pods one after the other ({} warm-up)", args.sequential, args.warmup);
    let batch = pods.sequential(args.sequential, args.warmup, args.pod_timeout, args.batch_timeout).await?;
    eprintln!("  p50 {:.0} ms, p99 {:.0} ms", batch.ready.latency.p50_ms, batch.ready.latency.p99_ms);
    report.api_sequential = Some(batch);
    eprintln!("API: {} pods at once", args.parallel);
    let batch = pods.parallel(args.parallel, args.batch_timeout).await?;
    eprintln!("  {:.2} pods/s, p50 {:.0} ms", batch.ready.pods_per_second, batch.ready.latency.p50_ms);
    report.api_parallel = Some(batch);
    Ok(())
}

async fn memory_phase(args: &PodStartArgs, env: &NodeEnv, pods: &ApiPods, report: &mut Report) -> Result<(), RunError> {
    let names: Vec<String> = (0..args.memory_pods).map(|i| format!("mem-{i}")).collect();
    eprintln!("memory: {} pods at once", names.len());
    let start = pods.start_at_once(&names, args.batch_timeout).await?;
    eprintln!("  all Ready after {:.1} s; sampling the agent's memory for {:?}", start.seconds, args.memory_settle);
    let pid = env.agent_pid().ok_or(RunError::NoAgent)?;
    let samples = sample(pid, args.memory_settle).await?;
    let agent = AgentMemory::from_samples(&samples).ok_or(RunError::NoAgent)?;
    let replicas = match env.cluster() {
        Some(c) => c.cluster.memory()?,
        None => Vec::new(),
    };
    let deletion = pods.delete_at_once(&names, args.batch_timeout).await?;
    report.memory =
        Some(MemoryReport { pods: names.len(), start, agent, agent_idle: report.agent_idle, replicas, deletion });
    Ok(())
}
