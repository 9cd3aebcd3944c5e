//! The disruption controller's I/O: maps budget, pod and workload changes to budget keys and writes
//! the planned status with the budget's resourceVersion, so it never overwrites a decrement the
//! eviction API made meanwhile (that write conflicts and the budget is looked at again).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Resource};
use tokio::task::JoinSet;

use super::plan::{plan, Workloads};
use crate::manager::ManagerConfig;
use crate::pods::selects;
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, Informer, ObjectKey, Reconciler,
    Requeue, WorkQueue,
};

pub const NAME: &str = "disruption";

pub struct DisruptionController {
    ctx: Context,
}

/// Starts the controller's change feeds and workers in `tasks`.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.pod_disruption_budgets, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    let pdbs = inf.pod_disruption_budgets.clone();
    tasks.spawn(enqueue_changes(&inf.pods, &queue, move |c| budgets_of_pod(c, &pdbs)));
    let pdbs = inf.pod_disruption_budgets.clone();
    tasks.spawn(enqueue_changes(&inf.replica_sets, &queue, move |c| budgets_in_namespace(c.object().as_ref(), &pdbs)));
    let pdbs = inf.pod_disruption_budgets.clone();
    tasks.spawn(enqueue_changes(&inf.deployments, &queue, move |c| budgets_in_namespace(c.object().as_ref(), &pdbs)));
    let pdbs = inf.pod_disruption_budgets.clone();
    tasks.spawn(enqueue_changes(&inf.stateful_sets, &queue, move |c| budgets_in_namespace(c.object().as_ref(), &pdbs)));
    let controller = Arc::new(DisruptionController { ctx: ctx.clone() });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// Budgets whose selector picks the pod before or after the change.
fn budgets_of_pod(change: &Change<Pod>, pdbs: &Informer<PodDisruptionBudget>) -> Vec<ObjectKey> {
    let pods: Vec<&Pod> = match change {
        Change::Applied { old, new } => old.iter().map(|o| o.as_ref()).chain([new.as_ref()]).collect(),
        Change::Deleted(p) => vec![p.as_ref()],
    };
    let mut keys = Vec::new();
    for pod in pods {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        for pdb in pdbs.list_namespace(ns) {
            let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
            if selects(selector, pod.metadata.labels.as_ref()) {
                keys.push(ObjectKey::of(pdb.as_ref()));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Every budget of the workload's namespace (its scale may be any budget's expected count).
fn budgets_in_namespace<K: Resource>(obj: &K, pdbs: &Informer<PodDisruptionBudget>) -> Vec<ObjectKey> {
    let ns = obj.meta().namespace.as_deref().unwrap_or_default();
    pdbs.list_namespace(ns).iter().map(|p| ObjectKey::of(p.as_ref())).collect()
}

impl Reconciler for DisruptionController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let Some(pdb) = inf.pod_disruption_budgets.get(key) else { return Ok(Requeue::Done) };
        if pdb.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let pods = inf.pods.list_namespace(&key.namespace);
        let (replica_sets, deployments, stateful_sets) = (
            inf.replica_sets.list_namespace(&key.namespace),
            inf.deployments.list_namespace(&key.namespace),
            inf.stateful_sets.list_namespace(&key.namespace),
        );
        let workloads =
            Workloads { replica_sets: &replica_sets, deployments: &deployments, stateful_sets: &stateful_sets };
        let planned = plan(&pdb, &pods, workloads, Timestamp::now());
        let changed = pdb.status.as_ref() != Some(&planned.status);
        if changed {
            for (warning, reason, message) in &planned.events {
                let kind = if *warning { EventType::Warning } else { EventType::Normal };
                self.ctx.recorder.record(pdb.as_ref(), kind, reason, message.clone());
            }
            let mut next = (*pdb).clone();
            next.status = Some(planned.status);
            let api: Api<PodDisruptionBudget> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
            match api.replace_status(&key.name, &PostParams::default(), &next).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => return Ok(Requeue::Done),
                Err(e) => return Err(ControllerError::api(format!("updating status of poddisruptionbudget {key}"))(e)),
            }
        }
        Ok(planned.recheck_after.map_or(Requeue::Done, Requeue::After))
    }
}
