//! The DaemonSet controller's I/O: maps DaemonSet, pod, node and revision changes to queue keys, keeps the
//! DaemonSet's ControllerRevisions, carries out plans (adopt, release, create pinned pods in slow-start
//! batches, delete), backs off replacing failed pods, records Events and writes status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tokio::task::JoinSet;

use super::node_fit::daemon_pod_template;
use super::plan::{plan, DaemonSetPlan};
use crate::history::store::{prune, resolve, Resolved};
use crate::history::{
    history_to_prune, owned_revisions, plan_revision, revision_name, template_hash, template_patch, REVISION_HASH_LABEL,
};
use crate::manager::ManagerConfig;
use crate::pods::{controller_of, controller_ref, pod_from_template, selects};
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, Expectations, Informer, ObjectKey,
    Reconciler, Requeue, WorkQueue,
};

pub const NAME: &str = "daemonset";

/// Upstream's failed-pod back-off: 1 s doubling to 15 min per (DaemonSet, node).
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// Old revisions kept by default (upstream `revisionHistoryLimit` default).
const DEFAULT_HISTORY_LIMIT: i32 = 10;

pub struct DaemonSetController {
    ctx: Context,
    expectations: Expectations,
    /// (DaemonSet uid, node) -> (last failed-pod deletion, current delay).
    backoff: Mutex<HashMap<(String, String), (Instant, Duration)>>,
}

/// Starts the controller's change feeds and workers in `tasks`.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.daemon_sets, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    let sets = inf.daemon_sets.clone();
    tasks.spawn(enqueue_changes(&inf.pods, &queue, move |c| owners_of(c, &sets)));
    let sets = inf.daemon_sets.clone();
    tasks.spawn(enqueue_changes(&inf.nodes, &queue, move |c| {
        if node_changed(c) {
            sets.list().iter().map(|ds| ObjectKey::of(ds.as_ref())).collect()
        } else {
            Vec::new()
        }
    }));
    tasks.spawn(enqueue_changes(&inf.controller_revisions, &queue, |c| revision_owner(c, "DaemonSet")));
    let controller = Arc::new(DaemonSetController {
        ctx: ctx.clone(),
        expectations: Expectations::new(),
        backoff: Mutex::new(HashMap::new()),
    });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// The owner of a revision, if it is a `kind`.
pub(crate) fn revision_owner(change: &Change<ControllerRevision>, kind: &str) -> Vec<ObjectKey> {
    let r = change.object();
    let ns = r.metadata.namespace.clone().unwrap_or_default();
    controller_of(&r.metadata)
        .filter(|o| o.kind == kind)
        .map(|o| ObjectKey::new(ns, o.name.clone()))
        .into_iter()
        .collect()
}

/// Whether a node change can change where daemon pods belong (heartbeats alone cannot).
fn node_changed(change: &Change<Node>) -> bool {
    let Change::Applied { old: Some(old), new } = change else { return true };
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone()))
    };
    old.metadata.labels != new.metadata.labels
        || old.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
            != new.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
        || ready(old) != ready(new)
}

/// The DaemonSets a pod change concerns: its controller before and after, and for an orphan every
/// DaemonSet of its namespace whose selector picks it.
fn owners_of(change: &Change<Pod>, sets: &Informer<DaemonSet>) -> Vec<ObjectKey> {
    let mut keys = Vec::new();
    let pods: Vec<&Pod> = match change {
        Change::Applied { old, new } => old.iter().map(|o| o.as_ref()).chain([new.as_ref()]).collect(),
        Change::Deleted(p) => vec![p.as_ref()],
    };
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        match controller_of(&pod.metadata) {
            Some(o) if o.kind == "DaemonSet" => keys.push(ObjectKey::new(ns, o.name.clone())),
            Some(_) => {}
            None => {
                for ds in sets.list_namespace(&ns) {
                    if selects(ds.spec.as_ref().map(|s| &s.selector), pod.metadata.labels.as_ref()) {
                        keys.push(ObjectKey::of(ds.as_ref()));
                    }
                }
            }
        }
    }
    keys.dedup();
    keys
}

