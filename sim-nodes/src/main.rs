//! `gantry-sim-nodes`: runs simulated nodes against a cluster until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use gantry_sim_nodes::{client_from_kubeconfig_context, SimConfig, SimNodes};

#[derive(Parser, Debug)]
#[command(name = "gantry-sim-nodes", about = "Simulated Kubernetes nodes (no containers), in the manner of kwok")]
struct Args {
    /// Kubeconfig of the cluster to join.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Context of the kubeconfig (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Number of nodes to simulate.
    #[arg(long)]
    nodes: usize,
    /// Node name prefix: nodes are named <prefix>0, <prefix>1, ...
    #[arg(long, default_value = "sim-node-")]
    prefix: String,
    /// CPU capacity of each node.
    #[arg(long, default_value = "8")]
    cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "32Gi")]
    memory: String,
    /// Pod capacity of each node.
    #[arg(long, default_value_t = 110)]
    pods: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let client = client_from_kubeconfig_context(&args.kubeconfig, args.context.as_deref()).await?;
    let config = SimConfig {
        nodes: args.nodes,
        name_prefix: args.prefix,
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        ..SimConfig::default()
    };
    let sim = SimNodes::start(client, config).await.context("starting simulated nodes")?;
    // rollout-bench waits for this line: the nodes are registered and the pod watch has listed.
    tracing::info!(nodes = sim.node_names().len(), "running; stop with SIGINT or SIGTERM");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
