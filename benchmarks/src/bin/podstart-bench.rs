//! `podstart-bench`: pod start latency and throughput on one node, through the API and the node agent
//! against raw CRI calls, and the agent's memory with many pods. Needs root.
//!
//! See `benchmarks/README.md` for what is measured and how to run it.

use anyhow::{bail, Context as _};
use clap::Parser as _;
use gantry_benchmarks::podstart::cli::PodStartArgs;
use gantry_benchmarks::podstart::node::NodeEnv;
use gantry_benchmarks::podstart::report::Report;
use gantry_benchmarks::podstart::run;

fn main() -> anyhow::Result<()> {
    let args = PodStartArgs::parse();
    if !nix::unistd::Uid::effective().is_root() {
        bail!("podstart-bench needs root (it runs containerd, CNI networking and the node agent)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to build the tokio runtime")?;
    runtime.block_on(main_async(args))
}

async fn main_async(args: PodStartArgs) -> anyhow::Result<()> {
    let mut env = NodeEnv::new(&args)?;
    eprintln!("podstart-bench: working in {}", env.dir().display());
    let mut report = Report::new(&args);
    let outcome = tokio::select! {
        outcome = run::run(&args, &mut env, &mut report) => outcome.map_err(anyhow::Error::from),
        res = tokio::signal::ctrl_c() => match res {
            Ok(()) => Err(anyhow::anyhow!("interrupted")),
            Err(e) => Err(anyhow::Error::from(e).context("failed to listen for ctrl-c")),
        },
    };
    eprintln!("cleaning up");
    env.teardown(args.keep_logs.as_deref()).await;
    report.check_targets();
    println!("{}", report.render());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    outcome?;
    if !report.failures.is_empty() {
        bail!("{} phase(s) failed", report.failures.len());
    }
    Ok(())
}
