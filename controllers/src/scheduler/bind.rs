//! The scheduler's API writes: binding a pod through the `binding` subresource, and reporting a pod that
//! fits nowhere (`PodScheduled=False`, reason `Unschedulable`, the `FailedScheduling` message) through the
//! status subresource. Events are the driver's.
//!
//! Owns only the request shapes and error context; must not decide anything.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::changes::scheduled_condition;
use super::snapshot::pod_key;

/// Failures of the scheduler's API writes, naming the pod (and node).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("binding pod {pod} to node {node} failed: {source}")]
    Bind {
        pod: String,
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("reporting pod {pod} unschedulable failed")]
    Status {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

impl SchedulerError {
    /// The API status code of the failure, if the API answered.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Bind { source: kube::Error::Api(status), .. }
            | Self::Status { source: kube::Error::Api(status), .. } => Some(status.code),
            _ => None,
        }
    }
}

fn pods(client: &Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"))
}

/// `POST pods/<name>/binding` assigning `pod` to `node`. The binding carries the pod's uid, so a pod
/// deleted and recreated under the same name meanwhile is not bound by mistake.
pub async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<(), SchedulerError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Node".to_string()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    pods(client, pod)
        .create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding)
        .await
        .map(drop)
        .map_err(|source| SchedulerError::Bind { pod: pod_key(pod), node: node.to_string(), source })
}

/// Sets the pod's `PodScheduled` condition to `False`/`Unschedulable` with `message`, keeping its other
/// conditions (a merge patch replaces the whole list). The transition time stays if it was already False.
pub async fn report_unschedulable(client: &Client, pod: &Pod, message: &str) -> Result<(), SchedulerError> {
    let previous = scheduled_condition(pod);
    let transition = previous
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(Timestamp::now()));
    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "PodScheduled")
        .collect();
    conditions.push(PodCondition {
        type_: "PodScheduled".to_string(),
        status: "False".to_string(),
        reason: Some("Unschedulable".to_string()),
        message: Some(message.to_string()),
        last_transition_time: Some(transition),
        ..Default::default()
    });
    let patch = json!({ "status": { "conditions": conditions } });
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    pods(client, pod)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|source| SchedulerError::Status { pod: pod_key(pod), source })
}
