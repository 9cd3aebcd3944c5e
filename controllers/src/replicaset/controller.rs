//! The ReplicaSet controller's I/O: maps pod and ReplicaSet changes to queue keys, carries out plans
//! (adopt, release, create in slow-start batches, delete), records Events and writes status.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tokio::task::JoinSet;

use super::plan::{plan, ReplicaSetPlan};
use crate::manager::ManagerConfig;
use crate::pods::{controller_of, controller_ref, pod_from_template, selects};
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, Expectations, ObjectKey, Reconciler,
    Requeue, WorkQueue,
};

pub const NAME: &str = "replicaset";

pub struct ReplicaSetController {
    ctx: Context,
    expectations: Expectations,
}

/// Starts the controller's change feeds and workers in `tasks`.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.replica_sets, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    let sets = inf.replica_sets.clone();
    tasks.spawn(enqueue_changes(&inf.pods, &queue, move |c| owners_of(c, &sets)));
    let controller = Arc::new(ReplicaSetController { ctx: ctx.clone(), expectations: Expectations::new() });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// The ReplicaSets a pod change concerns: its controller before and after, and for an orphan every
/// ReplicaSet of its namespace whose selector picks it (to adopt it).
fn owners_of(change: &Change<Pod>, sets: &crate::runtime::Informer<ReplicaSet>) -> Vec<ObjectKey> {
    let mut keys = Vec::new();
    let pods: Vec<&Pod> = match change {
        Change::Applied { old, new } => old.iter().map(|o| o.as_ref()).chain([new.as_ref()]).collect(),
        Change::Deleted(p) => vec![p.as_ref()],
    };
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        match controller_of(&pod.metadata) {
            Some(o) if o.kind == "ReplicaSet" => keys.push(ObjectKey::new(ns, o.name.clone())),
            Some(_) => {}
            None => {
                for rs in sets.list_namespace(&ns) {
                    if selects(rs.spec.as_ref().map(|s| &s.selector), pod.metadata.labels.as_ref()) {
                        keys.push(ObjectKey::of(rs.as_ref()));
                    }
                }
            }
        }
    }
    keys.dedup();
    keys
}

impl Reconciler for ReplicaSetController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let Some(rs) = inf.replica_sets.get(key) else {
            self.expectations.forget(key);
            return Ok(Requeue::Done);
        };
        let synced = self.expectations.satisfied(key, |k| {
            inf.pods
                .get(k)
                .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p.metadata.deletion_timestamp.is_some()))
        });
        let pods = inf.pods.list_namespace(&key.namespace);
        let mut plan = plan(&rs, &pods, Timestamp::now());
        let mut failure = None;
        if synced {
            if let Err(e) = self.carry_out(key, &rs, &plan).await {
                failure = Some(e);
            }
        }
        set_failure_condition(&mut plan, failure.as_ref());
        self.write_status(key, &rs, &plan).await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(plan.requeue_after.map_or(Requeue::Done, Requeue::After)),
        }
    }
}

impl ReplicaSetController {
    async fn carry_out(&self, key: &ObjectKey, rs: &ReplicaSet, plan: &ReplicaSetPlan) -> Result<(), ControllerError> {
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let owner = controller_ref(rs);
        for pod in &plan.adopt {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
            refs.push(owner.clone());
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
            match pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) || is_status(&e, 422) => {}
                Err(e) => return Err(ControllerError::api(format!("adopting pod {key}/{name}"))(e)),
            }
        }
        for pod in &plan.release {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let refs: Vec<_> =
                pod.metadata.owner_references.iter().flatten().filter(|o| o.uid != owner.uid).cloned().collect();
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
            match pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) || is_status(&e, 422) => {}
                Err(e) => return Err(ControllerError::api(format!("releasing pod {}/{name}", key.namespace))(e)),
            }
        }
        if plan.create > 0 {
            self.create_pods(key, rs, &pods, plan.create).await?;
        }
        crate::runtime::pod_deletion::delete_pods(&self.ctx, &self.expectations, key, rs, &plan.delete).await?;
        Ok(())
    }

    /// Creates `count` pods in slow-start batches (1, 2, 4, ...), stopping at the first failure, as
    /// upstream does, so a quota or validation error costs one request rather than hundreds.
    async fn create_pods(
        &self,
        key: &ObjectKey,
        rs: &ReplicaSet,
        pods: &Api<Pod>,
        count: usize,
    ) -> Result<(), ControllerError> {
        let Some(template) = rs.spec.as_ref().and_then(|s| s.template.as_ref()) else {
            return Err(ControllerError::Invalid { key: key.clone(), message: "spec.template is missing".into() });
        };
        let pod = pod_from_template(template, &key.namespace, &format!("{}-", key.name), controller_ref(rs));
        let params = PostParams::default();
        let mut remaining = count;
        let mut batch = 1;
        while remaining > 0 {
            let n = batch.min(remaining);
            let results = join_all((0..n).map(|_| pods.create(&params, &pod))).await;
            let mut first_error = None;
            for r in results {
                match r {
                    Ok(created) => {
                        let name = created.metadata.name.unwrap_or_default();
                        self.expectations.expect_create(key, ObjectKey::new(&key.namespace, &name));
                        self.ctx.recorder.record(
                            rs,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                    }
                    Err(e) => {
                        self.ctx.recorder.record(
                            rs,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        );
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(ControllerError::api(format!("creating pods for replicaset {key}"))(e));
            }
            remaining -= n;
            batch *= 2;
        }
        Ok(())
    }

    async fn write_status(
        &self,
        key: &ObjectKey,
        rs: &ReplicaSet,
        plan: &ReplicaSetPlan,
    ) -> Result<(), ControllerError> {
        if rs.status.as_ref() == Some(&plan.status) {
            return Ok(());
        }
        let api: Api<ReplicaSet> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let mut status = serde_json::to_value(&plan.status).unwrap_or_default();
        if plan.status.conditions.is_none() {
            status["conditions"] = serde_json::Value::Null;
        }
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(ControllerError::api(format!("updating status of replicaset {key}"))(e)),
        }
    }
}

/// Sets or clears the `ReplicaFailure` condition after a pass.
fn set_failure_condition(plan: &mut ReplicaSetPlan, failure: Option<&ControllerError>) {
    let mut conditions = plan.status.conditions.take().unwrap_or_default();
    let had = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some(e @ ControllerError::Api { action, .. })
            if action.starts_with("creating") || action.starts_with("deleting") =>
        {
            if !had {
                let reason = if action.starts_with("creating") { "FailedCreate" } else { "FailedDelete" };
                conditions.push(ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(e.to_string()),
                    last_transition_time: Some(Time(Timestamp::now())),
                });
            }
        }
        Some(_) => {}
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    plan.status.conditions = (!conditions.is_empty()).then_some(conditions);
}
