//! One task per pod: observes the pod's sandboxes and containers over CRI, carries out what
//! [`plan`](super::plan) decides, sends the [`status`](super::status) when it changed, and on deletion
//! stops everything with the grace period and completes the deletion in the API. Holds the pod's
//! back-off and pull-failure state; all decisions live in the pure modules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use super::dns_config::PodDnsSettings;
use super::env::{Downward, EnvInputs};
use super::grace::StopReason;
use super::image_ref::check_image_ref;
use super::kill::{kill_container, kill_running, post_start_or_kill};
use super::observed::{container_from_cri, run_state, sandbox_from_cri, ContainerInfo, Observed};
use super::plan::{pull_key, Action, Plan, PullFailures, Waiting};
use super::probe::action::pod_address;
use super::probe::{ProbeEnv, ProbeManager, ProbeResults};
use super::spec::{container_config, sandbox_config, PodIdentity};
use super::status::{pod_status, StatusContext};
use super::teardown::teardown;
use crate::events::{EventRecorder, EventType};
use crate::metrics::{all_running, start_latency, AgentMetrics};
use crate::objects::{pod_references, ObjectCache, ObjectRef, ObjectsView, Subscriptions};
use crate::runtime::{pod_selector, Runtime, RuntimeError};
use crate::volume::{plan_volumes, HostPathPolicy, HostVolume, PodVolumes, VolumeError};

/// Grace period for pods that vanished from the API without a graceful deletion.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(2);
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// Re-plans in one sync before the status is sent (a sandbox, then its containers, then checks).
const MAX_ROUNDS: usize = 4;
/// How long a sync waits for the first read of a ConfigMap or Secret the pod references.
const OBJECT_WAIT: Duration = Duration::from_secs(10);
/// How soon a pod whose volumes failed is tried again (an object it waits for may appear).
const VOLUME_RETRY: Duration = Duration::from_secs(2);

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
    /// ConfigMaps and Secrets the node's pods reference.
    pub objects: Arc<ObjectCache>,
    pub host_paths: HostPathPolicy,
    /// The node's allocatable cpu (millicores) and memory (bytes): what `resourceFieldRef` reports
    /// for a container without limits.
    pub allocatable_cpu_millis: i64,
    pub allocatable_memory_bytes: i64,
    pub metrics: Arc<AgentMetrics>,
    /// Events about pods (probe failures, kills, hook failures).
    pub events: EventRecorder,
    /// Cluster DNS and the host's resolver configuration, for pods' resolv.conf.
    pub dns: PodDnsSettings,
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
    /// The objects the pod reads and the subscriptions to them.
    refs: BTreeSet<ObjectRef>,
    subscriptions: Option<Subscriptions>,
    volumes: PodVolumes,
    /// Where each volume is on the host, after the last successful set-up.
    host_volumes: BTreeMap<String, HostVolume>,
    /// The pod was seen with all containers running (its start latency is recorded once, if at all).
    start_recorded: bool,
    /// The probes of the pod's running containers; a changed result wakes the worker.
    probes: ProbeManager,
}

