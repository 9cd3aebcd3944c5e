//! The Endpoints controller's I/O: Service changes, changes of pods a Service selects and deletions of
//! Endpoints map to the Service's key; a reconcile writes the planned Endpoints when they differ, and
//! deletes the Endpoints of a Service that is gone (as upstream).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use tokio::task::JoinSet;

use super::plan::desired_endpoints;
use super::service_pods::{selector, selects_pod};
use crate::manager::ManagerConfig;
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, Informer, ObjectKey, Reconciler, Requeue, WorkQueue,
};

pub const NAME: &str = "endpoints";

pub struct EndpointsController {
    ctx: Context,
}

/// Starts the controller's change feeds and workers in `tasks`. Keys are Service keys.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.services, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    let services = inf.services.clone();
    tasks.spawn(enqueue_changes(&inf.pods, &queue, move |c| services_of(c, &services)));
    tasks.spawn(enqueue_changes(&inf.endpoints, &queue, |c: &Change<Endpoints>| match c {
        Change::Deleted(ep) => vec![ObjectKey::of(ep.as_ref())],
        Change::Applied { .. } => Vec::new(),
    }));
    let controller = Arc::new(EndpointsController { ctx: ctx.clone() });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// The Services of the pod's namespace that select it before or after the change.
pub fn services_of(change: &Change<Pod>, services: &Informer<Service>) -> Vec<ObjectKey> {
    let pods: Vec<&Pod> = match change {
        Change::Applied { old, new } => old.iter().map(|o| o.as_ref()).chain([new.as_ref()]).collect(),
        Change::Deleted(p) => vec![p.as_ref()],
    };
    let Some(ns) = pods.first().and_then(|p| p.metadata.namespace.clone()) else { return Vec::new() };
    let mut keys: Vec<ObjectKey> = services
        .list_namespace(&ns)
        .iter()
        .filter(|svc| pods.iter().any(|p| selects_pod(svc, p)))
        .map(|svc| ObjectKey::of(svc.as_ref()))
        .collect();
    keys.dedup();
    keys
}

impl Reconciler for EndpointsController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let api: Api<Endpoints> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let existing = inf.endpoints.get(key);
        let Some(svc) = inf.services.get(key) else {
            if existing.is_some() {
                match api.delete(&key.name, &DeleteParams::default()).await {
                    Ok(_) => tracing::debug!(service = %key, "deleted the endpoints of a deleted service"),
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => return Err(ControllerError::api(format!("deleting endpoints {key}"))(e)),
                }
            }
            return Ok(Requeue::Done);
        };
        if selector(&svc).is_none() {
            return Ok(Requeue::Done);
        }
        let pods = inf.pods.list_namespace(&key.namespace);
        let Some(desired) = desired_endpoints(&svc, &pods, existing.as_deref()) else {
            return Ok(Requeue::Done);
        };
        let result = if existing.is_some() {
            api.replace(&key.name, &PostParams::default(), &desired).await
        } else {
            api.create(&PostParams::default(), &desired).await
        };
        match result {
            Ok(_) => {
                tracing::debug!(service = %key, "endpoints written");
                Ok(Requeue::Done)
            }
            Err(e) => Err(ControllerError::api(format!("writing endpoints {key}"))(e)),
        }
    }
}
