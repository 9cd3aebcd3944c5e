//! `svc-bench`: the node agent's service proxy with 1,000 Services × 10 endpoints on one node: full
//! resync, EndpointSlice change → rule, and a ClusterIP's added latency. Needs root and nftables.
//!
//! Without `--kubeconfig` it starts its own 3-replica Gantry cluster. See `gantry_benchmarks::svc`
//! and `benchmarks/README.md` for what is measured.

use anyhow::{bail, Context as _};
use clap::Parser as _;
use gantry_benchmarks::api::target::{BenchTarget, TargetOptions};
use gantry_benchmarks::svc::cli::SvcArgs;
use gantry_benchmarks::svc::latency::{echo_server, ECHO_SERVER_ARG};
use gantry_benchmarks::svc::run;

fn main() -> anyhow::Result<()> {
    // The latency phase re-runs this executable inside the pod's network namespace as the echo server.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(ECHO_SERVER_ARG) {
        let addr = argv.get(2).context("usage: svc-bench __echo-server ADDR")?;
        return echo_server(addr).with_context(|| format!("echo server on {addr}"));
    }
    let args = SvcArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to build the tokio runtime")?;
    runtime.block_on(main_async(args))
}

async fn main_async(args: SvcArgs) -> anyhow::Result<()> {
    let target = BenchTarget::connect(&TargetOptions::from(&args)).await?;
    let report = tokio::select! {
        report = run::run(&args, &target) => report,
        res = tokio::signal::ctrl_c() => {
            res.context("failed to listen for ctrl-c")?;
            bail!("interrupted; the benchmark namespace, the agent's nftables table and the echo pod's network \
                   namespace may be left behind");
        }
    };
    let stopped = target.stop();
    let report = report?;
    println!("{}", report.render());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    stopped.context("failed to stop the gantry cluster")?;
    if !report.changes.missed.is_empty() {
        bail!(
            "{} changes were not seen in the kernel in time: {:?}",
            report.changes.missed.len(),
            report.changes.missed
        );
    }
    Ok(())
}
