//! One task per pod: observes the pod's sandboxes and containers over CRI, carries out what
//! [`plan`](super::plan) decides, sends the [`status`](super::status) when it changed, and on deletion
//! stops everything with the grace period and completes the deletion in the API. Holds the pod's
//! back-off and pull-failure state; all decisions live in the pure modules.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gantry_cri_proto::runtime::PodSandboxConfig;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::Client;
use tokio::sync::watch;
use tracing::{debug, info, info_span, warn, Instrument};

use super::backoff::BackOff;
use super::grace::StopReason;
use super::kill::{kill_container, kill_running, post_start_or_kill};
use super::observed::{container_from_cri, run_state, sandbox_from_cri, ContainerInfo, Observed};
use super::plan::{pull_key, Action, Plan, PullFailures, Waiting};
use super::probe::action::pod_address;
use super::probe::{ProbeEnv, ProbeManager, ProbeResults};
use super::spec::{container_config, sandbox_config, Downward, PodIdentity};
use super::status::{pod_status, StatusContext};
use super::teardown::teardown;
use crate::events::EventRecorder;
use crate::runtime::{pod_selector, Runtime, RuntimeError};

/// Grace period for pods that vanished from the API without a graceful deletion.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(2);
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// Re-plans in one sync before the status is sent (a sandbox, then its containers, then checks).
const MAX_ROUNDS: usize = 4;

/// What every worker shares.
pub struct WorkerEnv {
    pub client: Client,
    pub runtime: Runtime,
    /// Deadline for image pulls.
    pub pull_runtime: Runtime,
    pub node: String,
    pub root: PathBuf,
    pub host_ip: String,
    pub resync: Duration,
    /// Events about pods (probe failures, kills, hook failures).
    pub events: EventRecorder,
}

/// Why one sync step failed (logged; the worker retries on its next pass).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("pod {pod}: {source}")]
    Spec { pod: String, source: super::spec::SpecError },
    #[error("updating status of pod {pod}: {source}")]
    Status { pod: String, source: kube::Error },
    #[error("deleting pod {pod}: {source}")]
    Delete { pod: String, source: kube::Error },
}

/// The per-pod state kept between passes.
pub struct PodWorker {
    env: Arc<WorkerEnv>,
    uid: String,
    backoff: BackOff,
    pulls: PullFailures,
    /// Errors of this pass's steps (ErrImagePull, CreateContainerConfigError...), by container.
    errors: BTreeMap<String, Waiting>,
    /// ContainerStatus answers by container id (re-read only when the listed state changes).
    containers: HashMap<String, ContainerInfo>,
    sandbox_ips: HashMap<String, Option<String>>,
    last_status: Option<PodStatus>,
    /// The probes of the pod's running containers; a changed result wakes the worker.
    probes: ProbeManager,
}

impl PodWorker {
    pub fn new(env: Arc<WorkerEnv>, uid: String) -> Self {
        let probes = ProbeManager::new(ProbeEnv { runtime: env.runtime.clone(), events: env.events.clone() });
        Self {
            probes,
            env,
            uid,
            backoff: BackOff::default(),
            pulls: PullFailures::new(),
            errors: BTreeMap::new(),
            containers: HashMap::new(),
            sandbox_ips: HashMap::new(),
            last_status: None,
        }
    }

