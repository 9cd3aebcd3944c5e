//! The Deployment controller's I/O: maps Deployment, ReplicaSet (and, for `Recreate`, pod) changes to
//! Deployment keys, adopts and releases ReplicaSets, carries out plans (create the new ReplicaSet,
//! scale and annotate existing ones, delete old history), records `ScalingReplicaSet` Events and writes
//! the Deployment's revision annotation and status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::Api;
use serde_json::json;
use tokio::task::JoinSet;

use super::claim::claim;
use super::hash::equal_ignore_hash;
use super::pending::{PendingWrites, Written};
use super::plan::{plan, DeploymentPlan, ReplicaSetUpdate};
use super::strategy::is_rolling;
use crate::manager::ManagerConfig;
use crate::pods::{controller_of, controller_ref, is_terminal, selects};
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, Informer, ObjectKey, Reconciler,
    Requeue, WorkQueue,
};

pub const NAME: &str = "deployment";

/// How soon to look again while the cache has not shown this controller's own writes (a watch event
/// usually comes first).
const PENDING_RECHECK: Duration = Duration::from_secs(2);

pub struct DeploymentController {
    ctx: Context,
    pending: PendingWrites,
}

/// Starts the controller's change feeds and workers in `tasks`.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.deployments, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    let deployments = inf.deployments.clone();
    tasks.spawn(enqueue_changes(&inf.replica_sets, &queue, move |c| deployments_of_rs(c, &deployments)));
    let (sets, deployments) = (inf.replica_sets.clone(), inf.deployments.clone());
    tasks.spawn(enqueue_changes(&inf.pods, &queue, move |c| recreate_deployment_of_pod(c, &sets, &deployments)));
    let controller = Arc::new(DeploymentController { ctx: ctx.clone(), pending: PendingWrites::default() });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// The Deployments a ReplicaSet change concerns: its controller before and after, and for an orphan
