//! `gantry-node-agent` binary: parses the flags, sets up logging and runs the agent until SIGINT or
//! SIGTERM.

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let config = gantry_node_agent::Config::parse();
    if config.cleanup {
        let removed = gantry_node_agent::cleanup(&config).await?;
        println!(
            "removed {removed} pod(s) of node {} from the runtime and {}",
            config.node_name,
            config.root_dir.display()
        );
        return Ok(());
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
    });
    gantry_node_agent::run(config, rx).await?;
    Ok(())
}
