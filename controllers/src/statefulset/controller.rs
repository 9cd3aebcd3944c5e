//! The StatefulSet controller's I/O: maps set, pod and revision changes to queue keys, keeps the set's
//! ControllerRevisions (current and update revision), carries out plans (claims before pods, creates and
//! deletes in plan order), records Events and writes status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::Api;
use serde_json::json;
use tokio::task::JoinSet;

use super::identity::claims_for;
use super::plan::{plan, Revisions, StatefulSetPlan};
use crate::daemonset::controller::revision_owner;
use crate::history::store::{prune, resolve, Resolved};
use crate::history::{
    data_hash, history_to_prune, owned_revisions, plan_revision, revision_name, revision_template, template_patch,
    REVISION_HASH_LABEL,
};
use crate::manager::ManagerConfig;
use crate::pods::{controller_of, controller_ref, selects};
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, Expectations, Informer, ObjectKey,
    Reconciler, Requeue, WorkQueue,
};

pub const NAME: &str = "statefulset";

/// Old revisions kept by default (upstream `revisionHistoryLimit` default).
const DEFAULT_HISTORY_LIMIT: i32 = 10;

pub struct StatefulSetController {
    ctx: Context,
    expectations: Expectations,
}

/// Starts the controller's change feeds and workers in `tasks`.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.stateful_sets, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    let sets = inf.stateful_sets.clone();
    tasks.spawn(enqueue_changes(&inf.pods, &queue, move |c| owners_of(c, &sets)));
    tasks.spawn(enqueue_changes(&inf.controller_revisions, &queue, |c| revision_owner(c, "StatefulSet")));
    let controller = Arc::new(StatefulSetController { ctx: ctx.clone(), expectations: Expectations::new() });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// The sets a pod change concerns: its controller before and after, and for an orphan every set of its
/// namespace whose selector picks it.
fn owners_of(change: &Change<Pod>, sets: &Informer<StatefulSet>) -> Vec<ObjectKey> {
    let mut keys = Vec::new();
    let pods: Vec<&Pod> = match change {
        Change::Applied { old, new } => old.iter().map(|o| o.as_ref()).chain([new.as_ref()]).collect(),
        Change::Deleted(p) => vec![p.as_ref()],
    };
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        match controller_of(&pod.metadata) {
            Some(o) if o.kind == "StatefulSet" => keys.push(ObjectKey::new(ns, o.name.clone())),
            Some(_) => {}
            None => {
                for set in sets.list_namespace(&ns) {
                    if selects(set.spec.as_ref().map(|s| &s.selector), pod.metadata.labels.as_ref()) {
                        keys.push(ObjectKey::of(set.as_ref()));
                    }
                }
            }
        }
    }
    keys.dedup();
    keys
}

impl Reconciler for StatefulSetController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let Some(set) = inf.stateful_sets.get(key) else {
            self.expectations.forget(key);
            return Ok(Requeue::Done);
        };
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let Some(update) = self.update_revision(key, &set).await? else {
            return Ok(Requeue::After(Duration::from_millis(100)));
        };
        let update_name = update.metadata.name.clone().unwrap_or_default();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let owned = owned_revisions(&inf.controller_revisions.list_namespace(&key.namespace), &uid);
        let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = current_name
            .and_then(|n| owned.iter().find(|r| r.metadata.name.as_deref() == Some(n.as_str())).cloned())
            .unwrap_or_else(|| update.clone());
        let set_template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let update_template = revision_template(&update).unwrap_or_else(|| set_template.clone());
        let current_template = revision_template(&current).unwrap_or_else(|| set_template.clone());
        let current_name = current.metadata.name.clone().unwrap_or_default();
        let revisions = Revisions {
            current: &current_name,
            current_template: &current_template,
            update: &update_name,
            update_template: &update_template,
        };
        let synced = self.expectations.satisfied(key, |k| {
            inf.pods
                .get(k)
                .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p.metadata.deletion_timestamp.is_some()))
        });
        let pods = inf.pods.list_namespace(&key.namespace);
        let claims = inf.persistent_volume_claims.list_namespace(&key.namespace);
        let mut plan = plan(&set, revisions, &pods, &claims, Timestamp::now());
        let mut failure = None;
        if synced {
            if let Err(e) = self.carry_out(key, &set, &plan).await {
                failure = Some(e);
            }
            if failure.is_none() {
                let live: Vec<String> = pods
                    .iter()
                    .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
                    .filter_map(|p| p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_HASH_LABEL)).cloned())
                    .collect();
                let limit = set.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(DEFAULT_HISTORY_LIMIT);
                let doomed = history_to_prune(&owned, usize::try_from(limit.max(0)).unwrap_or(0), |r| {
                    let name = r.metadata.name.as_deref().unwrap_or_default();
                    name == current_name || name == update_name || live.iter().any(|l| l == name)
                });
                prune(&self.ctx.client, &key.namespace, &doomed).await?;
            }
        } else {
            plan.status.observed_generation = set.status.as_ref().and_then(|s| s.observed_generation);
        }
        self.write_status(key, &set, &plan).await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(plan.requeue_after.map_or(Requeue::Done, Requeue::After)),
        }
    }
}

