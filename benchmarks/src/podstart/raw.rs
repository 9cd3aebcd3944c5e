//! The raw CRI baseline: the busybox pod of [`workload`](super::workload) started with nothing but
//! `RunPodSandbox`, `CreateContainer` (with the sandbox config) and `StartContainer` on the
//! benchmark's containerd, one after the other and many at once; each pod's start latency runs from
//! the RunPodSandbox request to StartContainer's answer (the container is then RUNNING, which a
//! `ContainerStatus` call checks outside the timing). Removal (StopContainer, StopPodSandbox,
//! RemovePodSandbox) is timed too. Everything carries the run's label, so [`RawRunner::remove_all`]
//! finds what an interrupted batch left; the pods' cgroup directories (containerd never removes
//! pod-level ones) are deleted as well.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gantry_cri_proto::runtime::{
    ContainerState, ContainerStatusRequest, CreateContainerRequest, ImageSpec, ImageStatusRequest,
    ListPodSandboxRequest, PodSandboxFilter, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest,
};
use gantry_cri_proto::CriClients;
use serde::Serialize;
use tokio::task::JoinSet;

use super::figures::{summarize, BatchFigures};
use super::workload::{RawPod, IMAGE, RAW_CGROUP_DIR, RUN_LABEL};
use crate::latency::{LatencyError, LatencySummary};
use crate::sched::objects::rfc3339;

/// Where cgroupfs hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// StopContainer's grace period (the container exits at once on SIGTERM).
const STOP_GRACE_SECONDS: i64 = 5;