    /// Runs until the pod is gone from the API (`None`) and torn down, or until shutdown.
    pub async fn run(mut self, mut pod_rx: watch::Receiver<Option<Arc<Pod>>>, mut shutdown: watch::Receiver<bool>) {
        let span = info_span!("pod", uid = %self.uid);
        async move {
            loop {
                let pod = pod_rx.borrow_and_update().clone();
                let wake = match pod {
                    None => {
                        if let Err(e) = self.gone().await {
                            warn!(error = %e, "tearing down a deleted pod");
                        }
                        return;
                    }
                    Some(pod) => {
                        let result = if pod.metadata.deletion_timestamp.is_some() {
                            self.terminate(&pod).await
                        } else {
                            self.sync(&pod).await
                        };
                        result.unwrap_or_else(|e| {
                            warn!(error = %e, "pod sync failed");
                            self.env.resync
                        })
                    }
                };
                tokio::select! {
                    changed = pod_rx.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(wake) => {}
                    _ = self.probes.changed() => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn gone(&mut self) -> Result<(), RuntimeError> {
        info!("pod no longer exists: removing its sandboxes and containers");
        self.probes.stop_all();
        teardown(&self.env.runtime, &self.env.node, &self.env.root, &self.uid, ORPHAN_GRACE).await
    }

    /// A deleting pod: stop with the grace period, remove everything, then finish the deletion.
    async fn terminate(&mut self, pod: &Pod) -> Result<Duration, WorkerError> {
        let id = PodIdentity::of(pod).map_err(|source| WorkerError::Spec { pod: self.uid.clone(), source })?;
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(DEFAULT_GRACE_SECONDS)
            .max(0);
        info!(pod = %id.key(), grace_seconds = grace, "terminating pod");
        self.stop_containers(pod, &id).await?;
        let grace = Duration::from_secs(grace as u64);
        teardown(&self.env.runtime, &self.env.node, &self.env.root, &self.uid, grace).await?;
        let pods: Api<Pod> = Api::namespaced(self.env.client.clone(), &id.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(id.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        match pods.delete(&id.name, &params).await {
            Ok(_) => info!(pod = %id.key(), "pod deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(source) => return Err(WorkerError::Delete { pod: id.key(), source }),
        }
        Ok(self.env.resync)
    }

    /// One pass for a live pod: observe, act until the plan is empty, send the status if it changed.
    async fn sync(&mut self, pod: &Pod) -> Result<Duration, WorkerError> {
        let id = PodIdentity::of(pod).map_err(|source| WorkerError::Spec { pod: self.uid.clone(), source })?;
        self.errors.clear();
        let mut observed = self.observe().await?;
        let mut plan = Plan::default();
        for _ in 0..MAX_ROUNDS {
            self.probes.update(pod, &observed, &self.pod_address(pod, &observed));
            let probes = self.probes.results();
            plan = super::plan::plan(pod, &observed, &self.backoff, &self.pulls, &probes, Timestamp::now());
            if plan.actions.is_empty() {
                break;
            }
            debug!(pod = %id.key(), actions = ?plan.actions, "carrying out plan");
            self.execute(pod, &id, &observed, &plan.actions).await?;
            observed = self.observe().await?;
        }
        let mut waiting = plan.waiting.clone();
        waiting.extend(self.errors.clone());
        self.probes.update(pod, &observed, &self.pod_address(pod, &observed));
        let probes = self.probes.results();
        let ctx =
            StatusContext { waiting: &waiting, probes: &probes, host_ip: &self.env.host_ip, now: Timestamp::now() };
        let status = pod_status(pod, &observed, &ctx);
        self.send_status(pod, &id, status).await?;
        Ok(plan.wake_after.map_or(self.env.resync, |w| w.min(self.env.resync)))
    }

    async fn observe(&mut self) -> Result<Observed, RuntimeError> {
        let selector = pod_selector(&self.env.node, &self.uid);
        let mut observed = Observed::default();
        for s in self.env.runtime.sandboxes(selector.clone()).await? {
            let mut info = sandbox_from_cri(&s);
            if !self.sandbox_ips.contains_key(&s.id) && info.ready {
                let status = self.env.runtime.sandbox_status(&s.id).await?;
                let ip = status.and_then(|st| st.network).map(|n| n.ip).filter(|ip| !ip.is_empty());
                self.sandbox_ips.insert(s.id.clone(), ip);
            }
            info.ip = self.sandbox_ips.get(&s.id).cloned().flatten();
            observed.sandboxes.push(info);
        }
        self.sandbox_ips.retain(|id, _| observed.sandboxes.iter().any(|s| &s.id == id));
        let listed = self.env.runtime.containers(selector).await?;
        let mut fresh = HashMap::new();
        for c in listed {
            let listed_state = run_state(c.state);
            let info = match self.containers.remove(&c.id) {
                Some(cached) if cached.state == listed_state => cached,
                _ => match self.env.runtime.container_status(&c.id).await? {
                    Some(status) => container_from_cri(&status, &c.pod_sandbox_id),
                    None => continue,
                },
            };
            fresh.insert(c.id.clone(), info);
        }
        self.containers = fresh;
        observed.containers = self.containers.values().cloned().collect();
        Ok(observed)
    }

    async fn execute(
        &mut self,
        pod: &Pod,
        id: &PodIdentity,
        observed: &Observed,
        actions: &[Action],
    ) -> Result<(), WorkerError> {
        let spec_err = |source| WorkerError::Spec { pod: id.key(), source };
        let runtime = self.env.runtime.clone();
        for action in actions {
            match action {
                Action::RemoveSandbox { id: sandbox } => {
                    runtime.stop_sandbox(sandbox).await?;
                    runtime.remove_sandbox(sandbox).await?;
                }
                Action::StopSandbox { id: sandbox } => runtime.stop_sandbox(sandbox).await?,
                Action::CreateSandbox { attempt } => {
                    let config = sandbox_config(pod, *attempt, &self.env.root, &self.env.node).map_err(spec_err)?;
                    let sandbox = runtime.run_sandbox(config, &format!("pod {}", id.key())).await?;
                    info!(pod = %id.key(), sandbox = %sandbox, attempt, "sandbox running");
                }
                Action::StartCreated { id: container } => runtime.start_container(container).await?,
                Action::RemoveContainer { id: container } => runtime.remove_container(container).await?,
                Action::KillContainer { id: container, name, reason } => {
                    let specs = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
                    let Some(c) = specs.iter().find(|c| &c.name == name) else { continue };
                    let address = self.pod_address(pod, observed);
                    kill_container(&runtime, &self.env.events, pod, c, container, &address, *reason).await?;
                }
                Action::StartContainer { name, init, attempt, restart_of } => {
                    let Some(sandbox) = observed.ready_sandbox() else { continue };
                    let config =
                        sandbox_config(pod, sandbox.attempt, &self.env.root, &self.env.node).map_err(spec_err)?;
                    let list = pod
                        .spec
                        .as_ref()
                        .map(|s| if *init { s.init_containers.as_deref().unwrap_or_default() } else { &s.containers })
                        .unwrap_or_default();
                    let Some(container) = list.iter().find(|c| &c.name == name) else { continue };
                    if let Some(finished) = restart_of {
                        self.backoff.next(name, *finished);
                    }
                    let downward = Downward {
                        pod_ip: sandbox.ip.clone().unwrap_or_default(),
                        host_ip: self.env.host_ip.clone(),
                        node_name: self.env.node.clone(),
                    };
                    self.start_container(pod, id, container, *attempt, &sandbox.id, &config, &downward).await?;
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &mut self,
        pod: &Pod,
        id: &PodIdentity,
        c: &Container,
        attempt: u32,
        sandbox_id: &str,
        sandbox: &PodSandboxConfig,
        downward: &Downward,
    ) -> Result<(), WorkerError> {
        let config = match container_config(pod, c, attempt, &self.env.node, downward) {
            Ok(config) => config,
            Err(e) => {
                let waiting = Waiting { reason: "CreateContainerConfigError".into(), message: e.to_string() };
                self.errors.insert(c.name.clone(), waiting);
                return Ok(());
            }
        };
        let image = c.image.clone().unwrap_or_default();
        if let Err(waiting) = self.ensure_image(c, &image, sandbox).await {
            self.errors.insert(c.name.clone(), waiting);
            return Ok(());
        }
        let object = format!("container {} of pod {}", c.name, id.key());
        let container_id = match self.env.runtime.create_container(sandbox_id, config, sandbox, &object).await {
            Ok(container_id) => container_id,
            Err(e) => {
                warn!(pod = %id.key(), container = %c.name, error = %e, "creating container");
                self.errors.insert(
                    c.name.clone(),
                    Waiting { reason: "CreateContainerError".into(), message: e.runtime_message() },
                );
                return Ok(());
            }
        };
        // A failed start leaves the container exited (reason StartError): the status shows it and the
        // restart policy applies, so it is only logged here.
        if let Err(e) = self.env.runtime.start_container(&container_id).await {
            warn!(pod = %id.key(), container = %c.name, error = %e, "starting container");
        } else {
            info!(pod = %id.key(), container = %c.name, attempt, id = %container_id, "container started");
            let address = pod_address(pod, Some(&downward.pod_ip), &downward.host_ip);
            let (runtime, events) = (&self.env.runtime, &self.env.events);
            if let Some(waiting) = post_start_or_kill(runtime, events, pod, c, &container_id, &address).await {
                self.errors.insert(c.name.clone(), waiting);
            }
        }
        Ok(())
    }

    /// Pulls per `imagePullPolicy`; on failure records the pull back-off and returns the waiting state.
    async fn ensure_image(&mut self, c: &Container, image: &str, sandbox: &PodSandboxConfig) -> Result<(), Waiting> {
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| default_pull_policy(image).to_string());
        let present = matches!(self.env.runtime.image_ref(image).await, Ok(Some(_)));
        if present && policy != "Always" {
            return Ok(());
        }
        if policy == "Never" {
            return Err(Waiting {
                reason: "ErrImageNeverPull".into(),
                message: format!("Container image \"{image}\" is not present with pull policy of Never"),
            });
        }
        match self.env.pull_runtime.pull_image(image, sandbox).await {
            Ok(_) => {
                self.pulls.remove(&c.name);
                self.backoff.forget(&pull_key(&c.name));
                Ok(())
            }
            Err(e) => {
                let now = Timestamp::now();
                let message = e.runtime_message();
                warn!(container = %c.name, image, error = %message, "pulling image");
                self.backoff.next(&pull_key(&c.name), now);
                self.pulls.insert(c.name.clone(), (now, message.clone()));
                Err(Waiting { reason: "ErrImagePull".into(), message })
            }
        }
    }

    /// Where probes and hooks of `pod` connect: the node's IP for host-network pods, else the pod IP.
    fn pod_address(&self, pod: &Pod, observed: &Observed) -> String {
        pod_address(pod, observed.ready_sandbox().and_then(|s| s.ip.as_deref()), &self.env.host_ip)
    }

    /// Graceful termination of a deleted pod's containers: probes stop, every running container runs
    /// its preStop hook and is stopped with the rest of the grace period (in parallel), then the
    /// status shows them terminated (best effort: the pod is about to go).
    async fn stop_containers(&mut self, pod: &Pod, id: &PodIdentity) -> Result<(), WorkerError> {
        self.probes.stop_all();
        let observed = self.observe().await?;
        let address = self.pod_address(pod, &observed);
        let runtime = &self.env.runtime;
        for e in kill_running(runtime, &self.env.events, pod, &observed, &address, StopReason::Deletion).await {
            warn!(pod = %id.key(), error = %e, "stopping container");
        }
        let observed = self.observe().await?;
        let (waiting, probes) = (BTreeMap::new(), ProbeResults::default());
        let ctx =
            StatusContext { waiting: &waiting, probes: &probes, host_ip: &self.env.host_ip, now: Timestamp::now() };
        if let Err(e) = self.send_status(pod, id, pod_status(pod, &observed, &ctx)).await {
            debug!(error = %e, "status of a terminating pod");
        }
        Ok(())
    }

    async fn send_status(&mut self, pod: &Pod, id: &PodIdentity, status: PodStatus) -> Result<(), WorkerError> {
        if self.last_status.as_ref() == Some(&status) || pod.status.as_ref() == Some(&status) {
            self.last_status = Some(status);
            return Ok(());
        }
        let mut body = serde_json::to_value(&status).unwrap_or_default();
        // A merge patch keeps absent fields: clear the ones a status can lose.
        if let Some(map) = body.as_object_mut() {
            for field in ["podIP", "podIPs", "reason", "message", "initContainerStatuses"] {
                map.entry(field).or_insert(serde_json::Value::Null);
            }
        }
        let pods: Api<Pod> = Api::namespaced(self.env.client.clone(), &id.namespace);
        let patch = serde_json::json!({ "status": body });
        pods.patch_status(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| WorkerError::Status { pod: id.key(), source })?;
        debug!(pod = %id.key(), phase = ?status.phase, "status sent");
        self.last_status = Some(status);
        Ok(())
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (the API's defaulting rule).
pub fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, "latest")) | None if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults_follow_the_tag() {
        assert_eq!(default_pull_policy("localhost/busybox:1"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost/busybox:latest"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }
}
