//! `store-bench`: the Gantry replicated store versus etcd, 3 members each.
//!
//! See `benchmarks/README.md` for what is measured and how to run it.

use anyhow::{bail, Context as _};
use clap::Parser as _;
use gantry_benchmarks::bench::{BenchRunner, Launcher};
use gantry_benchmarks::cli::Args;
use gantry_benchmarks::etcd::EtcdLauncher;
use gantry_benchmarks::gantry::GantryLauncher;
use gantry_benchmarks::report::Report;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to build the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Resolve both binaries before starting anything, so a missing one fails fast.
    let mut launchers = Vec::new();
    if args.system.includes_gantry() {
        let gantry = GantryLauncher::locate(args.gantry_bin.as_deref(), &args.server_log_level)
            .context("cannot benchmark the gantry store")?;
        launchers.push(Launcher::Gantry(gantry));
    }
    if args.system.includes_etcd() {
        let etcd = EtcdLauncher::new(&args.etcd_bin, &args.server_log_level).context("cannot benchmark etcd")?;
        launchers.push(Launcher::Etcd(etcd));
    }

    let runner = BenchRunner::from_args(&args);
    eprintln!(
        "store-bench: {} system(s), about {} s of measured load each (plus startup, idle and preload)",
        launchers.len(),
        runner.rows_time().as_secs()
    );
    let mut report = Report { settings: runner.settings(), gantry: None, etcd: None, failures: Vec::new() };

    let work = async {
        // One system at a time, so the two never compete for the CPU.
        for launcher in &launchers {
            match runner.run(launcher).await {
                Ok(r) => match launcher {
                    Launcher::Gantry(_) => report.gantry = Some(r),
                    Launcher::Etcd(_) => report.etcd = Some(r),
                },
                Err(e) => {
                    let msg = format!("{:#}", anyhow::Error::new(e));
                    eprintln!("error: {msg}");
                    report.failures.push(msg);
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        res = tokio::signal::ctrl_c() => {
            res.context("failed to listen for ctrl-c")?;
            // Dropping `work` dropped the running cluster, which stopped its
            // members and removed its temp dir.
            bail!("interrupted; clusters stopped");
        }
    }

    println!("{}", report.render());
    if let Some(path) = &args.json {
        report.write_json(path).with_context(|| format!("failed to write the json report to {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if !report.failures.is_empty() {
        bail!("{} system run(s) failed", report.failures.len());
    }
    Ok(())
}
