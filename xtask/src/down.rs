//! `cargo xtask down`: stop the local cluster started by `cargo xtask up`.
//!
//! Reads `.gantry/cluster.json`, stops the node first (agent, its pods, containerd, network and
//! mounts; see [`crate::node::stop`]), then sends SIGTERM to every replica that is still running (a pid is only
//! signalled while its command line still names the replica's data dir, so a recycled pid is left
//! alone), waits up to 10 s, sends SIGKILL to stragglers and removes `cluster.json`. The data dirs and
//! `layout.json` stay, so the next `up` resumes the same cluster; `--purge` deletes all of `.gantry/`.
//! Running it when nothing is up does nothing (besides `--purge`).

use std::fs;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::cluster::{self, Cluster, Paths};
use crate::util::{self, step, warn, Workspace};

/// How long replicas get to shut down cleanly after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also delete `.gantry/`: data dirs, logs and the recorded layout.
    #[arg(long)]
    purge: bool,
}

pub fn run(args: Args) -> Result<()> {
    let ws = Workspace::locate()?;
    let paths = Paths::new(&ws.root);

    match cluster::read_json::<Cluster>(&paths.cluster_file())? {
        None => step(format!("no local cluster is recorded ({} does not exist)", paths.show(&paths.cluster_file()))),
        Some(c) => {
            if let Some(node) = &c.node {
                crate::node::stop(&paths, node);
            }
            let running: Vec<_> = c.nodes.iter().filter(|n| n.is_running()).collect();
            for n in &c.nodes {
                if !running.iter().any(|r| r.id == n.id) {
                    step(format!("node {} (pid {}) is not running", n.id, n.pid));
                }
            }
            for n in &running {
                step(format!("stopping node {} (pid {}) with SIGTERM", n.id, n.pid));
                if let Err(err) = util::signal(n.pid, "TERM") {
                    warn(format!("{err:#}"));
                }
            }
            let pids: Vec<u32> = running.iter().map(|n| n.pid).collect();
            let stragglers = util::wait_for_exit(&pids, GRACE);
            for pid in &stragglers {
                warn(format!("pid {pid} still running {} s after SIGTERM; sending SIGKILL", GRACE.as_secs()));
                if let Err(err) = util::signal(*pid, "KILL") {
                    warn(format!("{err:#}"));
                }
            }
            let left = util::wait_for_exit(&stragglers, Duration::from_secs(5));
            ensure!(
                left.is_empty(),
                "pids {left:?} are still running after SIGKILL; {} was kept",
                paths.show(&paths.cluster_file())
            );
            fs::remove_file(paths.cluster_file())
                .with_context(|| format!("cannot remove {}", paths.cluster_file().display()))?;
            step(format!("the local cluster is down ({} replicas stopped)", running.len()));
        }
    }

    if args.purge {
        if paths.dir.exists() {
            step(format!("deleting {}", paths.show(&paths.dir)));
            fs::remove_dir_all(&paths.dir).with_context(|| format!("cannot delete {}", paths.dir.display()))?;
        } else {
            step(format!("{} does not exist", paths.show(&paths.dir)));
        }
    } else if paths.dir.exists() {
        util::say(format!(
            "Data and logs are kept in {}; `cargo xtask up` resumes this cluster, \
             `cargo xtask down --purge` deletes them.",
            paths.show(&paths.dir)
        ));
    }
    Ok(())
}
