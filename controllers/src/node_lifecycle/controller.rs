//! The node lifecycle controller's I/O: maps node, Lease and pod changes to node keys, writes the
//! `Unknown` conditions and the managed taints the pure modules decide, marks pods of unreachable
//! nodes not ready and evicts pods whose tolerations ran out, recording Events as upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::Api;
use serde_json::json;
use tokio::task::JoinSet;

use super::eviction;
use super::health::{self, ready_status};
use super::taints::{self, NO_EXECUTE};
use crate::manager::ManagerConfig;
use crate::pods::{is_ready, is_terminal};
use crate::runtime::error::is_status;
use crate::runtime::informer_set::NODE_LEASE_NAMESPACE;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, EventType, Informer, ObjectKey, Reconciler,
    Requeue, WorkQueue,
};

pub const NAME: &str = "nodelifecycle";

/// `(node, taint key, effect)` of a `NoExecute` taint without `timeAdded`.
type TaintId = (String, String, String);

pub struct NodeLifecycleController {
    ctx: Context,
    grace: Duration,
    /// When taints without `timeAdded` were first seen, so their tolerations can run out.
    first_seen: Mutex<HashMap<TaintId, Timestamp>>,
}

/// Starts the controller's change feeds and workers in `tasks`.
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let inf = ctx.informers.clone();
    tasks.spawn(enqueue_changes(&inf.nodes, &queue, |c| vec![ObjectKey::cluster(name_of(c.object().as_ref()))]));
    tasks.spawn(enqueue_changes(&inf.node_leases, &queue, |c| {
        let lease = c.object();
        let ns = lease.metadata.namespace.as_deref().unwrap_or_default();
        if ns == NODE_LEASE_NAMESPACE {
            vec![ObjectKey::cluster(lease.metadata.name.clone().unwrap_or_default())]
        } else {
            Vec::new()
        }
    }));
    let nodes = inf.nodes.clone();
    tasks.spawn(enqueue_changes(&inf.pods, &queue, move |c| nodes_needing_pods(c, &nodes)));
    let controller = Arc::new(NodeLifecycleController::new(ctx.clone(), config.node_monitor_grace_period));
    tasks.spawn(run_workers(controller, queue, config.workers, config.metrics.clone()));
}

