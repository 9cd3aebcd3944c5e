//! The EndpointSlice controller's I/O: Service changes, changes of pods a Service selects and changes
//! of managed slices map to the Service's key; a reconcile carries out the slice plan, recording the
//! creates and deletes as expectations so a lagging cache cannot make it create the same slice twice.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::Api;
use tokio::task::JoinSet;

use super::plan::{plan, SlicePlan, CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_ZONE};
use crate::endpoints::controller::services_of;
use crate::manager::ManagerConfig;
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, Expectations, ObjectKey, Reconciler,
    Requeue, WorkQueue,
};

pub const NAME: &str = "endpointslice";

/// How soon to look again while writes are not yet visible in the cache.
const UNSYNCED_RETRY: Duration = Duration::from_secs(2);

pub struct EndpointSliceController {
    ctx: Context,
    expectations: Expectations,
}

/// Starts the controller's change feeds and workers in `tasks`. Keys are Service keys.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.services, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    let services = inf.services.clone();
    tasks.spawn(enqueue_changes(&inf.pods, &queue, move |c| services_of(c, &services)));
    tasks.spawn(enqueue_changes(&inf.endpoint_slices, &queue, |c: &Change<EndpointSlice>| {
        service_of(c.object()).into_iter().collect()
    }));
    let controller = Arc::new(EndpointSliceController { ctx: ctx.clone(), expectations: Expectations::new() });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// The Service a slice managed by this controller belongs to.
fn service_of(slice: &EndpointSlice) -> Option<ObjectKey> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(CONTROLLER_NAME) {
        return None;
    }
    let name = labels.get(LABEL_SERVICE_NAME)?;
    Some(ObjectKey::new(slice.metadata.namespace.clone().unwrap_or_default(), name.clone()))
}

impl Reconciler for EndpointSliceController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let Some(svc) = inf.services.get(key) else {
            // The slices are owned by the Service: the garbage collector removes them.
            self.expectations.forget(key);
            return Ok(Requeue::Done);
        };
        if svc.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let synced = self.expectations.satisfied(key, |k| {
            inf.endpoint_slices
                .get(k)
                .map(|s| (s.metadata.uid.clone().unwrap_or_default(), s.metadata.deletion_timestamp.is_some()))
        });
        if !synced {
            return Ok(Requeue::After(UNSYNCED_RETRY));
        }
        let existing: Vec<Arc<EndpointSlice>> = inf
            .endpoint_slices
            .list_namespace(&key.namespace)
            .into_iter()
            .filter(|s| service_of(s).as_ref() == Some(key))
            .collect();
        let pods = inf.pods.list_namespace(&key.namespace);
        let nodes = &inf.nodes;
        let zone_of = |node: &str| {
            nodes.get(&ObjectKey::cluster(node)).and_then(|n| n.metadata.labels.as_ref()?.get(LABEL_ZONE).cloned())
        };
        let plan = plan(&svc, &pods, &zone_of, &existing);
        if plan.is_empty() {
            return Ok(Requeue::Done);
        }
        tracing::debug!(
            service = %key,
            create = plan.create.len(),
            update = plan.update.len(),
            delete = plan.delete.len(),
            "writing endpoint slices"
        );
        self.carry_out(key, &svc, plan).await?;
        Ok(Requeue::Done)
    }
}

impl EndpointSliceController {
    async fn carry_out(&self, key: &ObjectKey, svc: &Service, plan: SlicePlan) -> Result<(), ControllerError> {
        let api: Api<EndpointSlice> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let params = PostParams::default();
        let creates = plan.create.iter().map(|slice| {
            let api = api.clone();
            let params = &params;
            async move {
                match api.create(params, slice).await {
                    Ok(created) => {
                        let name = created.metadata.name.unwrap_or_default();
                        self.expectations.expect_create(key, ObjectKey::new(&key.namespace, name));
                        Ok(())
                    }
                    Err(e) => {
                        self.ctx.recorder.record(
                            svc,
                            EventType::Warning,
                            "FailedToUpdateEndpointSlices",
                            format!("Error updating Endpoint Slices for Service {key}: {e}"),
                        );
                        Err(ControllerError::api(format!("creating an endpoint slice for service {key}"))(e))
                    }
                }
            }
        });
        let updates = plan.update.iter().map(|slice| {
            let api = api.clone();
            let params = &params;
            async move {
                let name = slice.metadata.name.clone().unwrap_or_default();
                match api.replace(&name, params, slice).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(ControllerError::api(format!("updating endpoint slice {}/{name}", key.namespace))(e)),
                }
            }
        });
        let deletes = plan.delete.iter().map(|slice| {
            let api = api.clone();
            async move {
                let name = slice.metadata.name.clone().unwrap_or_default();
                let uid = slice.metadata.uid.clone().unwrap_or_default();
                self.expectations.expect_delete(key, ObjectKey::new(&key.namespace, &name), uid.clone());
                let dp = DeleteParams {
                    preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                    ..Default::default()
                };
                match api.delete(&name, &dp).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
                    Err(e) => Err(ControllerError::api(format!("deleting endpoint slice {}/{name}", key.namespace))(e)),
                }
            }
        });
        // Creates and updates first, so readers never see a service's endpoints vanish mid-change.
        let mut results = join_all(creates).await;
        results.extend(join_all(updates).await);
        results.extend(join_all(deletes).await);
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }
}
