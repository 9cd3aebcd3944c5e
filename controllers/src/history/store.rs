//! The thin I/O side of revisions: carries out a [`RevisionPlan`] (create, renumber) and prunes old
//! revisions. Decides nothing itself.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::revision::RevisionPlan;
use crate::pods::controller_of;
use crate::runtime::error::is_status;
use crate::runtime::ControllerError;

/// What carrying out a revision plan gave.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// The revision that now holds the template, as the API returned it.
    Revision(Arc<ControllerRevision>),
    /// A different revision already has the name: the owner's collision count must grow.
    Collision,
}

/// Creates or renumbers as `plan` says; `owner_uid` identifies the owner when a create finds the name taken.
pub async fn resolve(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    plan: RevisionPlan,
) -> Result<Resolved, ControllerError> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    match plan {
        RevisionPlan::Current(r) => Ok(Resolved::Revision(r)),
        RevisionPlan::Renumber { revision, to } => {
            let name = revision.metadata.name.clone().unwrap_or_default();
            let patch = json!({"revision": to});
            let updated = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(ControllerError::api(format!("renumbering controllerrevision {namespace}/{name}")))?;
            Ok(Resolved::Revision(Arc::new(updated)))
        }
        RevisionPlan::Create(new) => {
            let name = new.metadata.name.clone().unwrap_or_default();
            match api.create(&PostParams::default(), new.as_ref()).await {
                Ok(created) => Ok(Resolved::Revision(Arc::new(created))),
                Err(e) if is_status(&e, 409) => {
                    let existing = api
                        .get(&name)
                        .await
                        .map_err(ControllerError::api(format!("reading controllerrevision {namespace}/{name}")))?;
                    let same_owner = controller_of(&existing.metadata).is_some_and(|o| o.uid == owner_uid);
                    if same_owner && existing.data == new.data {
                        Ok(Resolved::Revision(Arc::new(existing)))
                    } else {
                        Ok(Resolved::Collision)
                    }
                }
                Err(e) => Err(ControllerError::api(format!("creating controllerrevision {namespace}/{name}"))(e)),
            }
        }
    }
}

/// Deletes `revisions` (already gone is fine).
pub async fn prune(
    client: &Client,
    namespace: &str,
    revisions: &[Arc<ControllerRevision>],
) -> Result<(), ControllerError> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    for r in revisions {
        let name = r.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(ControllerError::api(format!("deleting controllerrevision {namespace}/{name}"))(e)),
        }
    }
    Ok(())
}