/// Why a raw batch failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("connecting to the runtime: {0}")]
    Connect(#[from] gantry_cri_proto::CriError),
    #[error("{call} for {pod}: {message}")]
    Call { call: &'static str, pod: String, message: String },
    #[error("{call} for {pod}: no answer within {after:?}")]
    Timeout { call: &'static str, pod: String, after: Duration },
    #[error("image {0} is not in the runtime (was it imported?)")]
    MissingImage(String),
    #[error("container of {pod} is not running after StartContainer (state {state}, reason {reason:?})")]
    NotRunning { pod: String, state: i32, reason: String },
    #[error(transparent)]
    Latency(#[from] LatencyError),
    #[error("a raw pod task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Figures of one raw batch.
#[derive(Debug, Clone, Serialize)]
pub struct RawBatch {
    /// RunPodSandbox request -> StartContainer answered.
    pub start: BatchFigures,
    pub run_pod_sandbox: LatencySummary,
    pub create_container: LatencySummary,
    pub start_container: LatencySummary,
    /// All pods removed at once: StopContainer request -> RemovePodSandbox answered.
    pub removal: BatchFigures,
    /// Every pod's start, in request order.
    pub pods: Vec<RawTimeline>,
}

/// One raw pod's start for the JSON report: when RunPodSandbox was sent (wall clock, to be matched
/// with containerd's log) and when each call answered, in ms after that.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawTimeline {
    pub name: String,
    /// RFC 3339 UTC with microseconds.
    pub sent_at: String,
    pub sandbox_ms: f64,
    pub created_ms: f64,
    pub started_ms: f64,
}

impl RawTimeline {
    fn of(name: &str, t: &StartTimes, now: Instant, wall_now: SystemTime) -> Self {
        let ms = |to: Instant| to.saturating_duration_since(t.begin).as_secs_f64() * 1000.0;
        let wall = wall_now.checked_sub(now.saturating_duration_since(t.begin)).unwrap_or(wall_now);
        Self {
            name: name.to_string(),
            sent_at: rfc3339(wall, true),
            sandbox_ms: ms(t.sandbox_ready),
            created_ms: ms(t.created),
            started_ms: ms(t.started),
        }
    }
}

/// Instants of one pod's start.
#[derive(Debug, Clone, Copy)]
struct StartTimes {
    begin: Instant,
    sandbox_ready: Instant,
    created: Instant,
    started: Instant,
}

#[derive(Debug, Clone)]
struct Started {
    pod: RawPod,
    sandbox: String,
    container: String,
}

/// Starts and removes raw pods on one runtime. Cheap to clone (one shared gRPC channel).
#[derive(Clone)]
pub struct RawRunner {
    cri: CriClients,
    run_id: String,
    log_root: PathBuf,
    timeout: Duration,
    /// Uids of every pod started, for removing their cgroups.
    uids: Arc<Mutex<Vec<String>>>,
}

impl RawRunner {
    /// Connects to `endpoint`; pods carry `run_id` and log under `log_root`.
    pub async fn connect(endpoint: &str, run_id: &str, log_root: &Path, timeout: Duration) -> Result<Self, RawError> {
        Ok(Self {
            cri: gantry_cri_proto::connect(endpoint, timeout).await?,
            run_id: run_id.to_string(),
            log_root: log_root.to_path_buf(),
            timeout,
            uids: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Fails unless the pod's image is present (CreateContainer never pulls).
    pub async fn check_image(&self) -> Result<(), RawError> {
        let request =
            ImageStatusRequest { image: Some(ImageSpec { image: IMAGE.into(), ..Default::default() }), verbose: false };
        let mut image = self.cri.image.clone();
        let status = self.call("ImageStatus", IMAGE, image.image_status(request)).await?;
        status.image.map(|_| ()).ok_or_else(|| RawError::MissingImage(IMAGE.to_string()))
    }

    async fn call<T>(
        &self,
        call: &'static str,
        pod: &str,
        request: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, RawError> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                Err(RawError::Call { call, pod: pod.to_string(), message: status.message().to_string() })
            }
            Err(_) => Err(RawError::Timeout { call, pod: pod.to_string(), after: self.timeout }),
        }
    }

    /// Starts `pod`: sandbox, container, start; then checks that the container runs.
    async fn start(&self, pod: RawPod) -> Result<(Started, StartTimes), RawError> {
        self.uids.lock().unwrap_or_else(|p| p.into_inner()).push(pod.uid.clone());
        let sandbox_config = pod.sandbox_config(&self.run_id, &self.log_root);
        let container_config = pod.container_config(&self.run_id);
        let mut runtime = self.cri.runtime.clone();
        let begin = Instant::now();
        let request = RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: String::new() };
        let sandbox = self.call("RunPodSandbox", &pod.name, runtime.run_pod_sandbox(request)).await?.pod_sandbox_id;
        let sandbox_ready = Instant::now();
        let request = CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(container_config),
            sandbox_config: Some(sandbox_config),
        };
        let container = self.call("CreateContainer", &pod.name, runtime.create_container(request)).await?.container_id;
        let created = Instant::now();
        let request = StartContainerRequest { container_id: container.clone() };
        self.call("StartContainer", &pod.name, runtime.start_container(request)).await?;
        let started = Instant::now();
        let request = ContainerStatusRequest { container_id: container.clone(), verbose: false };
        let status = self.call("ContainerStatus", &pod.name, runtime.container_status(request)).await?.status;
        let (state, reason) = status.map_or((-1, String::new()), |s| (s.state, s.reason));
        if state != ContainerState::ContainerRunning as i32 {
            return Err(RawError::NotRunning { pod: pod.name.clone(), state, reason });
        }
        Ok((Started { pod, sandbox, container }, StartTimes { begin, sandbox_ready, created, started }))
    }

    /// Stops and removes one started pod and its cgroups: (request, removed) instants.
    async fn remove(&self, started: &Started) -> Result<(Instant, Instant), RawError> {
        let mut runtime = self.cri.runtime.clone();
        let name = &started.pod.name;
        let begin = Instant::now();
        let request = StopContainerRequest { container_id: started.container.clone(), timeout: STOP_GRACE_SECONDS };
        self.call("StopContainer", name, runtime.stop_container(request)).await?;
        self.remove_sandbox(&started.sandbox, name).await?;
        let end = Instant::now();
        remove_cgroups(Path::new(CGROUP_ROOT), &started.pod.cgroup_parent());
        Ok((begin, end))
    }

    async fn remove_sandbox(&self, sandbox: &str, name: &str) -> Result<(), RawError> {
        let mut runtime = self.cri.runtime.clone();
        let request = StopPodSandboxRequest { pod_sandbox_id: sandbox.to_string() };
        self.call("StopPodSandbox", name, runtime.stop_pod_sandbox(request)).await?;
        let request = RemovePodSandboxRequest { pod_sandbox_id: sandbox.to_string() };
        self.call("RemovePodSandbox", name, runtime.remove_pod_sandbox(request)).await?;
        Ok(())
    }

    /// `warmup` unmeasured pods (started and removed), then `n` pods started one after the other
    /// and removed all at once.
    pub async fn sequential(&self, n: usize, warmup: usize) -> Result<RawBatch, RawError> {
        for i in 0..warmup {
            let (started, _) = self.start(RawPod::new(&self.run_id, "warm", i)).await?;
            self.remove(&started).await?;
        }
        let mut pods = Vec::with_capacity(n);
        for i in 0..n {
            pods.push(self.start(RawPod::new(&self.run_id, "seq", i)).await?);
        }
        self.finish(pods).await
    }

    /// `n` pods started at once, then removed all at once.
    pub async fn parallel(&self, n: usize) -> Result<RawBatch, RawError> {
        let mut tasks = JoinSet::new();
        for i in 0..n {
            let (runner, pod) = (self.clone(), RawPod::new(&self.run_id, "par", i));
            tasks.spawn(async move { runner.start(pod).await });
        }
        let mut pods = Vec::with_capacity(n);
        let mut first_error = None;
        while let Some(result) = tasks.join_next().await {
            match result? {
                Ok(pod) => pods.push(pod),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => self.finish(pods).await,
        }
    }

    /// Removes the batch's pods at once and computes its figures.
    async fn finish(&self, mut pods: Vec<(Started, StartTimes)>) -> Result<RawBatch, RawError> {
        let mut tasks = JoinSet::new();
        for (started, _) in &pods {
            let (runner, started) = (self.clone(), started.clone());
            tasks.spawn(async move { runner.remove(&started).await });
        }
        let mut removals = Vec::with_capacity(pods.len());
        while let Some(result) = tasks.join_next().await {
            removals.push(result??);
        }
        pods.sort_by_key(|(_, t)| t.begin);
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        let timelines = pods.iter().map(|(s, t)| RawTimeline::of(&s.pod.name, t, now, wall_now)).collect();
        let times: Vec<StartTimes> = pods.iter().map(|(_, t)| *t).collect();
        let intervals: Vec<(Instant, Instant)> = times.iter().map(|t| (t.begin, t.started)).collect();
        Ok(RawBatch {
            start: BatchFigures::from_intervals(&intervals)?,
            run_pod_sandbox: summarize(times.iter().map(|t| t.sandbox_ready - t.begin))?,
            create_container: summarize(times.iter().map(|t| t.created - t.sandbox_ready))?,
            start_container: summarize(times.iter().map(|t| t.started - t.created))?,
            removal: BatchFigures::from_intervals(&removals)?,
            pods: timelines,
        })
    }

    /// Stops and removes every sandbox of this run still in the runtime and the cgroups of every pod
    /// started; returns how many sandboxes were removed. Best effort: failures are printed.
    pub async fn remove_all(&self) -> usize {
        let mut runtime = self.cri.runtime.clone();
        let filter = PodSandboxFilter {
            label_selector: [(RUN_LABEL.to_string(), self.run_id.clone())].into(),
            ..Default::default()
        };
        let request = ListPodSandboxRequest { filter: Some(filter) };
        let sandboxes = match self.call("ListPodSandbox", "the raw pods", runtime.list_pod_sandbox(request)).await {
            Ok(list) => list.items,
            Err(e) => {
                eprintln!("warning: cannot list the raw sandboxes: {e}");
                Vec::new()
            }
        };
        let mut removed = 0;
        for sandbox in &sandboxes {
            let name = sandbox.metadata.as_ref().map_or(sandbox.id.as_str(), |m| m.name.as_str());
            match self.remove_sandbox(&sandbox.id, name).await {
                Ok(()) => removed += 1,
                Err(e) => eprintln!("warning: removing raw sandbox {name}: {e}"),
            }
        }
        let uids = std::mem::take(&mut *self.uids.lock().unwrap_or_else(|p| p.into_inner()));
        for uid in uids {
            remove_cgroups(Path::new(CGROUP_ROOT), &format!("/{RAW_CGROUP_DIR}/pod{uid}"));
        }
        remove_cgroups(Path::new(CGROUP_ROOT), &format!("/{RAW_CGROUP_DIR}"));
        removed
    }
}

/// Removes `<hierarchy>/<parent>` (children first) in the v2 root and every v1 hierarchy under
/// `cgroup_root`. Missing directories are fine; busy ones are reported.
fn remove_cgroups(cgroup_root: &Path, parent: &str) {
    let relative = parent.trim_start_matches('/');
    let mut hierarchies = vec![cgroup_root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(cgroup_root) {
        hierarchies.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for dir in hierarchies.into_iter().map(|h| h.join(relative)).filter(|d| d.is_dir()) {
        if let Err(e) = remove_tree(&dir) {
            eprintln!("warning: cannot remove cgroup {}: {e}", dir.display());
        }
    }
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_trees_go_in_every_hierarchy_and_others_stay() -> Result<(), std::io::Error> {
        let root = tempfile::tempdir()?;
        for h in ["cpu", "memory"] {
            std::fs::create_dir_all(root.path().join(h).join("bench/poda/ctr"))?;
        }
        std::fs::create_dir_all(root.path().join("cpu/bench/podb"))?;
        remove_cgroups(root.path(), "/bench/poda");
        assert!(!root.path().join("cpu/bench/poda").exists());
        assert!(!root.path().join("memory/bench/poda").exists());
        assert!(root.path().join("cpu/bench/podb").exists());
        remove_cgroups(root.path(), "/not-there");
        Ok(())
    }
}
