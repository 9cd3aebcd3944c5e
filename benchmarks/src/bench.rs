//! The benchmark sequence for one system.
//!
//! [`BenchRunner::run`] starts the cluster, waits until every member reports a
//! leader, idles (the "idle RSS" sample is `VmRSS` at the end of that idle
//! period), preloads the key space, runs every (workload, clients) row in
//! order, samples `VmHWM` (peak RSS) and stops the cluster. The cluster is a
//! drop guard, so an error or a cancelled future (Ctrl-C) still stops the
//! members and removes the data dirs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{Args, TargetChoice};
use crate::cluster::{Cluster, ClusterError, SystemKind};
use crate::etcd::{EtcdError, EtcdLauncher};
use crate::gantry::{GantryError, GantryLauncher};
use crate::report::{Settings, SystemReport};
use crate::rss::kib_to_mib;
use crate::workload::{LoadConfig, LoadGenerator, Workload, WorkloadError};

/// Errors of one system's benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The Gantry store could not be started.
    #[error("failed to start the gantry store")]
    Gantry(#[from] GantryError),
    /// etcd could not be started.
    #[error("failed to start etcd")]
    Etcd(#[from] EtcdError),
    /// Readiness, memory sampling or teardown failed.
    #[error("cluster error")]
    Cluster(#[from] ClusterError),
    /// The preload failed.
    #[error("{system}: preload failed")]
    Preload {
        /// System.
        system: SystemKind,
        /// Underlying error.
        #[source]
        source: WorkloadError,
    },
    /// A benchmark row failed.
    #[error("{system}: {workload} with {clients} clients failed")]
    Row {
        /// System.
        system: SystemKind,
        /// Workload.
        workload: Workload,
        /// Clients.
        clients: usize,
        /// Underlying error.
        #[source]
        source: WorkloadError,
    },
}

/// A system to benchmark.
#[derive(Debug, Clone)]
pub enum Launcher {
    /// Gantry store.
    Gantry(GantryLauncher),
    /// etcd.
    Etcd(EtcdLauncher),
}

impl Launcher {
    /// Which system.
    pub fn system(&self) -> SystemKind {
        match self {
            Self::Gantry(_) => SystemKind::Gantry,
            Self::Etcd(_) => SystemKind::Etcd,
        }
    }

    /// Server binary.
    pub fn binary(&self) -> &Path {
        match self {
            Self::Gantry(l) => l.binary(),
            Self::Etcd(l) => l.binary(),
        }
    }

    fn start(&self, parent: &Path) -> Result<Cluster, BenchError> {
        Ok(match self {
            Self::Gantry(l) => l.start(parent)?,
            Self::Etcd(l) => l.start(parent)?,
        })
    }
}

/// Runs the benchmark sequence against one system at a time.
#[derive(Debug, Clone)]
pub struct BenchRunner {
    clients: Vec<usize>,
    workloads: Vec<Workload>,
    load: LoadConfig,
    preload_clients: usize,
    preload_batch: u64,
    startup_timeout: Duration,
    idle: Duration,
    stop_timeout: Duration,
    work_dir: PathBuf,
    target: TargetChoice,
}

impl BenchRunner {
    /// Settings from the command line.
    pub fn from_args(args: &Args) -> Self {
        Self {
            clients: args.clients.0.clone(),
            workloads: args.workloads.clone(),
            load: LoadConfig {
                keys: args.keys,
                value_size: usize::try_from(args.value_size).unwrap_or(256),
                clients_per_conn: usize::try_from(args.clients_per_conn).unwrap_or(16),
                request_timeout: args.request_timeout,
                warmup: args.warmup,
                duration: args.duration,
            },
            preload_clients: usize::try_from(args.preload_clients).unwrap_or(64),
            preload_batch: args.preload_batch,
            startup_timeout: args.startup_timeout,
            idle: args.idle,
            stop_timeout: args.stop_timeout,
            work_dir: args.work_dir.clone().unwrap_or_else(std::env::temp_dir),
            target: args.target,
        }
    }

    /// The settings block of the report.
    pub fn settings(&self) -> Settings {
        Settings {
            clients: self.clients.clone(),
            workloads: self.workloads.clone(),
            duration_secs: self.load.duration.as_secs_f64(),
            warmup_secs: self.load.warmup.as_secs_f64(),
            keys: self.load.keys,
            value_size: self.load.value_size,
            clients_per_conn: self.load.clients_per_conn,
            idle_secs: self.idle.as_secs_f64(),
            target: self.target,
        }
    }

    /// Upper bound of the time one system takes, excluding startup/preload.
    pub fn rows_time(&self) -> Duration {
        let rows = u32::try_from(self.clients.len() * self.workloads.len()).unwrap_or(u32::MAX);
        (self.load.warmup + self.load.duration) * rows
    }

    /// Runs everything against one system; progress goes to stderr.
    pub async fn run(&self, launcher: &Launcher) -> Result<SystemReport, BenchError> {
        let system = launcher.system();
        eprintln!("[{system}] starting 3 members ({}) under {}", launcher.binary().display(), self.work_dir.display());
        let spawned = Instant::now();
        let mut cluster = launcher.start(&self.work_dir)?.with_stop_timeout(self.stop_timeout);
        cluster.wait_ready(self.startup_timeout).await?;
        let startup_secs = spawned.elapsed().as_secs_f64();
        eprintln!(
            "[{system}] ready after {startup_secs:.1} s at {}; idling {:?}",
            cluster.endpoints().join(","),
            self.idle
        );

        tokio::time::sleep(self.idle).await;
        let idle_memory = cluster.memory()?;
        for m in &idle_memory {
            eprintln!("[{system}] {} idle RSS {:.1} MiB", m.member, kib_to_mib(m.memory.rss_kib));
        }

        let leader = cluster.leader_index().await?;
        let endpoints = match self.target {
            TargetChoice::All => cluster.endpoints().to_vec(),
            TargetChoice::Leader => vec![cluster.endpoints()[leader].clone()],
            TargetChoice::Follower => {
                let follower = (leader + 1) % cluster.endpoints().len();
                vec![cluster.endpoints()[follower].clone()]
            }
        };
        let leader_name = cluster.pids().get(leader).map(|(name, _)| name.clone()).unwrap_or_default();
        eprintln!("[{system}] leader is {leader_name}; clients talk to {}", self.target);
        let generator = LoadGenerator::new(endpoints, self.load.clone())
            .map_err(|source| BenchError::Preload { system, source })?;
        let preload = if self.workloads.contains(&Workload::Range) {
            eprintln!(
                "[{system}] preloading {} keys with {} clients, {} puts per request",
                self.load.keys, self.preload_clients, self.preload_batch
            );
            let p = generator
                .preload(self.preload_clients, self.preload_batch)
                .await
                .map_err(|source| BenchError::Preload { system, source })?;
            eprintln!("[{system}] preloaded in {:.1} s ({:.0} puts/s)", p.secs, p.keys as f64 / p.secs.max(1e-9));
            Some(p)
        } else {
            None
        };

        let servers: Vec<u32> = cluster.pids().into_iter().map(|(_, pid)| pid).collect();
        let mut rows = Vec::new();
        for &workload in &self.workloads {
            for &clients in &self.clients {
                let row = generator.run(workload, clients, &servers).await.map_err(|source| BenchError::Row {
                    system,
                    workload,
                    clients,
                    source,
                })?;
                eprintln!(
                    "[{system}] {workload:<5} clients={clients:<4} conns={:<3} {:>8.0} ops/s  \
                     p50 {:.2} ms  p99 {:.2} ms  cpu {} us/op  errors {}{}",
                    row.connections,
                    row.ops_per_sec,
                    row.latency.p50_ms,
                    row.latency.p99_ms,
                    row.cpu_us_per_op().map_or("-".into(), |c| format!("{c:.0}")),
                    row.errors,
                    row.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
                );
                rows.push(row);
            }
        }

        let peak_memory = cluster.memory()?;
        eprintln!("[{system}] stopping");
        cluster.stop()?;
        Ok(SystemReport {
            system,
            binary: launcher.binary().display().to_string(),
            startup_secs,
            leader: leader_name,
            idle_memory,
            preload,
            rows,
            peak_memory,
        })
    }
}
