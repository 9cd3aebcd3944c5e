//! `sched-bench`: scheduler throughput (pods bound per second) and create->bound latency.
//!
//! Without `--kubeconfig` it starts its own 3-replica Gantry cluster, whose controller manager runs the
//! scheduler. See `gantry_benchmarks::sched` for what is measured.

use anyhow::{bail, Context as _};
use clap::Parser as _;
use gantry_benchmarks::api::target::{BenchTarget, TargetOptions};
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
    let target = BenchTarget::connect(&TargetOptions::from(&args)).await?;
    let report = tokio::select! {
        report = run::run(&args, target.connector.clone()) => report?,
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
    target.stop().context("failed to stop the gantry cluster")?;
    if report.timed_out || report.summary.bound < report.pods {
        bail!("only {} of {} pods were bound", report.summary.bound, report.pods);
    }
    Ok(())
}
