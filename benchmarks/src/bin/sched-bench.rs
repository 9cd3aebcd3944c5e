//! `sched-bench`: scheduler throughput (pods bound per second) and create->bound latency.
//!
//! Without `--kubeconfig` it starts its own 3-replica Gantry cluster, whose controller manager runs the
//! scheduler. See `gantry_benchmarks::sched` for what is measured.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Parser as _;
use gantry_benchmarks::api::client::Connector;
use gantry_benchmarks::api::{kubeconfig, launcher};
use gantry_benchmarks::sched::cli::SchedArgs;
use gantry_benchmarks::sched::run;

fn main() -> anyhow::Result<()> {
    let args = SchedArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to build the tokio runtime")?;
    runtime.block_on(main_async(args))
}

async fn main_async(args: SchedArgs) -> anyhow::Result<()> {
    // Keeps the self-started cluster alive until the end (dropping it stops the replicas).
    let mut started = None;
    let connector = match &args.kubeconfig {
        Some(path) => {
            let config = kubeconfig::load(path, args.context.as_deref())
                .with_context(|| format!("cannot use kubeconfig {}", path.display()))?;
            Connector::new(&config, args.request_timeout)?
        }
        None => {
            eprintln!("no --kubeconfig: starting a 3-replica gantry cluster");
            let cluster = launcher::start(
                args.gantry_bin.as_deref(),
                &args.server_log_level,
                &args.work_dir,
                args.startup_timeout,
            )
            .await
            .context("cannot start a gantry cluster")?;
            eprintln!(
                "started {} (api {})",
                cluster.binary.display(),
                cluster.api_servers.iter().map(|s| s.authority()).collect::<Vec<_>>().join(", ")
            );
            let connector =
                Connector::new(&cluster.kubeconfig, args.request_timeout)?.with_servers(cluster.api_servers.clone());
            started = Some(cluster);
            connector
        }
    };
    let report = tokio::select! {
        report = run::run(&args, Arc::new(connector)) => report?,
        res = tokio::signal::ctrl_c() => {
            res.context("failed to listen for ctrl-c")?;
            bail!("interrupted; the benchmark namespace and nodes may be left behind");
        }
    };
    println!("{}", report.render());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(cluster) = started {
        cluster.cluster.stop().context("failed to stop the gantry cluster")?;
    }
    if report.timed_out || report.summary.bound < report.pods {
        bail!("only {} of {} pods were bound", report.summary.bound, report.pods);
    }
    Ok(())
}
