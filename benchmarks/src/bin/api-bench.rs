//! `api-bench`: Kubernetes API throughput, latency, LIST and watch-delay figures.
//!
//! See `benchmarks/README.md` for what is measured and how to run it.

use anyhow::{bail, Context as _};
use clap::Parser as _;
use gantry_benchmarks::api::bench::{self, Target};
use gantry_benchmarks::api::cli::ApiArgs;
use gantry_benchmarks::api::objects;
use gantry_benchmarks::api::target::{BenchTarget, TargetOptions};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// File descriptors needed besides one per connection.
const SPARE_FDS: u64 = 256;

fn main() -> anyhow::Result<()> {
    let args = ApiArgs::parse();
    raise_fd_limit(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to build the tokio runtime")?;
    runtime.block_on(run(args))
}

/// Raises the soft open-file limit to what the largest watcher/client count needs (one socket
/// each), capped at the hard limit. Replicas started later inherit it.
fn raise_fd_limit(args: &ApiArgs) {
    let connections = args.watchers.iter().chain(&args.clients.0).copied().max().unwrap_or(0) as u64;
    // Started replicas hold the server side of every connection too.
    let wanted = 2 * connections + SPARE_FDS;
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < wanted => {
            let target = wanted.min(hard);
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
                eprintln!("warning: cannot raise the open-file limit from {soft} to {target}: {e}");
            } else if target < wanted {
                eprintln!("warning: open-file limit capped at the hard limit {hard} (wanted {wanted})");
            }
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot read the open-file limit: {e}"),
    }
}

async fn run(args: ApiArgs) -> anyhow::Result<()> {
    let cluster = BenchTarget::connect(&TargetOptions::from(&args)).await?;
    let mut processes = cluster.replica_pids();
    processes.extend(args.rss_pids.iter().flatten().map(|pid| (format!("pid {pid}"), *pid)));
    let target = Target { connector: cluster.connector.clone(), self_started: cluster.started.is_some(), processes };

    let namespace = objects::random_namespace();
    eprintln!("api-bench: namespace {namespace}");
    let report = tokio::select! {
        report = bench::run(&args, &target, &namespace) => report?,
        res = tokio::signal::ctrl_c() => {
            res.context("failed to listen for ctrl-c")?;
            bail!("interrupted; namespace {namespace} (and {namespace}-list) may be left behind");
        }
    };
    println!("{}", report.render());
    if let Some(path) = &args.json {
        report.write_json(path).with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    cluster.stop().context("failed to stop the gantry cluster")?;
    if !report.failures.is_empty() {
        bail!("{} phase(s) failed", report.failures.len());
    }
    Ok(())
}
