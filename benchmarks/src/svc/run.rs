//! The `svc-bench` sequence: a fresh namespace with the Services and their EndpointSlices; full and
//! partial syncs timed in-process; the node agent started and timed until it has programmed every
//! Service; EndpointSlice changes timed to their rule in the kernel; a ClusterIP's added latency;
//! then cleanup (the agent's table, its Node and the namespace).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::try_join_all;
use gantry_node_agent::proxy::{Nft, NftError};
use http::Method;

use super::agent::{self, AgentError, AgentProcess, NODE};
use super::changes::{self, ChangeError, ChangePlan};
use super::cli::SvcArgs;
use super::latency::{self, EchoPod, LatencyRunError, ECHO_PORT, POD_IP};
use super::objects::{self, LATENCY_SERVICE, LATENCY_SERVICE_IP, SERVICE_PORT};
use super::report::{Load, SvcReport};
use super::resync::{self, ResyncError};
use crate::api::client::{ClientError, Connector};
use crate::api::objects::{namespace_body, random_namespace};
use crate::api::target::BenchTarget;

/// Concurrent writers creating the Services and slices.
const CREATE_CLIENTS: usize = 32;

/// Failures that end the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("svc-bench needs root and nftables (`nft list tables` failed: {0})")]
    NoNftables(#[source] NftError),
    #[error("{action} failed")]
    Api {
        action: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Resync(#[from] ResyncError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Changes(#[from] ChangeError),
    #[error(transparent)]
    Latency(#[from] LatencyRunError),
    #[error("the latency task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("cannot find this executable (for the echo server): {0}")]
    Exe(#[source] std::io::Error),
}

fn api(action: impl Into<String>) -> impl FnOnce(ClientError) -> RunError {
    let action = action.into();
    move |source| RunError::Api { action, source }
}

/// Runs the benchmark against `target`.
pub async fn run(args: &SvcArgs, target: &BenchTarget) -> Result<SvcReport, RunError> {
    let nft = Nft::default();
    nft.output(&["list", "tables"]).await.map_err(RunError::NoNftables)?;
    let agent_binary = agent::locate(args.agent_bin.as_deref())?;
    let connector = &target.connector;
    let namespace = random_namespace().replacen("api-bench", "svc-bench", 1);
    eprintln!("svc-bench: namespace {namespace}");
    let mut conn = connector.connection(0);
    conn.send(Method::POST, "/api/v1/namespaces", namespace_body(&namespace))
        .await
        .map_err(api(format!("creating namespace {namespace}")))?;
    let result = measure(args, target, &namespace, &agent_binary).await;
    if args.keep {
        eprintln!("--keep: leaving namespace {namespace}");
    } else {
        eprintln!("cleaning up");
        let path = format!("/api/v1/namespaces/{namespace}");
        if let Err(e) = conn.send(Method::DELETE, &path, Bytes::new()).await {
            eprintln!("warning: deleting namespace {namespace} failed: {e}");
        }
    }
    if let Err(e) = conn.send(Method::DELETE, &format!("/api/v1/nodes/{NODE}"), Bytes::new()).await {
        eprintln!("warning: deleting node {NODE} failed: {e}");
    }
    result
}

async fn measure(
    args: &SvcArgs,
    target: &BenchTarget,
    namespace: &str,
    agent_binary: &std::path::Path,
) -> Result<SvcReport, RunError> {
    let connector = &target.connector;
    let mut load = vec![Load::now("create")];
    let started = Instant::now();
    create_objects(connector, namespace, args.services, args.endpoints).await?;
    let create_s = started.elapsed().as_secs_f64();
    eprintln!("created {} Services and EndpointSlices in {create_s:.1} s", args.services);

    load.push(Load::now("in-process syncs"));
    let started = Instant::now();
    let catalog = resync::catalog(connector, namespace).await?;
    let catalog_ms = started.elapsed().as_secs_f64() * 1000.0;
    let resync = resync::measure(catalog, args.full_syncs, catalog_ms).await?;
    eprintln!("in-process syncs done (first full sync {:.0} ms)", resync.first.total_ms);

    load.push(Load::now("agent start"));
    let mut agent = AgentProcess::spawn(agent_binary, &target.kubeconfig_path, &args.work_dir)?;
    let table = agent.table.clone();
    let dns_table = agent.dns_table.clone();
    let result = async {
        let cluster_ips: Vec<_> = (0..args.services).map(objects::cluster_ip).collect();
        let programmed = agent.wait_programmed(&cluster_ips, args.program_timeout).await?;
        eprintln!("the agent programmed {} Services in {:.2} s", args.services, programmed.as_secs_f64());
        load.push(Load::now("changes"));
        let plan = ChangePlan {
            services: args.services,
            endpoints: args.endpoints,
            changes: args.changes,
            interval: args.change_interval,
            timeout: args.change_timeout,
        };
        let changes = changes::measure(connector, namespace, &table, plan).await?;
        let latency = if args.no_latency {
            None
        } else {
            load.push(Load::now("latency"));
            Some(measure_latency(args, connector, namespace, &mut agent).await?)
        };
        Ok::<_, RunError>((programmed, changes, latency))
    }
    .await;
    let log = agent.log_tail();
    if result.as_ref().is_ok_and(|(_, c, _)| !c.missed.is_empty()) {
        eprintln!("agent log (changes were missed):\n{log}");
    }
    if let Err(e) = agent.stop() {
        eprintln!("warning: stopping the agent failed: {e}");
    }
    for table in [&table, &dns_table] {
        if let Err(e) = Nft::default().delete_table(table).await {
            eprintln!("warning: deleting the agent's table {table} failed: {e}");
        }
    }
    let (programmed, changes, latency) = result.inspect_err(|_| eprintln!("agent log:\n{log}"))?;
    load.push(Load::now("end"));
    Ok(SvcReport {
        services: args.services,
        endpoints_per_service: args.endpoints,
        cpus: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        create_s,
        resync,
        agent_programmed_s: programmed.as_secs_f64(),
        changes,
        latency,
        load,
    })
}

/// Creates Service `i` and its slice for every `i`, with [`CREATE_CLIENTS`] writers.
async fn create_objects(
    connector: &Arc<Connector>,
    namespace: &str,
    services: usize,
    endpoints: usize,
) -> Result<(), RunError> {
    let writers = (0..CREATE_CLIENTS.min(services.max(1))).map(|w| {
        let mut conn = connector.connection(w);
        async move {
            for i in (w..services).step_by(CREATE_CLIENTS) {
                let name = objects::service_name(i);
                let body = objects::service(namespace, &name, objects::cluster_ip(i));
                conn.send(Method::POST, &objects::services_path(namespace), body)
                    .await
                    .map_err(api(format!("creating Service {name}")))?;
                let body = objects::endpoint_slice(namespace, &name, &objects::initial_endpoints(i, endpoints));
                conn.send(Method::POST, &objects::slices_path(namespace), body)
                    .await
                    .map_err(api(format!("creating EndpointSlice {name}")))?;
            }
            Ok::<(), RunError>(())
        }
    });
    try_join_all(writers).await?;
    Ok(())
}

/// Starts the echo pod, adds the latency Service pointing at it, waits for its rule and compares.
async fn measure_latency(
    args: &SvcArgs,
    connector: &Arc<Connector>,
    namespace: &str,
    agent: &mut AgentProcess,
) -> Result<latency::LatencyComparison, RunError> {
    let exe = std::env::current_exe().map_err(RunError::Exe)?;
    let work_dir = args.work_dir.clone();
    let pod = tokio::task::spawn_blocking(move || EchoPod::start(&exe, &work_dir)).await??;
    let mut conn = connector.connection(0);
    conn.send(
        Method::POST,
        &objects::services_path(namespace),
        objects::service(namespace, LATENCY_SERVICE, LATENCY_SERVICE_IP),
    )
    .await
    .map_err(api("creating the latency Service"))?;
    let slice = objects::endpoint_slice(namespace, LATENCY_SERVICE, &[POD_IP]);
    conn.send(Method::POST, &objects::slices_path(namespace), slice)
        .await
        .map_err(api("creating the latency EndpointSlice"))?;
    agent.wait_programmed(&[LATENCY_SERVICE_IP], Duration::from_secs(30)).await?;
    agent.wait_endpoint(namespace, LATENCY_SERVICE, POD_IP, Duration::from_secs(30)).await?;
    eprintln!(
        "latency: {} new connections and {} round trips to {POD_IP}:{ECHO_PORT} and {LATENCY_SERVICE_IP}:{SERVICE_PORT}",
        args.connections, args.round_trips
    );
    let (connections, round_trips) = (args.connections, args.round_trips);
    let comparison = tokio::task::spawn_blocking(move || {
        let result = latency::compare(LATENCY_SERVICE_IP, SERVICE_PORT, connections, round_trips);
        drop(pod);
        result
    })
    .await??;
    Ok(comparison)
}
