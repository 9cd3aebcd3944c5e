//! The Job controller's I/O: maps Job and pod changes to queue keys, writes the planned status (with
//! optimistic concurrency, since counters are derived from it), then drops tracking finalizers,
//! deletes and creates pods, records Events, and deletes Jobs whose TTL after finishing has passed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::Api;
use serde_json::json;
use tokio::task::JoinSet;

use super::backoff::BackoffRecord;
use super::indexes::COMPLETION_INDEX;
use super::plan::{plan, JobPlan, TRACKING_FINALIZER};
use crate::manager::ManagerConfig;
use crate::pods::{controller_of, controller_ref, pod_from_template};
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, Expectations, ObjectKey, Reconciler,
    Requeue, WorkQueue,
};

pub const NAME: &str = "job";
/// `spec.managedBy` value of Jobs this controller owns (any other value belongs to someone else).
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";

pub struct JobController {
    ctx: Context,
    expectations: Expectations,
    /// Per Job key: (uid, failures since the last success), as upstream keeps it in memory.
    backoff: Mutex<HashMap<ObjectKey, (String, BackoffRecord)>>,
}

/// Starts the controller's change feeds and workers in `tasks`.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.jobs, &queue, |c| vec![ObjectKey::of(c.object().as_ref())]));
    tasks.spawn(enqueue_changes(&inf.pods, &queue, owners_of));
    let controller = Arc::new(JobController {
        ctx: ctx.clone(),
        expectations: Expectations::new(),
        backoff: Mutex::new(HashMap::new()),
    });
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

/// The Jobs a pod change concerns: its controlling Job before and after.
fn owners_of(change: &Change<Pod>) -> Vec<ObjectKey> {
    let pods: Vec<&Pod> = match change {
        Change::Applied { old, new } => old.iter().map(|o| o.as_ref()).chain([new.as_ref()]).collect(),
        Change::Deleted(p) => vec![p.as_ref()],
    };
    let mut keys: Vec<ObjectKey> = pods
        .into_iter()
        .filter_map(|pod| {
            let owner = controller_of(&pod.metadata).filter(|o| o.kind == "Job" && o.api_version == "batch/v1")?;
            Some(ObjectKey::new(pod.metadata.namespace.clone().unwrap_or_default(), owner.name.clone()))
        })
        .collect();
    keys.dedup();
    keys
}

impl Reconciler for JobController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let Some(job) = inf.jobs.get(key) else {
            self.expectations.forget(key);
            self.backoff.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
            self.release_orphans(key).await?;
            return Ok(Requeue::Done);
        };
        let managed_by = job.spec.as_ref().and_then(|s| s.managed_by.as_deref());
        if managed_by.is_some_and(|m| m != MANAGED_BY) {
            return Ok(Requeue::Done);
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let synced = self.expectations.satisfied(key, |k| {
            inf.pods
                .get(k)
                .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p.metadata.deletion_timestamp.is_some()))
        });
        let record = {
            let records = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
            records.get(key).filter(|(u, _)| *u == uid).map(|(_, r)| *r).unwrap_or_default()
        };
        // Whole seconds, as the API stores times: a status compared against its stored copy must match.
        let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
        let pods = inf.pods.list_namespace(&key.namespace);
        let mut plan = plan(&job, &pods, now, record);
        if !synced {
            plan.create.clear();
            plan.delete.clear();
        }
        tracing::debug!(
            job = %key,
            create = plan.create.len(),
            delete = plan.delete.len(),
            uncount = plan.remove_finalizer.len(),
            "job plan"
        );
        self.write_status(key, &job, &plan).await?;
        self.backoff.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), (uid, plan.backoff));
        for event in &plan.events {
            self.ctx.recorder.record(job.as_ref(), event.kind, event.reason, event.message.clone());
        }
        self.remove_finalizers(key, &plan.remove_finalizer).await?;
        self.delete_pods(key, &job, &plan).await?;
        self.create_pods(key, &job, &plan).await?;
        if plan.delete_job {
            self.delete_job(key, &job).await?;
            return Ok(Requeue::Done);
        }
        Ok(plan.requeue_after.map_or(Requeue::Done, Requeue::After))
    }
}

impl JobController {
    async fn write_status(&self, key: &ObjectKey, job: &Job, plan: &JobPlan) -> Result<(), ControllerError> {
        if job.status.as_ref() == Some(&plan.status) {
            return Ok(());
        }
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let mut updated = job.clone();
        updated.status = Some(plan.status.clone());
        // A replace carries the cached resourceVersion: counters derived from a stale status must not land.
        match api.replace_status(&key.name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(()),
            Err(e) => Err(ControllerError::api(format!("updating status of job {key}"))(e)),
        }
    }