/// every Deployment of its namespace whose selector picks it (to adopt it).
fn deployments_of_rs(change: &Change<ReplicaSet>, deployments: &Informer<Deployment>) -> Vec<ObjectKey> {
    let sets: Vec<&ReplicaSet> = match change {
        Change::Applied { old, new } => old.iter().map(|o| o.as_ref()).chain([new.as_ref()]).collect(),
        Change::Deleted(rs) => vec![rs.as_ref()],
    };
    let mut keys = Vec::new();
    for rs in sets {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        match controller_of(&rs.metadata) {
            Some(o) if o.kind == "Deployment" => keys.push(ObjectKey::new(ns, o.name.clone())),
            Some(_) => {}
            None => {
                for d in deployments.list_namespace(&ns) {
                    if selects(d.spec.as_ref().map(|s| &s.selector), rs.metadata.labels.as_ref()) {
                        keys.push(ObjectKey::of(d.as_ref()));
                    }
                }
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A `Recreate` Deployment waits for its old pods to be gone: their deletion (or finishing) concerns it.
fn recreate_deployment_of_pod(
    change: &Change<Pod>,
    sets: &Informer<ReplicaSet>,
    deployments: &Informer<Deployment>,
) -> Vec<ObjectKey> {
    let pod = match change {
        Change::Deleted(p) => p,
        Change::Applied { old, new } if is_terminal(new) && !old.as_ref().is_some_and(|o| is_terminal(o)) => new,
        Change::Applied { .. } => return Vec::new(),
    };
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(rs_ref) = controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet") else { return Vec::new() };
    let Some(rs) = sets.get(&ObjectKey::new(&ns, &rs_ref.name)) else { return Vec::new() };
    let Some(d_ref) = controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") else { return Vec::new() };
    let key = ObjectKey::new(ns, d_ref.name.clone());
    match deployments.get(&key) {
        Some(d) if !is_rolling(&d) => vec![key],
        _ => Vec::new(),
    }
}

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let Some(d) = inf.deployments.get(key) else {
            self.pending.forget(key);
            return Ok(Requeue::Done);
        };
        let synced = self.pending.satisfied(key, |kind, k| {
            let rv = |m: &kube::api::ObjectMeta| m.resource_version.clone();
            match kind {
                Written::ReplicaSet => inf.replica_sets.get(k).map(|rs| rv(&rs.metadata)),
                Written::Deployment => inf.deployments.get(k).map(|d| rv(&d.metadata)),
            }
        });
        if !synced {
            tracing::debug!(deployment = %key, "waiting for the cache to show this controller's writes");
            return Ok(Requeue::After(PENDING_RECHECK));
        }
        let claimed = claim(&d, &inf.replica_sets.list_namespace(&key.namespace));
        self.adopt_and_release(key, &d, &claimed.adopt, &claimed.release).await?;
        let pods = if is_rolling(&d) { Vec::new() } else { inf.pods.list_namespace(&key.namespace) };
        let plan = plan(&d, &claimed.owned, &pods, Timestamp::now());
        if !plan.is_empty() {
            tracing::debug!(deployment = %key, create = plan.create.is_some(), updates = plan.updates.len(), deletes = plan.delete.len(), "syncing");
        }
        self.carry_out(key, &d, &plan).await
    }
}

impl DeploymentController {
    fn sets(&self, namespace: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), namespace)
    }

    async fn adopt_and_release(
        &self,
        key: &ObjectKey,
        d: &Deployment,
        adopt: &[Arc<ReplicaSet>],
        release: &[Arc<ReplicaSet>],
    ) -> Result<(), ControllerError> {
        let api = self.sets(&key.namespace);
        let owner = controller_ref(d);
        for (rs, adopting) in adopt.iter().map(|r| (r, true)).chain(release.iter().map(|r| (r, false))) {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let mut refs: Vec<_> =
                rs.metadata.owner_references.iter().flatten().filter(|o| o.uid != owner.uid).cloned().collect();
            if adopting {
                refs.push(owner.clone());
            }
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) || is_status(&e, 422) => {}
                Err(e) => {
                    let what = if adopting { "adopting" } else { "releasing" };
                    return Err(ControllerError::api(format!("{what} replicaset {}/{name} for {key}", key.namespace))(
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    async fn carry_out(
        &self,
        key: &ObjectKey,
        d: &Deployment,
        plan: &DeploymentPlan,
    ) -> Result<Requeue, ControllerError> {
        if let Some((reason, message)) = &plan.warning {
            self.ctx.recorder.record(d, EventType::Warning, reason, message.clone());
        }
        if let Some(rs) = &plan.create {
            if !self.create(key, d, rs).await? {
                return Ok(Requeue::Done);
            }
        }
        for update in &plan.updates {
            self.update(key, d, update).await?;
        }
        for (name, uid) in &plan.delete {
            self.delete(key, name, uid).await?;
        }
        let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        if let Some(revision) = &plan.revision {
            let patch = json!({"metadata": {"annotations": {super::annotations::REVISION: revision}}});
            let before = d.metadata.resource_version.clone();
            match api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(written) => self.expect_deployment(key, before, &written),
                Err(e) if is_status(&e, 404) => return Ok(Requeue::Done),
                Err(e) => return Err(ControllerError::api(format!("setting the revision of deployment {key}"))(e)),
            }
        }
        if let Some(status) = &plan.status {
            let before = d.metadata.resource_version.clone();
            let body = json!({"status": status});
            match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body)).await {
                Ok(written) => self.expect_deployment(key, before, &written),
                Err(e) if is_status(&e, 404) => return Ok(Requeue::Done),
                Err(e) => return Err(ControllerError::api(format!("updating status of deployment {key}"))(e)),
            }
        }
        Ok(plan.requeue_after.map_or(Requeue::Done, Requeue::After))
    }

    /// Waits for a Deployment write only if it changed the object (a no-op write keeps its version, and
    /// the cache would never show a change).
    fn expect_deployment(&self, key: &ObjectKey, before: Option<String>, written: &Deployment) {
        if written.metadata.resource_version != before {
            self.pending.expect(key, Written::Deployment, key.clone(), before);
        }
    }

    /// Creates the new ReplicaSet; `false` when it already exists and the pass should stop.
    async fn create(&self, key: &ObjectKey, d: &Deployment, rs: &ReplicaSet) -> Result<bool, ControllerError> {
        let api = self.sets(&key.namespace);
        let name = rs.metadata.name.clone().unwrap_or_default();
        let rs_key = ObjectKey::new(&key.namespace, &name);
        match api.create(&PostParams::default(), rs).await {
            Ok(_) => {
                self.pending.expect(key, Written::ReplicaSet, rs_key, None);
                let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                if replicas > 0 {
                    let message = format!("Scaled up replica set {name} from 0 to {replicas}");
                    self.ctx.recorder.record(d, EventType::Normal, "ScalingReplicaSet", message);
                }
                Ok(true)
            }
            Err(e) if is_status(&e, 409) => {
                let existing =
                    api.get(&name).await.map_err(ControllerError::api(format!("reading replicaset {rs_key}")))?;
                let uid = d.metadata.uid.as_deref().unwrap_or_default();
                let ours = controller_of(&existing.metadata).is_some_and(|o| o.uid == uid);
                let same = match (existing.spec.as_ref().and_then(|s| s.template.as_ref()), d.spec.as_ref()) {
                    (Some(t), Some(spec)) => equal_ignore_hash(t, &spec.template),
                    _ => false,
                };
                if ours && same {
                    // Created by an earlier pass the cache has not shown yet.
                    self.pending.expect(key, Written::ReplicaSet, rs_key, None);
                    return Ok(false);
                }
                let count = d.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0).saturating_add(1);
                tracing::info!(deployment = %key, replicaset = %name, collision_count = count, "hash collision; rehashing");
                let deployments: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
                let body = json!({"status": {"collisionCount": count}});
                let written = deployments
                    .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .map_err(ControllerError::api(format!("updating collision count of deployment {key}")))?;
                self.expect_deployment(key, d.metadata.resource_version.clone(), &written);
                Ok(false)
            }
            Err(e) => Err(ControllerError::api(format!("creating replicaset {rs_key} for deployment {key}"))(e)),
        }
    }

    async fn update(&self, key: &ObjectKey, d: &Deployment, u: &ReplicaSetUpdate) -> Result<(), ControllerError> {
        let api = self.sets(&key.namespace);
        let patch = json!({
            "metadata": {"resourceVersion": u.resource_version, "annotations": u.annotations},
            "spec": {"replicas": u.replicas, "minReadySeconds": u.min_ready_seconds},
        });
        let rs_key = ObjectKey::new(&key.namespace, &u.name);
        let written = api
            .patch(&u.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(ControllerError::api(format!("scaling replicaset {rs_key} of deployment {key}")))?;
        if written.metadata.resource_version != u.resource_version {
            self.pending.expect(key, Written::ReplicaSet, rs_key, u.resource_version.clone());
        }
        if let Some(message) = u.scaling_message() {
            self.ctx.recorder.record(d, EventType::Normal, "ScalingReplicaSet", message);
        }
        Ok(())
    }

    async fn delete(&self, key: &ObjectKey, name: &str, uid: &str) -> Result<(), ControllerError> {
        let api = self.sets(&key.namespace);
        let rs_key = ObjectKey::new(&key.namespace, name);
        let before = self.ctx.informers.replica_sets.get(&rs_key).and_then(|rs| rs.metadata.resource_version.clone());
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {
                tracing::debug!(deployment = %key, replicaset = %name, "deleted old replicaset beyond the history limit");
                self.pending.expect(key, Written::ReplicaSet, rs_key, before);
                Ok(())
            }
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(ControllerError::api(format!("deleting replicaset {rs_key} of deployment {key}"))(e)),
        }
    }
}