impl PodWorker {
    pub fn new(env: Arc<WorkerEnv>, uid: String) -> Self {
        let probes = ProbeManager::new(ProbeEnv { runtime: env.runtime.clone(), events: env.events.clone() });
        Self {
            probes,
            backoff: BackOff::default(),
            pulls: PullFailures::new(),
            errors: BTreeMap::new(),
            containers: HashMap::new(),
            sandbox_ips: HashMap::new(),
            last_status: None,
            start_recorded: false,
            refs: BTreeSet::new(),
            subscriptions: None,
            volumes: PodVolumes::new(&env.root, &uid),
            host_volumes: BTreeMap::new(),
            env,
            uid,
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
                        self.env.metrics.pod_synced(result.is_ok());
                        result.unwrap_or_else(|e| {
                            warn!(error = %e, "pod sync failed");
                            self.env.resync
                        })
                    }
                };
                tokio::select! {
                    changed = pod_rx.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(wake) => {}
                    _ = objects_changed(&mut self.subscriptions) => debug!("a referenced object changed"),
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
        self.release_objects();
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
        self.release_objects();
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

    /// One pass for a live pod: read the objects it references, set up its volumes, observe the
    /// runtime, act until the plan is empty, send the status if it changed.
    async fn sync(&mut self, pod: &Pod) -> Result<Duration, WorkerError> {
        let id = PodIdentity::of(pod).map_err(|source| WorkerError::Spec { pod: self.uid.clone(), source })?;
        self.errors.clear();
        let objects = self.read_objects(pod).await;
        let mut observed = self.observe().await?;
        let downward = self.downward(observed.ready_sandbox().and_then(|s| s.ip.clone()));
        let volume_error = self.setup_volumes(pod, &objects, &downward).err();
        let mut plan = Plan::default();
        match &volume_error {
            // Nothing starts before its volumes exist; a running pod keeps the volumes it has.
            Some(e) if observed.sandboxes.is_empty() => {
                warn!(pod = %id.key(), error = %e, "volumes not ready; not starting the pod");
                let waiting = Waiting { reason: "ContainerCreating".into(), message: e.to_string() };
                for c in all_containers(pod) {
                    plan.waiting.insert(c.name.clone(), waiting.clone());
                }
            }
            _ => {
                if let Some(e) = &volume_error {
                    warn!(pod = %id.key(), error = %e, "updating volumes of a running pod");
                }
                for _ in 0..MAX_ROUNDS {
                    self.probes.update(pod, &observed, &self.pod_address(pod, &observed));
                    let probes = self.probes.results();
                    plan = super::plan::plan(pod, &observed, &self.backoff, &self.pulls, &probes, Timestamp::now());
                    if plan.actions.is_empty() {
                        break;
                    }
                    debug!(pod = %id.key(), actions = ?plan.actions, "carrying out plan");
                    self.execute(pod, &id, &observed, &plan.actions, &objects).await?;
                    observed = self.observe().await?;
                }
            }
        }
        for (name, w) in &plan.waiting {
            // The kubelet's `BackOff` event, de-duplicated into a count by the recorder.
            if w.reason == "CrashLoopBackOff" || w.reason == "ImagePullBackOff" {
                let message = match w.reason.as_str() {
                    "ImagePullBackOff" => format!("Back-off pulling image \"{}\"", image_of(pod, name)),
                    _ => "Back-off restarting failed container".to_string(),
                };
                self.env.events.record(pod, Some(name), EventType::Warning, "BackOff", message);
            }
        }
        let mut waiting = plan.waiting.clone();
        waiting.extend(self.errors.clone());
        self.probes.update(pod, &observed, &self.pod_address(pod, &observed));
        let probes = self.probes.results();
        let ctx =
            StatusContext { waiting: &waiting, probes: &probes, host_ip: &self.env.host_ip, now: Timestamp::now() };
        let status = pod_status(pod, &observed, &ctx);
        if !self.start_recorded && all_running(&status) {
            self.start_recorded = true;
            let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
            if let Some(seconds) = start_latency(created, pod.status.as_ref(), &status, Timestamp::now()) {
                self.env.metrics.pod_started(seconds);
            }
        }
        self.send_status(pod, &id, status).await?;
        let wake = if volume_error.is_some() { VOLUME_RETRY } else { self.env.resync };
        Ok(plan.wake_after.map_or(wake, |w| w.min(wake)))
    }

    /// Subscribes to the ConfigMaps and Secrets the pod references (when that set changed) and
    /// returns what is known of them, waiting a bounded time for the first read of new ones.
    async fn read_objects(&mut self, pod: &Pod) -> ObjectsView {
        let refs = pod_references(pod);
        if self.subscriptions.is_none() || refs != self.refs {
            let mut subscriptions = self.env.objects.track(&self.uid, &refs);
            let pending = subscriptions.wait_listed(OBJECT_WAIT).await;
            if !pending.is_empty() {
                warn!(objects = ?pending, "referenced objects not read from the API yet");
            }
            self.subscriptions = Some(subscriptions);
            self.refs = refs;
        }
        match &mut self.subscriptions {
            Some(subscriptions) => {
                subscriptions.mark_seen();
                subscriptions.view()
            }
            None => ObjectsView::new(),
        }
    }

    fn release_objects(&mut self) {
        self.subscriptions = None;
        self.refs.clear();
        self.env.objects.release(&self.uid);
    }

    fn downward(&self, pod_ip: Option<String>) -> Downward {
        Downward {
            pod_ip: pod_ip.unwrap_or_default(),
            host_ip: self.env.host_ip.clone(),
            node_name: self.env.node.clone(),
            allocatable_cpu_millis: self.env.allocatable_cpu_millis,
            allocatable_memory_bytes: self.env.allocatable_memory_bytes,
        }
    }

    /// Plans and sets up every volume; on success remembers where each one is.
    fn setup_volumes(&mut self, pod: &Pod, objects: &ObjectsView, downward: &Downward) -> Result<(), VolumeError> {
        let plans = plan_volumes(pod, objects, downward, &self.env.host_paths)?;
        self.host_volumes = self.volumes.setup(&plans)?;
        Ok(())
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
        objects: &ObjectsView,
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
                    let config = sandbox_config(pod, *attempt, &self.env.root, &self.env.node, &self.env.dns)
                        .map_err(spec_err)?;
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
                    let config = sandbox_config(pod, sandbox.attempt, &self.env.root, &self.env.node, &self.env.dns)
                        .map_err(spec_err)?;
                    let list = pod
                        .spec
                        .as_ref()
                        .map(|s| if *init { s.init_containers.as_deref().unwrap_or_default() } else { &s.containers })
                        .unwrap_or_default();
                    let Some(container) = list.iter().find(|c| &c.name == name) else { continue };
                    if let Some(finished) = restart_of {
                        self.backoff.next(name, *finished);
                    }
                    let downward = self.downward(sandbox.ip.clone());
                    let inputs = EnvInputs { objects, downward: &downward };
                    self.start_container(pod, id, container, *attempt, &sandbox.id, &config, inputs).await?;
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
        inputs: EnvInputs<'_>,
    ) -> Result<(), WorkerError> {
        let image = c.image.clone().unwrap_or_default();
        if let Err(message) = check_image_ref(&image) {
            self.errors.insert(c.name.clone(), Waiting { reason: "InvalidImageName".into(), message });
            return Ok(());
        }
        let config = match container_config(pod, c, attempt, &self.env.node, inputs, &self.host_volumes) {
            Ok(config) => config,
            Err(e) => {
                let waiting = Waiting { reason: "CreateContainerConfigError".into(), message: e.to_string() };
                self.errors.insert(c.name.clone(), waiting);
                return Ok(());
            }
        };
        // A subPath inside the pod's own volumes is created when missing, as upstream does.
        let pod_dir = crate::volume::pod_dir(&self.env.root, &self.uid);
        for m in &config.mounts {
            let path = std::path::Path::new(&m.host_path);
            if path.starts_with(&pod_dir) && !path.exists() {
                if let Err(e) = std::fs::create_dir_all(path) {
                    let message = format!("creating subPath {}: {e}", path.display());
                    self.errors
                        .insert(c.name.clone(), Waiting { reason: "CreateContainerConfigError".into(), message });
                    return Ok(());
                }
            }
        }
        if let Err(waiting) = self.ensure_image(pod, c, &image, sandbox).await {
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
            let address = pod_address(pod, Some(&inputs.downward.pod_ip), &inputs.downward.host_ip);
            let (runtime, events) = (&self.env.runtime, &self.env.events);
            if let Some(waiting) = post_start_or_kill(runtime, events, pod, c, &container_id, &address).await {
                self.errors.insert(c.name.clone(), waiting);
            }
        }
        Ok(())
    }

    /// Pulls per `imagePullPolicy`; on failure records the pull back-off and returns the waiting state.
    /// Records the kubelet's `Pulling`, `Pulled` and `Failed` events.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        image: &str,
        sandbox: &PodSandboxConfig,
    ) -> Result<(), Waiting> {
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| default_pull_policy(image).to_string());
        let present = matches!(self.env.runtime.image_ref(image).await, Ok(Some(_)));
        if present && policy != "Always" {
            return Ok(());
        }
        let event =
            |kind, reason: &str, message: String| self.env.events.record(pod, Some(&c.name), kind, reason, message);
        if policy == "Never" {
            let message = format!("Container image \"{image}\" is not present with pull policy of Never");
            event(EventType::Warning, "ErrImageNeverPull", message.clone());
            return Err(Waiting { reason: "ErrImageNeverPull".into(), message });
        }
        event(EventType::Normal, "Pulling", format!("Pulling image \"{image}\""));
        let started = std::time::Instant::now();
        match self.env.pull_runtime.pull_image(image, sandbox).await {
            Ok(_) => {
                let took = started.elapsed().as_secs_f64();
                event(EventType::Normal, "Pulled", format!("Successfully pulled image \"{image}\" in {took:.3}s"));
                self.pulls.remove(&c.name);
                self.backoff.forget(&pull_key(&c.name));
                Ok(())
            }
            Err(e) => {
                let now = Timestamp::now();
                let message = e.runtime_message();
                warn!(container = %c.name, image, error = %message, "pulling image");
                event(EventType::Warning, "Failed", format!("Failed to pull image \"{image}\": {message}"));
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

/// The image of container `name`.
fn image_of<'a>(pod: &'a Pod, name: &str) -> &'a str {
    all_containers(pod).find(|c| c.name == name).and_then(|c| c.image.as_deref()).unwrap_or_default()
}

/// Every container of the pod, init containers first.
fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
}

/// Resolves when an object the pod reads changes; never when it reads none.
async fn objects_changed(subscriptions: &mut Option<Subscriptions>) {
    match subscriptions {
        Some(s) => s.changed().await,
        None => std::future::pending().await,
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