impl StatefulSetController {
    /// Upstream `getStatefulSetRevisions`: the revision holding the set's template, created or renumbered
    /// as needed. `None` after a hash collision (the collision count was raised; the next pass retries).
    async fn update_revision(
        &self,
        key: &ObjectKey,
        set: &StatefulSet,
    ) -> Result<Option<Arc<ControllerRevision>>, ControllerError> {
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let owned = owned_revisions(&self.ctx.informers.controller_revisions.list_namespace(&key.namespace), &uid);
        let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let data = template_patch(&template);
        let collision_count = set.status.as_ref().and_then(|s| s.collision_count);
        let revision_plan = plan_revision(&owned, &data, |number| {
            let hash = data_hash(&data, collision_count);
            let mut labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
            labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
            ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(revision_name(&key.name, &hash)),
                    namespace: Some(key.namespace.clone()),
                    labels: Some(labels),
                    annotations: set.metadata.annotations.clone(),
                    owner_references: Some(vec![controller_ref(set)]),
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
                tracing::info!(statefulset = %key, count, "controllerrevision hash collision; raising collisionCount");
                let api: Api<StatefulSet> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
                let patch = json!({"status": {"collisionCount": count}});
                api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(ControllerError::api(format!("raising collisionCount of statefulset {key}")))?;
                Ok(None)
            }
        }
    }

    async fn carry_out(
        &self,
        key: &ObjectKey,
        set: &StatefulSet,
        plan: &StatefulSetPlan,
    ) -> Result<(), ControllerError> {
        let ns = &key.namespace;
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let owner = controller_ref(set);
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
                Err(e) => return Err(ControllerError::api(format!("claiming pod {ns}/{name}"))(e)),
            }
        }
        for pod in &plan.delete {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if plan.recreate.contains(&name) {
                let message = format!("StatefulSet {key} is recreating failed Pod {name}");
                self.ctx.recorder.record(set, EventType::Warning, "RecreatingFailedPod", message);
            }
            self.expectations.expect_delete(key, ObjectKey::new(ns, &name), uid.clone());
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                ..Default::default()
            };
            match pods.delete(&name, &params).await {
                Ok(_) => {
                    let message = format!("delete Pod {name} in StatefulSet {} successful", key.name);
                    self.ctx.recorder.record(set, EventType::Normal, "SuccessfulDelete", message);
                }
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => {
                    let message = format!("delete Pod {name} in StatefulSet {} failed error: {e}", key.name);
                    self.ctx.recorder.record(set, EventType::Warning, "FailedDelete", message);
                    return Err(ControllerError::api(format!("deleting pod {ns}/{name}"))(e));
                }
            }
        }
        for (ordinal, pod) in &plan.create {
            self.create_claims(key, set, *ordinal).await?;
            let name = pod.metadata.name.clone().unwrap_or_default();
            match pods.create(&PostParams::default(), pod).await {
                Ok(_) => {
                    self.expectations.expect_create(key, ObjectKey::new(ns, &name));
                    let message = format!("create Pod {name} in StatefulSet {} successful", key.name);
                    self.ctx.recorder.record(set, EventType::Normal, "SuccessfulCreate", message);
                }
                // The previous pod of this ordinal is still being deleted: the next pass creates it.
                Err(e) if is_status(&e, 409) => {}
                Err(e) => {
                    let message = format!("create Pod {name} in StatefulSet {} failed error: {e}", key.name);
                    self.ctx.recorder.record(set, EventType::Warning, "FailedCreate", message);
                    return Err(ControllerError::api(format!("creating pod {ns}/{name}"))(e));
                }
            }
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), ns);
        for name in &plan.delete_claims {
            match claims.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    let message = format!("delete Claim {name} in StatefulSet {} successful", key.name);
                    self.ctx.recorder.record(set, EventType::Normal, "SuccessfulDelete", message);
                }
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => return Err(ControllerError::api(format!("deleting persistentvolumeclaim {ns}/{name}"))(e)),
            }
        }
        Ok(())
    }

    /// Creates the claims of `ordinal` that do not exist yet (upstream `createPersistentVolumeClaims`).
    async fn create_claims(&self, key: &ObjectKey, set: &StatefulSet, ordinal: i32) -> Result<(), ControllerError> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        for claim in claims_for(set, ordinal) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            if self.ctx.informers.persistent_volume_claims.get(&ObjectKey::new(&key.namespace, &name)).is_some() {
                continue;
            }
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    let message =
                        format!("create Claim {name} Pod {}-{ordinal} in StatefulSet {} success", key.name, key.name);
                    self.ctx.recorder.record(set, EventType::Normal, "SuccessfulCreate", message);
                }
                Err(e) if is_status(&e, 409) => {}
                Err(e) => {
                    let message = format!(
                        "create Claim {name} for Pod {}-{ordinal} in StatefulSet {} failed error: {e}",
                        key.name, key.name
                    );
                    self.ctx.recorder.record(set, EventType::Warning, "FailedCreate", message);
                    return Err(ControllerError::api(format!(
                        "creating persistentvolumeclaim {}/{name}",
                        key.namespace
                    ))(e));
                }
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        key: &ObjectKey,
        set: &StatefulSet,
        plan: &StatefulSetPlan,
    ) -> Result<(), ControllerError> {
        if set.status.as_ref() == Some(&plan.status) {
            return Ok(());
        }
        let api: Api<StatefulSet> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let status = serde_json::to_value(&plan.status).unwrap_or_default();
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(ControllerError::api(format!("updating status of statefulset {key}"))(e)),
        }
    }
}