impl Reconciler for DaemonSetController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let Some(ds) = inf.daemon_sets.get(key) else {
            self.expectations.forget(key);
            return Ok(Requeue::Done);
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let Some(current) = self.current_revision(key, &ds).await? else {
            return Ok(Requeue::After(Duration::from_millis(100)));
        };
        let hash =
            current.metadata.labels.as_ref().and_then(|l| l.get(REVISION_HASH_LABEL)).cloned().unwrap_or_default();
        let synced = self.expectations.satisfied(key, |k| {
            inf.pods
                .get(k)
                .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p.metadata.deletion_timestamp.is_some()))
        });
        let nodes = inf.nodes.list();
        let pods = inf.pods.list_namespace(&key.namespace);
        let now = Instant::now();
        let mut plan = {
            let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
            plan(&ds, &nodes, &pods, &hash, Timestamp::now(), |node| {
                backoff.get(&(uid.clone(), node.to_string())).is_some_and(|(at, delay)| now < *at + *delay)
            })
        };
        let mut failure = None;
        if synced {
            if let Err(e) = self.carry_out(key, &ds, &hash, &plan).await {
                failure = Some(e);
            }
            if failure.is_none() {
                self.prune_history(key, &ds, &pods, &hash).await?;
            }
        } else {
            // Upstream does not raise observedGeneration for a generation it has not acted on.
            plan.status.observed_generation = ds.status.as_ref().and_then(|s| s.observed_generation);
        }
        self.write_status(key, &ds, &plan).await?;
        if let Some(e) = failure {
            return Err(e);
        }
        let backoff_wait = {
            let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
            plan.backing_off
                .iter()
                .filter_map(|n| backoff.get(&(uid.clone(), n.clone())))
                .map(|(at, delay)| (*at + *delay).saturating_duration_since(now) + Duration::from_millis(10))
                .min()
        };
        Ok([plan.requeue_after, backoff_wait].into_iter().flatten().min().map_or(Requeue::Done, Requeue::After))
    }
}

