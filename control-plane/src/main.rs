//! `gantry-control-plane`: runs one control-plane replica until SIGTERM or SIGINT.

use clap::Parser;
use gantry_control_plane::{run_replica, ReplicaArgs};
use tokio::signal::unix::{signal, SignalKind};

// glibc's malloc kept over a GiB of freed memory per replica under API load (per-thread arenas and
// fragmentation from large list bodies); mimalloc returns it and keeps a replica holding 10k pods small.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = ReplicaArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gantry-control-plane: cannot start async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutdown signal received");
        };
        run_replica(args, shutdown).await?;
        Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gantry-control-plane: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