    async fn remove_finalizers(&self, key: &ObjectKey, pods: &[Arc<Pod>]) -> Result<(), ControllerError> {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let patches = pods.iter().map(|pod| {
            let api = api.clone();
            async move {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let kept: Vec<&String> =
                    pod.metadata.finalizers.iter().flatten().filter(|f| *f != TRACKING_FINALIZER).collect();
                let patch = json!({"metadata": {"finalizers": kept, "uid": pod.metadata.uid}});
                match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_status(&e, 404) || is_status(&e, 409) || is_status(&e, 422) => Ok(()),
                    Err(e) => Err(ControllerError::api(format!(
                        "removing the tracking finalizer of pod {}/{name}",
                        key.namespace
                    ))(e)),
                }
            }
        });
        join_all(patches).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    async fn delete_pods(&self, key: &ObjectKey, job: &Job, plan: &JobPlan) -> Result<(), ControllerError> {
        crate::runtime::pod_deletion::delete_pods(&self.ctx, &self.expectations, key, job, &plan.delete).await?;
        Ok(())
    }

    /// Creates the planned pods in slow-start batches (1, 2, 4, ...), stopping at the first failure.
    async fn create_pods(&self, key: &ObjectKey, job: &Job, plan: &JobPlan) -> Result<(), ControllerError> {
        let Some(spec) = job.spec.as_ref() else { return Ok(()) };
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let params = PostParams::default();
        let mut rest = plan.create.as_slice();
        let mut batch = 1;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(batch.min(rest.len()));
            let creates = now.iter().map(|index| {
                let pod = pod_for(job, &key.namespace, &key.name, &spec.template, *index);
                let api = api.clone();
                let params = params.clone();
                async move { api.create(&params, &pod).await }
            });
            let mut first_error = None;
            for result in join_all(creates).await {
                match result {
                    Ok(created) => {
                        let name = created.metadata.name.unwrap_or_default();
                        self.expectations.expect_create(key, ObjectKey::new(&key.namespace, &name));
                        self.ctx.recorder.record(
                            job,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                    }
                    Err(e) => {
                        self.ctx.recorder.record(
                            job,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        );
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(ControllerError::api(format!("creating pods for job {key}"))(e));
            }
            rest = later;
            batch *= 2;
        }
        Ok(())
    }

    async fn delete_job(&self, key: &ObjectKey, job: &Job) -> Result<(), ControllerError> {
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions { uid: job.metadata.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        tracing::info!(job = %key, "deleting finished job after its ttlSecondsAfterFinished");
        match api.delete(&key.name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(ControllerError::api(format!("deleting expired job {key}"))(e)),
        }
    }

    /// Drops the tracking finalizer from pods whose Job is gone, so they can be deleted.
    async fn release_orphans(&self, key: &ObjectKey) -> Result<(), ControllerError> {
        let orphans: Vec<Arc<Pod>> = self
            .ctx
            .informers
            .pods
            .list_namespace(&key.namespace)
            .into_iter()
            .filter(|p| p.metadata.finalizers.iter().flatten().any(|f| f == TRACKING_FINALIZER))
            .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.kind == "Job" && o.name == key.name))
            .collect();
        self.remove_finalizers(key, &orphans).await
    }
}

/// A pod of `job` from its template: tracked by the finalizer, and in Indexed mode carrying its
/// completion index (annotation, label, `JOB_COMPLETION_INDEX`, hostname `<job>-<index>`).
pub fn pod_for(
    job: &Job,
    namespace: &str,
    name: &str,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    index: Option<i32>,
) -> Pod {
    let generate_name = match index {
        Some(i) => format!("{name}-{i}-"),
        None => format!("{name}-"),
    };
    let mut pod = pod_from_template(template, namespace, &generate_name, controller_ref(job));
    pod.metadata.finalizers.get_or_insert_with(Vec::new).push(TRACKING_FINALIZER.to_string());
    if let Some(i) = index {
        let value = i.to_string();
        pod.metadata.annotations.get_or_insert_with(Default::default).insert(COMPLETION_INDEX.into(), value.clone());
        pod.metadata.labels.get_or_insert_with(Default::default).insert(COMPLETION_INDEX.into(), value.clone());
        if let Some(spec) = pod.spec.as_mut() {
            if spec.hostname.is_none() {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            let containers = spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten());
            for c in containers {
                let env = c.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                    env.push(EnvVar {
                        name: "JOB_COMPLETION_INDEX".into(),
                        value: Some(value.clone()),
                        value_from: None,
                    });
                }
            }
        }
    }
    pod
}
