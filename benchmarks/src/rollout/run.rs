//! The `rollout-bench` sequence: namespace, simulated nodes, pod and Deployment watches, then the
//! creation phase (POST the Deployment, wait for Available) and the rolling update phase (patch the
//! template, wait for the rollout to complete), each bracketed by CPU and `/metrics` snapshots, with
//! a progress line per second; then cleanup.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokio::task::JoinHandle;

use super::cli::RolloutArgs;
use super::objects::{self, PodShape, RollingBounds};
use super::observer::{DeploymentObject, Observer, PhaseKind, PodObject};
use super::report::{PhaseReport, RolloutReport};
use super::sim_process::{self, SimProcess, SimProcessError, SimSettings};
use crate::api::client::{ApiConnection, ClientError, Connector};
use crate::api::objects::{namespace_body, random_namespace};
use crate::api::server_metrics::{self, MetricsSnapshot};
use crate::api::target::BenchTarget;
use crate::api::watch_follow::{list_resource_version, Follower};
use crate::cpu::cpu_time;
use crate::sched::nodes;

/// Concurrent requests when removing the simulated nodes.
const CLEANUP_CLIENTS: usize = 8;

/// Failures that end the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Capacity(String),
    #[error(transparent)]
    Sim(#[from] SimProcessError),
    #[error("{action} failed")]
    Api {
        action: String,
        #[source]
        source: ClientError,
    },
}

fn api(action: impl Into<String>) -> impl FnOnce(ClientError) -> RunError {
    let action = action.into();
    move |source| RunError::Api { action, source }
}

type Shared = Arc<Mutex<Observer>>;

fn lock(o: &Shared) -> MutexGuard<'_, Observer> {
    // The observer holds plain counters that stay consistent if a holder panicked.
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the benchmark against `target`.
pub async fn run(args: &RolloutArgs, target: &BenchTarget) -> Result<RolloutReport, RunError> {
    if let Some(problem) = args.capacity_problem() {
        return Err(RunError::Capacity(problem));
    }
    let sim_binary = sim_process::locate(args.sim_bin.as_deref())?;
    let connector = &target.connector;
    let namespace = random_namespace().replacen("api-bench", "rollout-bench", 1);
    eprintln!("rollout-bench: namespace {namespace}");
    let mut conn = connector.connection(0);
    conn.send(Method::POST, "/api/v1/namespaces", namespace_body(&namespace))
        .await
        .map_err(api(format!("creating namespace {namespace}")))?;

    let settings = SimSettings {
        nodes: args.nodes,
        prefix: args.node_prefix.clone(),
        cpu: args.node_cpu.clone(),
        memory: args.node_memory.clone(),
        pods: args.node_pods,
        log_level: args.sim_log_level.clone(),
    };
    let names = settings.node_names();
    let started = Instant::now();
    let mut sim =
        SimProcess::spawn(&sim_binary, &target.kubeconfig_path, target.context.as_deref(), &settings, &args.work_dir)?;
    let result = match sim.wait_ready(connector, args.nodes_timeout).await {
        Ok(()) => {
            let nodes_ready = started.elapsed();
            eprintln!("{} simulated nodes Ready in {:.1} s", args.nodes, nodes_ready.as_secs_f64());
            measure(args, target, &namespace, sim.pid(), nodes_ready).await
        }
        Err(e) => Err(e.into()),
    };

    if let Err(e) = sim.stop() {
        eprintln!("warning: stopping the simulated nodes failed: {e}");
    }
    if args.keep {
        eprintln!("--keep: leaving namespace {namespace} and {} nodes", names.len());
    } else {
        eprintln!("cleaning up");
        let path = format!("/api/v1/namespaces/{namespace}");
        if let Err(e) = conn.send(Method::DELETE, &path, Bytes::new()).await {
            eprintln!("warning: deleting namespace {namespace} failed: {e}");
        }
        nodes::remove(connector, &names, CLEANUP_CLIENTS).await;
    }
    result
}