impl DaemonSetController {
    /// Upstream `constructHistory`: the revision holding the current template, created or renumbered as
    /// needed. `None` after a hash collision (the collision count was raised; the next pass retries).
    async fn current_revision(
        &self,
        key: &ObjectKey,
        ds: &DaemonSet,
    ) -> Result<Option<Arc<ControllerRevision>>, ControllerError> {
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let owned = owned_revisions(&self.ctx.informers.controller_revisions.list_namespace(&key.namespace), &uid);
        let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let data = template_patch(&template);
        let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
        let revision_plan = plan_revision(&owned, &data, |number| {
            let hash = template_hash(&template, collision_count);
            let mut labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
            labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
            ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(revision_name(&key.name, &hash)),
                    namespace: Some(key.namespace.clone()),
                    labels: Some(labels),
                    annotations: ds.metadata.annotations.clone(),
                    owner_references: Some(vec![controller_ref(ds)]),
                    ..Default::default()
                },
                data: Some(RawExtension(data.clone())),
                revision: number,
            }
        });
        match resolve(&self.ctx.client, &key.namespace, &uid, revision_plan).await? {
            Resolved::Revision(r) => Ok(Some(r)),
            Resolved::Collision => {
                let count = collision_count.unwrap_or(0) + 1;
                tracing::info!(daemonset = %key, count, "controllerrevision hash collision; raising collisionCount");
                let api: Api<DaemonSet> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
                let patch = json!({"status": {"collisionCount": count}});
                api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(ControllerError::api(format!("raising collisionCount of daemonset {key}")))?;
                Ok(None)
            }
        }
    }

    async fn carry_out(
        &self,
        key: &ObjectKey,
        ds: &DaemonSet,
        hash: &str,
        plan: &DaemonSetPlan,
    ) -> Result<(), ControllerError> {
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let owner = controller_ref(ds);
        for (pod, adopt) in plan.adopt.iter().map(|p| (p, true)).chain(plan.release.iter().map(|p| (p, false))) {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut refs: Vec<_> =
                pod.metadata.owner_references.iter().flatten().filter(|o| o.uid != owner.uid).cloned().collect();
            if adopt {
                refs.push(owner.clone());
            }
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
            match pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) || is_status(&e, 422) => {}
                Err(e) => return Err(ControllerError::api(format!("claiming pod {}/{name}", key.namespace))(e)),
            }
        }
        for node in &plan.failed_on {
            self.record_failure(ds, node);
        }
        self.create_pods(key, ds, hash, &pods, &plan.create_on).await?;
        crate::runtime::pod_deletion::delete_pods(&self.ctx, &self.expectations, key, ds, &plan.delete).await?;
        Ok(())
    }

    /// Grows the failed-pod back-off of (`ds`, `node`) and says why the pod goes.
    fn record_failure(&self, ds: &DaemonSet, node: &str) {
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let entry = backoff.entry((uid, node.to_string())).or_insert((now, Duration::ZERO));
        // A long quiet spell resets the back-off, as upstream's `IsInBackOffSinceUpdate` window does.
        let delay = if entry.1.is_zero() || now.duration_since(entry.0) > 2 * BACKOFF_MAX {
            BACKOFF_INITIAL
        } else {
            (entry.1 * 2).min(BACKOFF_MAX)
        };
        *entry = (now, delay);
        self.ctx.recorder.record(
            ds,
            EventType::Warning,
            "FailedDaemonPod",
            format!("Found failed daemon pod on node {node}, will try to kill it"),
        );
    }

    /// Creates one pinned pod per node in slow-start batches (1, 2, 4, ...), stopping at the first failure.
    async fn create_pods(
        &self,
        key: &ObjectKey,
        ds: &DaemonSet,
        hash: &str,
        pods: &Api<Pod>,
        nodes: &[String],
    ) -> Result<(), ControllerError> {
        let params = &PostParams::default();
        let mut remaining = nodes;
        let mut batch = 1;
        while !remaining.is_empty() {
            let (now, rest) = remaining.split_at(batch.min(remaining.len()));
            let results = join_all(now.iter().map(|node| {
                let template = daemon_pod_template(ds, hash, node);
                let pod = pod_from_template(&template, &key.namespace, &format!("{}-", key.name), controller_ref(ds));
                async move { pods.create(params, &pod).await }
            }))
            .await;
            let mut first_error = None;
            for r in results {
                match r {
                    Ok(created) => {
                        let name = created.metadata.name.unwrap_or_default();
                        self.expectations.expect_create(key, ObjectKey::new(&key.namespace, &name));
                        self.ctx.recorder.record(
                            ds,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                    }
                    Err(e) => {
                        self.ctx.recorder.record(
                            ds,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        );
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(ControllerError::api(format!("creating pods for daemonset {key}"))(e));
            }
            remaining = rest;
            batch *= 2;
        }
        Ok(())
    }

    /// Upstream `cleanupHistory`: drops old revisions no live pod was made from, beyond the history limit.
    async fn prune_history(
        &self,
        key: &ObjectKey,
        ds: &DaemonSet,
        pods: &[Arc<Pod>],
        hash: &str,
    ) -> Result<(), ControllerError> {
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let owned = owned_revisions(&self.ctx.informers.controller_revisions.list_namespace(&key.namespace), &uid);
        let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(DEFAULT_HISTORY_LIMIT);
        let live: Vec<&str> = pods
            .iter()
            .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
            .filter_map(|p| p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_HASH_LABEL)).map(String::as_str))
            .collect();
        let doomed = history_to_prune(&owned, usize::try_from(limit.max(0)).unwrap_or(0), |r| {
            let h = r.metadata.labels.as_ref().and_then(|l| l.get(REVISION_HASH_LABEL)).map(String::as_str);
            h.is_some_and(|h| h == hash || live.contains(&h))
        });
        prune(&self.ctx.client, &key.namespace, &doomed).await
    }

    async fn write_status(&self, key: &ObjectKey, ds: &DaemonSet, plan: &DaemonSetPlan) -> Result<(), ControllerError> {
        if ds.status.as_ref() == Some(&plan.status) {
            return Ok(());
        }
        let api: Api<DaemonSet> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let status = serde_json::to_value(&plan.status).unwrap_or_default();
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(ControllerError::api(format!("updating status of daemonset {key}"))(e)),
        }
    }
}
