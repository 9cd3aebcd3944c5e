//! What the runtime holds for one pod, as plain values: its sandboxes and containers (every attempt).
//! Converting from CRI messages happens here so the planning and status code never sees wire types.

use gantry_cri_proto::runtime::{self as cri, ContainerState, PodSandboxState};

use crate::runtime::CONTAINER_NAME_LABEL;

/// A container's runtime state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// One sandbox of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
    /// The pod IP, once read from `PodSandboxStatus`.
    pub ip: Option<String>,
}

/// One container (one attempt) of the pod. Times are nanoseconds since the epoch, 0 when unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    pub sandbox_id: String,
    pub state: RunState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image_ref: String,
}

impl ContainerInfo {
    pub fn succeeded(&self) -> bool {
        self.state == RunState::Exited && self.exit_code == 0
    }

    pub fn failed(&self) -> bool {
        self.state == RunState::Exited && self.exit_code != 0
    }

    /// `Completed`, `Error`, or the runtime's reason (`OOMKilled`, `StartError`).
    pub fn termination_reason(&self) -> String {
        match self.reason.as_str() {
            "" if self.exit_code == 0 => "Completed".into(),
            "" => "Error".into(),
            other => other.into(),
        }
    }
}

/// Everything the runtime holds for one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub sandboxes: Vec<SandboxInfo>,
    pub containers: Vec<ContainerInfo>,
}

impl Observed {
    /// The newest sandbox (highest attempt, then newest).
    pub fn current_sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes.iter().max_by_key(|s| (s.attempt, s.created_at))
    }

    /// The newest ready sandbox.
    pub fn ready_sandbox(&self) -> Option<&SandboxInfo> {
        self.current_sandbox().filter(|s| s.ready)
    }

    /// Attempts of container `name`, newest first.
    pub fn attempts(&self, name: &str) -> Vec<&ContainerInfo> {
        let mut all: Vec<_> = self.containers.iter().filter(|c| c.name == name).collect();
        all.sort_by_key(|c| std::cmp::Reverse((c.attempt, c.created_at)));
        all
    }

    /// The newest attempt of `name`.
    pub fn latest(&self, name: &str) -> Option<&ContainerInfo> {
        self.attempts(name).into_iter().next()
    }

    /// The newest attempt of `name` inside sandbox `sandbox_id`.
    pub fn latest_in(&self, name: &str, sandbox_id: &str) -> Option<&ContainerInfo> {
        self.attempts(name).into_iter().find(|c| c.sandbox_id == sandbox_id)
    }

    /// The attempt number the next container named `name` gets.
    pub fn next_attempt(&self, name: &str) -> u32 {
        self.latest(name).map_or(0, |c| c.attempt + 1)
    }
}

/// A sandbox from `ListPodSandbox` (the IP comes later from `PodSandboxStatus`).
pub fn sandbox_from_cri(s: &cri::PodSandbox) -> SandboxInfo {
    SandboxInfo {
        id: s.id.clone(),
        attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
        ready: s.state == PodSandboxState::SandboxReady as i32,
        created_at: s.created_at,
        ip: None,
    }
}

/// A CRI container state value.
pub fn run_state(state: i32) -> RunState {
    match ContainerState::try_from(state) {
        Ok(ContainerState::ContainerCreated) => RunState::Created,
        Ok(ContainerState::ContainerRunning) => RunState::Running,
        Ok(ContainerState::ContainerExited) => RunState::Exited,
        _ => RunState::Unknown,
    }
}

/// A container from `ContainerStatus` (which, unlike `ListContainers`, has exit codes and times).
pub fn container_from_cri(s: &cri::ContainerStatus, sandbox_id: &str) -> ContainerInfo {
    let state = run_state(s.state);
    let name = s
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .or_else(|| s.labels.get(CONTAINER_NAME_LABEL).cloned())
        .unwrap_or_default();
    ContainerInfo {
        id: s.id.clone(),
        name,
        attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
        sandbox_id: sandbox_id.to_string(),
        state,
        created_at: s.created_at,
        started_at: s.started_at,
        finished_at: s.finished_at,
        exit_code: s.exit_code,
        reason: s.reason.clone(),
        message: s.message.clone(),
        image_ref: s.image_ref.clone(),
    }
}
