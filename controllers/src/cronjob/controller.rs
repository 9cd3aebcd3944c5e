//! The CronJob controller's I/O: maps CronJob and Job changes to queue keys, confirms active Jobs the
//! cache does not show yet, carries out plans (delete replaced and surplus finished Jobs, create the
//! scheduled Job), writes status, records Events and asks to be woken at the next activation.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::Api;
use serde_json::json;
use tokio::task::JoinSet;

use super::plan::{plan, CronJobPlan};
use crate::job::finished_condition;
use crate::manager::ManagerConfig;
use crate::pods::{controller_of, is_controlled_by};
use crate::runtime::error::is_status;
use crate::runtime::events::reference;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, ObjectKey, Reconciler, Requeue,
    WorkQueue,
};

pub const NAME: &str = "cronjob";

pub struct CronJobController {
    ctx: Context,
}

/// Starts the controller's change feeds and workers in `tasks`.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.cron_jobs, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    tasks.spawn(enqueue_changes(&inf.jobs, &queue, owners_of));
    let controller = Arc::new(CronJobController { ctx: ctx.clone() });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// The CronJobs a Job change concerns: its controlling CronJob.
fn owners_of(change: &Change<Job>) -> Vec<ObjectKey> {
    let job = change.object();
    controller_of(&job.metadata)
        .filter(|o| o.kind == "CronJob" && o.api_version == "batch/v1")
        .map(|o| vec![ObjectKey::new(job.metadata.namespace.clone().unwrap_or_default(), o.name.clone())])
        .unwrap_or_default()
}

impl Reconciler for CronJobController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let Some(cj) = self.ctx.informers.cron_jobs.get(key) else { return Ok(Requeue::Done) };
        let mut jobs = self.ctx.informers.jobs.list_namespace(&key.namespace);
        self.confirm_active(key, &cj, &mut jobs).await?;
        let now = k8s_openapi::jiff::Timestamp::now();
        let mut plan = plan(&cj, &jobs, now);
        tracing::debug!(cronjob = %key, create = ?plan.create.as_ref().and_then(|j| j.metadata.name.clone()), delete = plan.delete.len(), "cronjob plan");
        for event in &plan.events {
            self.ctx.recorder.record(cj.as_ref(), event.kind, event.reason, event.message.clone());
        }
        self.delete_jobs(key, &cj, &plan).await?;
        let created = self.create_job(key, &cj, &mut plan).await;
        self.write_status(key, &cj, &plan).await?;
        created?;
        Ok(plan.requeue_after.map_or(Requeue::Done, Requeue::After))
    }
}

impl CronJobController {
    /// Adds to `jobs` the active Jobs the cache does not show but the API has (just created), so the
    /// plan does not drop them from `status.active` as missing.
    async fn confirm_active(
        &self,
        key: &ObjectKey,
        cj: &CronJob,
        jobs: &mut Vec<Arc<Job>>,
    ) -> Result<(), ControllerError> {
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let refs = cj.status.as_ref().and_then(|s| s.active.clone()).unwrap_or_default();
        for r in refs {
            if jobs.iter().any(|j| j.metadata.uid.is_some() && j.metadata.uid == r.uid) {
                continue;
            }
            let Some(name) = r.name.as_deref() else { continue };
            match api.get_opt(name).await {
                Ok(Some(job)) => jobs.push(Arc::new(job)),
                Ok(None) => {}
                Err(e) => {
                    return Err(ControllerError::api(format!(
                        "reading active job {}/{name} of cronjob {key}",
                        key.namespace
                    ))(e))
                }
            }
        }
        Ok(())
    }

    async fn delete_jobs(&self, key: &ObjectKey, cj: &CronJob, plan: &CronJobPlan) -> Result<(), ControllerError> {
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        for job in &plan.delete {
            let name = job.metadata.name.clone().unwrap_or_default();
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(Preconditions { uid: job.metadata.uid.clone(), resource_version: None }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    self.ctx.recorder.record(cj, EventType::Normal, "SuccessfulDelete", format!("Deleted job {name}"))
                }
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => {
                    self.ctx.recorder.record(cj, EventType::Warning, "FailedDelete", format!("Deleted job: {e}"));
                    return Err(ControllerError::api(format!(
                        "deleting job {}/{name} of cronjob {key}",
                        key.namespace
                    ))(e));
                }
            }
        }
        Ok(())
    }

    /// Creates the planned Job and lists it as active. A Job of that name that already exists is the
    /// same activation started before (names are deterministic): it is listed if it is ours.
    async fn create_job(&self, key: &ObjectKey, cj: &CronJob, plan: &mut CronJobPlan) -> Result<(), ControllerError> {
        let Some(job) = plan.create.take() else { return Ok(()) };
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let name = job.metadata.name.clone().unwrap_or_default();
        let created = match api.create(&PostParams::default(), &job).await {
            Ok(created) => {
                self.ctx.recorder.record(cj, EventType::Normal, "SuccessfulCreate", format!("Created job {name}"));
                created
            }
            Err(e) if is_status(&e, 409) => match api.get_opt(&name).await {
                Ok(Some(existing)) => existing,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ControllerError::api(format!("reading job {}/{name}", key.namespace))(e)),
            },
            Err(e) => {
                self.ctx.recorder.record(cj, EventType::Warning, "FailedCreate", format!("Error creating job: {e}"));
                // The activation was not started: keep lastScheduleTime so it is retried.
                plan.status.last_schedule_time = cj.status.as_ref().and_then(|s| s.last_schedule_time.clone());
                return Err(ControllerError::api(format!("creating job {}/{name} for cronjob {key}", key.namespace))(
                    e,
                ));
            }
        };
        let uid = cj.metadata.uid.as_deref().unwrap_or_default();
        if is_controlled_by(&created.metadata, uid) && finished_condition(&created).is_none() {
            let active = plan.status.active.get_or_insert_with(Vec::new);
            if !active.iter().any(|r| r.uid == created.metadata.uid) {
                active.push(reference(&created));
            }
        }
        Ok(())
    }

    async fn write_status(&self, key: &ObjectKey, cj: &CronJob, plan: &CronJobPlan) -> Result<(), ControllerError> {
        let current = cj.status.clone().unwrap_or_default();
        if current == plan.status {
            return Ok(());
        }
        let mut status = serde_json::to_value(&plan.status).unwrap_or_default();
        if plan.status.active.is_none() {
            status["active"] = serde_json::Value::Null;
        }
        let api: Api<CronJob> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(ControllerError::api(format!("updating status of cronjob {key}"))(e)),
        }
    }
}
