//! `api-bench`: Kubernetes API throughput, latency, LIST and watch-delay figures.
//!
//! See `benchmarks/README.md` for what is measured and how to run it.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Parser as _;
use gantry_benchmarks::api::bench::{self, Target};
use gantry_benchmarks::api::cli::ApiArgs;
use gantry_benchmarks::api::client::Connector;
use gantry_benchmarks::api::{kubeconfig, launcher, objects};
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
    // Keeps the self-started cluster alive until the end (dropping it stops the replicas).
    let mut started = None;
    let target = match &args.kubeconfig {
        Some(path) => {
            let config = kubeconfig::load(path, args.context.as_deref())
                .with_context(|| format!("cannot use kubeconfig {}", path.display()))?;
            let connector = Connector::new(&config, args.request_timeout)?;
            let processes = args.rss_pids.iter().flatten().map(|pid| (format!("pid {pid}"), *pid)).collect();
            Target { connector: Arc::new(connector), self_started: false, processes }
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
            let mut processes: Vec<(String, u32)> = cluster
                .cluster
                .memory()
                .context("cannot read the replicas' memory")?
                .into_iter()
                .map(|m| (m.member, m.pid))
                .collect();
            processes.extend(args.rss_pids.iter().flatten().map(|pid| (format!("pid {pid}"), *pid)));
            started = Some(cluster);
            Target { connector: Arc::new(connector), self_started: true, processes }
        }
    };

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
    if let Some(cluster) = started {
        cluster.cluster.stop().context("failed to stop the gantry cluster")?;
    }
    if !report.failures.is_empty() {
        bail!("{} phase(s) failed", report.failures.len());
    }
    Ok(())
}
