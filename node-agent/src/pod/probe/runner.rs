//! Runs the probes of one pod's running containers: one task per probe of each running container,
//! started when the pod worker first sees the container running and stopped (aborted) when it no
//! longer does or the pod goes. Each task waits for the container to have started (its startup
//! probe passed) unless it is the startup probe, then for `initialDelaySeconds` from the container's
//! start, then probes every `periodSeconds` on the pod's probe clock (as the kubelet's workers tick
//! from when the pod was added), feeding [`ProbeState`] and recording the kubelet's Events. Published results land in a shared [`ProbeResults`], and a change wakes the pod worker,
//! which hands the results to the planner (kill) and the status (started, ready). Decisions live in
//! the pure `state` and `results` modules; this is the I/O around them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info};

use super::action::{probe_action, ActionError, HandlerAction};
use super::handler::probe_once;
use super::results::ProbeResults;
use super::settings::{ProbeKind, ProbeSettings};
use super::state::{Outcome, ProbeState, Verdict};
use crate::events::{pod_reference, EventRecorder};
use crate::pod::observed::{Observed, RunState};
use crate::runtime::Runtime;

/// Results shared between the probe tasks and the pod worker.
#[derive(Default)]
struct Shared {
    results: Mutex<ProbeResults>,
    changed: Notify,
}

impl Shared {
    fn results(&self) -> MutexGuard<'_, ProbeResults> {
        self.results.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The probe tasks of one running container.
struct ContainerProbes {
    tasks: Vec<JoinHandle<()>>,
    /// Kept so that waiting probes see the channel open until the container's probes stop.
    _started: Arc<watch::Sender<bool>>,
}

impl Drop for ContainerProbes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What every probe task of a pod uses.
#[derive(Clone)]
pub struct ProbeEnv {
    pub runtime: Runtime,
    pub events: EventRecorder,
}

/// The probes of one pod.
pub struct ProbeManager {
    env: ProbeEnv,
    shared: Arc<Shared>,
    running: HashMap<String, ContainerProbes>,
    /// When the pod's probe clock started ticking (see [`ProbeSettings::next_tick_in`]).
    clock: Instant,
}

impl ProbeManager {
    pub fn new(env: ProbeEnv) -> Self {
        Self { env, shared: Arc::default(), running: HashMap::new(), clock: Instant::now() }
    }

    /// The current results (a copy, for the planner and the status).
    pub fn results(&self) -> ProbeResults {
        self.shared.results().clone()
    }

    /// Resolves when a published result changed since the last call.
    pub async fn changed(&self) {
        self.shared.changed.notified().await;
    }

    /// Starts the probes of containers that run now and stops those of containers that no longer
    /// do. `pod_ip` is where network probes connect (the node's IP for host-network pods).
    pub fn update(&mut self, pod: &Pod, observed: &Observed, pod_ip: &str) {
        let specs = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
        let sandbox = observed.ready_sandbox().map(|s| s.id.as_str());
        let running: Vec<(&Container, &str, i64)> = specs
            .iter()
            .filter(|c| ProbeKind::ALL.iter().any(|k| k.of(c).is_some()))
            .filter_map(|c| {
                let latest = observed.latest_in(&c.name, sandbox?)?;
                (latest.state == RunState::Running).then_some((c, latest.id.as_str(), latest.started_at))
            })
            .collect();
        let ids: BTreeSet<&str> = running.iter().map(|(_, id, _)| *id).collect();
        self.running.retain(|id, _| ids.contains(id.as_str()));
        self.shared.results().retain_containers(|id| ids.contains(id));
        for (c, id, started_at) in running {
            if !self.running.contains_key(id) {
                let probes = self.start(pod, c, id, started_at, pod_ip);
                self.running.insert(id.to_string(), probes);
            }
        }
    }

    /// Stops every probe (the pod is terminating or gone).
    pub fn stop_all(&mut self) {
        self.running.clear();
        *self.shared.results() = ProbeResults::default();
    }

    fn start(&self, pod: &Pod, c: &Container, id: &str, started_at: i64, pod_ip: &str) -> ContainerProbes {
        let (started_tx, started_rx) = watch::channel(c.startup_probe.is_none());
        let started_tx = Arc::new(started_tx);
        let involved = pod_reference(pod, Some(&c.name));
        let mut tasks = Vec::new();
        for kind in ProbeKind::ALL {
            let Some(probe) = kind.of(c) else { continue };
            let task = ProbeTask {
                env: self.env.clone(),
                shared: self.shared.clone(),
                involved: involved.clone(),
                container: c.name.clone(),
                container_id: id.to_string(),
                kind,
                settings: ProbeSettings::of(kind, probe),
                action: probe_action(probe, c, pod_ip),
                started_at,
                started_tx: (kind == ProbeKind::Startup).then(|| started_tx.clone()),
                started_rx: started_rx.clone(),
                clock: self.clock,
            };
            debug!(container = %c.name, id, probe = ?kind, "starting probe");
            tasks.push(tokio::spawn(task.run()));
        }
        ContainerProbes { tasks, _started: started_tx }
    }
}

/// One probe of one container.
struct ProbeTask {
    env: ProbeEnv,
    shared: Arc<Shared>,
    involved: ObjectReference,
    container: String,
    container_id: String,
    kind: ProbeKind,
    settings: ProbeSettings,
    action: Result<HandlerAction, ActionError>,
    /// When the container started (nanoseconds since the epoch).
    started_at: i64,
    /// The startup probe's way to open the gate of the others.
    started_tx: Option<Arc<watch::Sender<bool>>>,
    started_rx: watch::Receiver<bool>,
    clock: Instant,
}

impl ProbeTask {
    async fn run(mut self) {
        let gated = self.kind != ProbeKind::Startup && !*self.started_rx.borrow();
        if gated && self.started_rx.wait_for(|started| *started).await.is_err() {
            return;
        }
        tokio::time::sleep(self.settings.first_probe_in(running_for(self.started_at))).await;
        // Readiness is checked at once when the startup probe lets it (as the kubelet triggers it);
        // otherwise the first probe waits for the pod's next tick.
        if !(gated && self.kind == ProbeKind::Readiness) {
            tokio::time::sleep(self.settings.next_tick_in(self.clock.elapsed())).await;
        }
        let mut state = ProbeState::new(self.kind, &self.settings);
        let mut ticks = tokio::time::interval(self.settings.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let outcome = match &self.action {
                Ok(action) => probe_once(&self.env.runtime, &self.container_id, action, self.settings.timeout).await,
                Err(e) => Outcome::Error(e.to_string()),
            };
            if let Some((kind, reason, message)) = outcome.event(self.kind) {
                debug!(container = %self.container, probe = ?self.kind, %message, "probe did not pass");
                self.env.events.record_ref(self.involved.clone(), kind, reason, message);
            }
            let step = state.record(&outcome);
            if let Some(verdict) = step.publish {
                self.publish(verdict);
            }
            if step.stop {
                return;
            }
        }
    }

    fn publish(&self, verdict: Verdict) {
        info!(container = %self.container, id = %self.container_id, probe = ?self.kind, ?verdict, "probe result");
        let changed = self.shared.results().set(&self.container_id, self.kind, verdict);
        if let (Some(tx), Verdict::Success) = (&self.started_tx, verdict) {
            tx.send_replace(true);
        }
        if changed {
            self.shared.changed.notify_one();
        }
    }
}

/// How long a container started at `started_at` (CRI nanoseconds) has been running.
fn running_for(started_at: i64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let started = Duration::from_nanos(u64::try_from(started_at).unwrap_or(0));
    now.saturating_sub(started)
}