/// CPU time of the processes sharing the machine, by name.
struct CpuSnapshot(BTreeMap<String, Duration>);

impl CpuSnapshot {
    fn take(processes: &[(String, Option<u32>)]) -> Self {
        let mut out = BTreeMap::new();
        for (name, pid) in processes {
            match cpu_time(*pid) {
                Ok(t) => {
                    out.insert(name.clone(), t);
                }
                Err(e) => eprintln!("warning: {e}"),
            }
        }
        Self(out)
    }

    fn since(&self, before: &CpuSnapshot) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .filter_map(|(k, v)| before.0.get(k).map(|b| (k.clone(), v.saturating_sub(*b).as_secs_f64())))
            .collect()
    }
}

async fn metrics_snapshot(connector: &Arc<Connector>) -> Option<MetricsSnapshot> {
    match server_metrics::scrape(connector).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("warning: cannot read /metrics, controller and request counts are left out: {e}");
            None
        }
    }
}

/// Watches, then the two phases.
async fn measure(
    args: &RolloutArgs,
    target: &BenchTarget,
    namespace: &str,
    sim_pid: u32,
    nodes_ready: Duration,
) -> Result<RolloutReport, RunError> {
    let connector = &target.connector;
    let observer: Shared = Arc::new(Mutex::new(Observer::new()));
    let watches = open_watches(connector, namespace, &observer).await?;
    let mut processes: Vec<(String, Option<u32>)> =
        target.replica_pids().into_iter().map(|(name, pid)| (name, Some(pid))).collect();
    processes.push(("sim-nodes".to_string(), Some(sim_pid)));
    processes.push(("rollout-bench".to_string(), None));
    let shape = PodShape { cpu: args.pod_cpu.clone(), memory: args.pod_memory.clone() };
    let bounds = RollingBounds::resolve(args.replicas, args.max_surge, args.max_unavailable);

    let bench = Bench { args, connector, observer: &observer, processes: &processes };
    let result = async {
        let body = objects::deployment(namespace, args.replicas, args.max_surge, args.max_unavailable, &shape);
        let path = objects::deployments_path(namespace);
        let create = phase(&bench, PhaseKind::Create, None, 1, |mut conn| async move {
            conn.send(Method::POST, &path, body).await.map(drop).map_err(api("creating the deployment"))
        })
        .await?;
        let update = if args.no_update || create.timed_out {
            None
        } else {
            let (old_hash, generation) = {
                let o = lock(&observer);
                let hashes = o.live_hashes();
                let old = hashes.into_iter().max_by_key(|(_, n)| *n).map(|(h, _)| h);
                (old, o.deployment_generation())
            };
            let patch = objects::template_patch(&shape, 2);
            let path = objects::deployment_path(namespace);
            let update = phase(&bench, PhaseKind::Update, old_hash, generation + 1, |mut conn| async move {
                conn.merge_patch(&path, patch).await.map(drop).map_err(api("changing the deployment's template"))
            })
            .await?;
            Some(update)
        };
        Ok(RolloutReport {
            replicas: args.replicas,
            nodes: args.nodes,
            max_surge: args.max_surge.to_string(),
            max_unavailable: args.max_unavailable.to_string(),
            bounds,
            namespace: namespace.to_string(),
            nodes_ready_s: nodes_ready.as_secs_f64(),
            create,
            update,
        })
    }
    .await;
    for w in watches {
        w.abort();
    }
    result
}