fn name_of(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

/// The nodes a pod change matters to: only nodes that are not ready or carry `NoExecute` taints act
/// on their pods, so changes of pods on healthy nodes cost nothing.
fn nodes_needing_pods(change: &Change<Pod>, nodes: &Informer<Node>) -> Vec<ObjectKey> {
    let pods: Vec<&Pod> = match change {
        Change::Applied { old, new } => old.iter().map(|o| o.as_ref()).chain([new.as_ref()]).collect(),
        Change::Deleted(_) => Vec::new(),
    };
    let mut keys: Vec<ObjectKey> = pods
        .into_iter()
        .filter_map(node_of)
        .map(ObjectKey::cluster)
        .filter(|k| {
            nodes.get(k).is_some_and(|n| {
                ready_status(&n) != Some("True")
                    || n.spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .is_some_and(|t| t.iter().any(|t| t.effect == NO_EXECUTE))
            })
        })
        .collect();
    keys.dedup();
    keys
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Reconciler for NodeLifecycleController {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let inf = &self.ctx.informers;
        let Some(cached) = inf.nodes.get(key) else {
            self.lock_first_seen().retain(|(node, _, _), _| node != &key.name);
            return Ok(Requeue::Done);
        };
        let lease = inf.node_leases.get(&ObjectKey::new(NODE_LEASE_NAMESPACE, &key.name));
        let now = Timestamp::now();
        let verdict = health::assess(&cached, lease.as_deref(), now, self.grace);
        let mut node = (*cached).clone();
        if let Some(conditions) = verdict.conditions {
            match self.write_conditions(key, &node, conditions).await? {
                Some(updated) => node = updated,
                None => return Ok(Requeue::Done),
            }
            if verdict.was_ready {
                tracing::info!(node = %key, "node stopped posting status; marking it NotReady");
                self.ctx.recorder.record(
                    &node,
                    EventType::Normal,
                    "NodeNotReady",
                    format!("Node {} status is now: NodeNotReady", key.name),
                );
            }
        }
        if let Some(taints) = taints::reconcile(&node, now) {
            match self.write_taints(key, &node, &taints).await? {
                Some(updated) => node = updated,
                None => return Ok(Requeue::Done),
            }
        }
        let pods: Vec<Arc<Pod>> =
            inf.pods.list().into_iter().filter(|p| node_of(p) == Some(key.name.as_str())).collect();
        if ready_status(&node) == Some("Unknown") {
            self.mark_pods_not_ready(&pods, now).await?;
        }
        let node_taints: Vec<Taint> = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let plan = eviction::plan(&pods, &node_taints, now, |t| self.first_seen(&key.name, t, now));
        self.forget_removed_taints(&key.name, &node_taints);
        self.evict(&plan.evict).await?;
        Ok(earliest(verdict.recheck_after, plan.recheck_after).map_or(Requeue::Done, Requeue::After))
    }
}

impl NodeLifecycleController {
    pub fn new(ctx: Context, grace: Duration) -> Self {
        Self { ctx, grace, first_seen: Mutex::new(HashMap::new()) }
    }

    fn lock_first_seen(&self) -> std::sync::MutexGuard<'_, HashMap<TaintId, Timestamp>> {
        self.first_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn first_seen(&self, node: &str, taint: &Taint, now: Timestamp) -> Timestamp {
        let id = (node.to_string(), taint.key.clone(), taint.effect.clone());
        *self.lock_first_seen().entry(id).or_insert(now)
    }

    fn forget_removed_taints(&self, node: &str, taints: &[Taint]) {
        self.lock_first_seen().retain(|(n, k, e), _| n != node || taints.iter().any(|t| &t.key == k && &t.effect == e));
    }

    /// Writes the node's conditions, guarded by its resourceVersion (a kubelet that comes back to life
    /// meanwhile wins). `None` when the node is gone.
    async fn write_conditions(
        &self,
        key: &ObjectKey,
        node: &Node,
        conditions: Vec<k8s_openapi::api::core::v1::NodeCondition>,
    ) -> Result<Option<Node>, ControllerError> {
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "status": {"conditions": conditions},
        });
        match api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(updated) => Ok(Some(updated)),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(ControllerError::api(format!("marking node {key} status unknown"))(e)),
        }
    }

    async fn write_taints(
        &self,
        key: &ObjectKey,
        node: &Node,
        taints: &[Taint],
    ) -> Result<Option<Node>, ControllerError> {
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        tracing::info!(node = %key, taints = ?taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect::<Vec<_>>(), "updating node taints");
        match api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(updated) => Ok(Some(updated)),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(ControllerError::api(format!("updating taints of node {key}"))(e)),
        }
    }

    /// Sets `Ready=False` on the node's ready pods (upstream `MarkPodsNotReady`): nobody else will,
    /// as the kubelet that would is unreachable.
    async fn mark_pods_not_ready(&self, pods: &[Arc<Pod>], now: Timestamp) -> Result<(), ControllerError> {
        let writes = pods.iter().filter(|p| is_ready(p) && !is_terminal(p)).map(|pod| async move {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let conditions: Vec<PodCondition> = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|mut c| {
                    if c.type_ == "Ready" {
                        c.status = "False".to_string();
                        c.last_transition_time = Some(Time(now));
                    }
                    c
                })
                .collect();
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
            let patch = json!({
                "metadata": {"resourceVersion": pod.metadata.resource_version},
                "status": {"conditions": conditions},
            });
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.ctx.recorder.record(pod.as_ref(), EventType::Warning, "NodeNotReady", "Node is not ready");
                    Ok(())
                }
                Err(e) if is_status(&e, 404) => Ok(()),
                Err(e) => Err(ControllerError::api(format!("marking pod {ns}/{name} not ready"))(e)),
            }
        });
        join_all(writes).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    async fn evict(&self, pods: &[Arc<Pod>]) -> Result<(), ControllerError> {
        let deletes = pods.iter().map(|pod| async move {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
                ..Default::default()
            };
            tracing::info!(pod = %format!("{ns}/{name}"), "evicting pod from a NoExecute-tainted node");
            self.ctx.recorder.record(
                pod.as_ref(),
                EventType::Normal,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {ns}/{name}"),
            );
            match api.delete(&name, &params).await {
                Ok(_) => Ok(()),
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
                Err(e) => Err(ControllerError::api(format!("evicting pod {ns}/{name}"))(e)),
            }
        });
        join_all(deletes).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }
}
