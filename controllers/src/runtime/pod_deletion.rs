//! Deleting the pods a controller's plan chose, as upstream's pod control does: each delete carries a
//! uid precondition (a same-named replacement is never hit), is recorded as an expectation before it
//! is sent, and leaves a `SuccessfulDelete` or `FailedDelete` Event on the owner. Pods already gone
//! (404) or replaced (409) count as deleted.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Resource};

use super::error::is_status;
use super::{Context, ControllerError, EventType, Expectations, ObjectKey};

/// Deletes `pods` (of `owner`, whose queue key is `key`) concurrently; the first failure is returned
/// after all were tried.
pub async fn delete_pods<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    expectations: &Expectations,
    key: &ObjectKey,
    owner: &K,
    pods: &[Arc<Pod>],
) -> Result<(), ControllerError> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let deletes = pods.iter().map(|pod| {
        let api = api.clone();
        async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            expectations.expect_delete(key, ObjectKey::new(&key.namespace, &name), uid.clone());
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    ctx.recorder.record(owner, EventType::Normal, "SuccessfulDelete", format!("Deleted pod: {name}"));
                    Ok(())
                }
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
                Err(e) => {
                    ctx.recorder.record(owner, EventType::Warning, "FailedDelete", format!("Error deleting: {e}"));
                    Err(ControllerError::api(format!("deleting pod {}/{name}", key.namespace))(e))
                }
            }
        }
    });
    join_all(deletes).await.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}