/// Opens the pod and Deployment watches of `namespace` (registered when this returns) and feeds
/// `observer` from them.
async fn open_watches(
    connector: &Arc<Connector>,
    namespace: &str,
    observer: &Shared,
) -> Result<Vec<JoinHandle<()>>, RunError> {
    let pods = objects::pods_path(namespace);
    let deployments = objects::deployments_path(namespace);
    let pods_rv = list_resource_version(connector, &pods).await.map_err(api("listing pods"))?;
    let deployments_rv = list_resource_version(connector, &deployments).await.map_err(api("listing deployments"))?;
    // Server 0 for both, so their events share one replica's clock of the store.
    let pod_watch =
        Follower::open(connector.clone(), 0, format!("{pods}?watch=1"), pods_rv).await.map_err(api("watching pods"))?;
    let deployment_watch = Follower::open(connector.clone(), 0, format!("{deployments}?watch=1"), deployments_rv)
        .await
        .map_err(api("watching deployments"))?;
    let (o1, o2) = (observer.clone(), observer.clone());
    Ok(vec![
        tokio::spawn(pod_watch.run(move |kind, pod: PodObject, at| lock(&o1).pod_event(kind, pod, at))),
        tokio::spawn(
            deployment_watch.run(move |kind, d: DeploymentObject, at| lock(&o2).deployment_event(kind, d, at)),
        ),
    ])
}

/// What every phase uses.
struct Bench<'a> {
    args: &'a RolloutArgs,
    connector: &'a Arc<Connector>,
    observer: &'a Shared,
    /// `(name, pid)` of the processes whose CPU time is reported (`None`: this one).
    processes: &'a [(String, Option<u32>)],
}

/// One phase: snapshots, `begin` the observer, send the phase's request, print progress each second
/// until the observer says the phase is done or the timeout passes, snapshots again.
async fn phase<F, Fut>(
    bench: &Bench<'_>,
    kind: PhaseKind,
    old_hash: Option<String>,
    min_generation: i64,
    request: F,
) -> Result<PhaseReport, RunError>
where
    F: FnOnce(ApiConnection) -> Fut,
    Fut: std::future::Future<Output = Result<(), RunError>>,
{
    let Bench { args, connector, observer, processes } = *bench;
    let label = match kind {
        PhaseKind::Create => "create",
        PhaseKind::Update => "update",
    };
    let metrics_before = metrics_snapshot(connector).await;
    let cpu_before = CpuSnapshot::take(processes);
    let mut conn = connector.connection(1);
    conn.connect().await.map_err(api("connecting"))?;
    let replicas = args.replicas as usize;
    let started = Instant::now();
    lock(observer).begin(kind, started, replicas, old_hash, min_generation);
    request(conn).await?;

    let deadline = started + args.phase_timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut next_line = started + Duration::from_secs(1);
    let timed_out = loop {
        tick.tick().await;
        let o = lock(observer);
        if o.phase_done() {
            break false;
        }
        if Instant::now() >= next_line {
            next_line += Duration::from_secs(1);
            let t = o.tally();
            let created = o.figures().map_or(0, |f| f.pods_created);
            let d = o.deployment_status().cloned().unwrap_or_default();
            eprintln!(
                "{label} t={:>4.1}s pods: created {created:>5} bound {:>5} ready {:>5} live {:>5} present {:>5} | \
                 deployment: replicas {} updated {} ready {} available {}",
                started.elapsed().as_secs_f64(),
                t.phase_bound,
                t.phase_ready,
                t.live,
                t.present,
                d.replicas,
                d.updated_replicas,
                d.ready_replicas,
                d.available_replicas
            );
        }
        if Instant::now() >= deadline {
            break true;
        }
    };
    let figures = lock(observer).finish().unwrap_or_default();
    let cpu_after = CpuSnapshot::take(processes);
    let mut report = PhaseReport::new(kind, &figures, timed_out);
    report.cpu_seconds = cpu_after.since(&cpu_before);
    if let (Some(before), Some(after)) = (metrics_before, metrics_snapshot(connector).await) {
        let delta = after.since(&before);
        report.reconciles = delta.family("gantry_controller_reconcile_total");
        report.reconcile_seconds = delta.family("gantry_controller_reconcile_duration_seconds_sum");
        report.api_requests = delta.family("apiserver_request_total");
        report.api_mean_latency_ms = delta
            .means("apiserver_request_duration_seconds")
            .into_iter()
            .map(|(k, seconds)| (k, seconds * 1000.0))
            .collect();
    }
    Ok(report)
}
