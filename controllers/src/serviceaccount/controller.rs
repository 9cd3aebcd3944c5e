//! The ServiceAccount controller's I/O: namespace changes and deletions of `default` accounts map to
//! the namespace's key; a reconcile creates the account when the plan says so.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::task::JoinSet;

use super::plan::{needs_default, DEFAULT_SERVICE_ACCOUNT};
use crate::manager::ManagerConfig;
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, ObjectKey, Reconciler, Requeue, WorkQueue,
};

pub const NAME: &str = "serviceaccount";

pub struct ServiceAccountController {
    ctx: Context,
}

/// Starts the controller's change feeds and workers in `tasks`. Keys are namespace names.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.namespaces, &queue, |c: &Change<Namespace>| match c {
        Change::Applied { new, .. } => vec![ObjectKey::of(new.as_ref())],
        Change::Deleted(_) => Vec::new(),
    }));
    tasks.spawn(enqueue_changes(&inf.service_accounts, &queue, |c: &Change<ServiceAccount>| {
        let sa = c.object();
        let name = sa.metadata.name.as_deref();
        let gone = matches!(c, Change::Deleted(_)) || sa.metadata.deletion_timestamp.is_some();
        if gone && name == Some(DEFAULT_SERVICE_ACCOUNT) {
            vec![ObjectKey::cluster(sa.metadata.namespace.clone().unwrap_or_default())]
        } else {
            Vec::new()
        }
    }));
    let controller = Arc::new(ServiceAccountController { ctx: ctx.clone() });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

impl Reconciler for ServiceAccountController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let namespace = inf.namespaces.get(&ObjectKey::cluster(&key.name));
        let existing = inf.service_accounts.get(&ObjectKey::new(&key.name, DEFAULT_SERVICE_ACCOUNT));
        if !needs_default(namespace.as_deref(), existing.as_deref()) {
            return Ok(Requeue::Done);
        }
        if existing.is_some() {
            // The old account is still terminating; its deletion event brings the key back.
            return Ok(Requeue::Done);
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.ctx.client.clone(), &key.name);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
                namespace: Some(key.name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {
                tracing::debug!(namespace = %key.name, "created the default service account");
                Ok(Requeue::Done)
            }
            // Already there (cache lag), or the namespace started terminating meanwhile.
            Err(e) if is_status(&e, 409) || is_status(&e, 403) || is_status(&e, 404) => Ok(Requeue::Done),
            Err(e) => Err(ControllerError::api(format!("creating the default service account in {}", key.name))(e)),
        }
    }
}
