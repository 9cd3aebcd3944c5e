//! `rollout-bench`: a 1,000-replica Deployment from creation to Available, then a full rolling
//! update of it, on simulated nodes.
//!
//! Without `--kubeconfig` it starts its own 3-replica Gantry cluster, whose controller manager runs the
//! scheduler and the Deployment and ReplicaSet controllers. See `gantry_benchmarks::rollout` and
//! `benchmarks/README.md` for what is measured.

use anyhow::{bail, Context as _};
use clap::Parser as _;
use gantry_benchmarks::api::target::{BenchTarget, TargetOptions};
use gantry_benchmarks::rollout::cli::RolloutArgs;
use gantry_benchmarks::rollout::run;

fn main() -> anyhow::Result<()> {
    let args = RolloutArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to build the tokio runtime")?;
    runtime.block_on(main_async(args))
}

async fn main_async(args: RolloutArgs) -> anyhow::Result<()> {
    if let Some(problem) = args.capacity_problem() {
        bail!(problem);
    }
    let target = BenchTarget::connect(&TargetOptions::from(&args)).await?;
    let report = tokio::select! {
        report = run::run(&args, &target) => report?,
        res = tokio::signal::ctrl_c() => {
            res.context("failed to listen for ctrl-c")?;
            bail!("interrupted; the benchmark namespace and simulated nodes may be left behind");
        }
    };
    println!("{}", report.render());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    target.stop().context("failed to stop the gantry cluster")?;
    if !report.completed() {
        bail!("a phase timed out");
    }
    if report.bounds_kept() == Some(false) {
        bail!("the rolling update went beyond maxSurge/maxUnavailable");
    }
    Ok(())
}
