//! Watches the pods bound to this node (`fieldSelector=spec.nodeName=<node>`) and keeps one
//! [`PodWorker`] per pod uid, feeding it the latest object (`None` once the pod is gone). After each
//! full listing it also sweeps the runtime and the root directory: sandboxes this agent created and
//! pod directories (volumes) of pods that no longer exist (deleted while the agent was down) are torn
//! down.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::teardown::teardown;
use super::worker::{PodWorker, WorkerEnv, ORPHAN_GRACE};
use crate::runtime::{node_selector, POD_UID_LABEL};

/// Runs the pod watch and the workers until `shutdown` flips.
pub async fn run(env: Arc<WorkerEnv>, mut shutdown: watch::Receiver<bool>) {
    let pods: Api<Pod> = Api::all(env.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", env.node));
    let mut events = watcher::watcher(pods, config).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Init)) => listed.clear(),
                Some(Ok(Event::InitApply(pod))) => {
                    if let Some(uid) = pod.metadata.uid.clone() {
                        listed.insert(uid);
                    }
                    apply(&env, &shutdown, &mut workers, &mut tasks, pod);
                }
                Some(Ok(Event::InitDone)) => {
                    for (uid, tx) in &workers {
                        if !listed.contains(uid) {
                            let _ = tx.send(None);
                        }
                    }
                    sweep(&env, &listed, &workers, &mut tasks).await;
                }
                Some(Ok(Event::Apply(pod))) => apply(&env, &shutdown, &mut workers, &mut tasks, pod),
                Some(Ok(Event::Delete(pod))) => {
                    let Some(uid) = pod.metadata.uid.clone() else { continue };
                    match workers.get(&uid) {
                        Some(tx) => {
                            let _ = tx.send(None);
                        }
                        None => spawn_teardown(&env, &mut tasks, uid),
                    }
                }
                Some(Err(e)) => warn!(error = %e, "pod watch failed; retrying"),
                None => break,
            },
            Some(done) = tasks.join_next() => {
                if let Ok(uid) = done {
                    if workers.get(&uid).is_some_and(|tx| tx.receiver_count() == 0) {
                        workers.remove(&uid);
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(workers);
    while tasks.join_next().await.is_some() {}
}

fn apply(
    env: &Arc<WorkerEnv>,
    shutdown: &watch::Receiver<bool>,
    workers: &mut HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
    tasks: &mut JoinSet<String>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else { return };
    let pod = Arc::new(pod);
    if let Some(tx) = workers.get(&uid).filter(|tx| tx.receiver_count() > 0) {
        let _ = tx.send(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    workers.insert(uid.clone(), tx);
    let worker = PodWorker::new(env.clone(), uid.clone());
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        worker.run(rx, shutdown).await;
        uid
    });
}

fn spawn_teardown(env: &Arc<WorkerEnv>, tasks: &mut JoinSet<String>, uid: String) {
    let env = env.clone();
    tasks.spawn(async move {
        if let Err(e) = teardown(&env.runtime, &env.node, &env.root, &uid, ORPHAN_GRACE).await {
            warn!(pod_uid = %uid, error = %e, "removing an unknown pod's sandboxes");
        }
        uid
    });
}

/// Tears down sandboxes whose pod is neither listed nor handled by a worker.
async fn sweep(
    env: &Arc<WorkerEnv>,
    listed: &HashSet<String>,
    workers: &HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
    tasks: &mut JoinSet<String>,
) {
    let sandboxes = match env.runtime.sandboxes(node_selector(&env.node)).await {
        Ok(s) => s,
        Err(e) => return warn!(error = %e, "listing sandboxes for the orphan sweep"),
    };
    let unknown: HashSet<String> = sandboxes
        .iter()
        .filter_map(|s| s.labels.get(POD_UID_LABEL).cloned())
        .chain(crate::volume::pod_dir_uids(&env.root))
        .filter(|uid| !listed.contains(uid) && !workers.contains_key(uid))
        .collect();
    for uid in unknown {
        info!(pod_uid = %uid, "removing what is left of a pod that no longer exists");
        spawn_teardown(env, tasks, uid);
    }
}
