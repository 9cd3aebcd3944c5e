//! The garbage collector's I/O: keeps the ownership graph current from every cached kind's changes,
//! maps changes to the uids that need a look (the object, its dependents when it goes, its former
//! owners when its references change), confirms missing owners with a live read (the cache can lag
//! behind a just-created owner), and carries out the plans with uid preconditions so it never deletes
//! or rewrites an object that was replaced meanwhile.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::task::JoinSet;

use super::graph::{Graph, GraphNode};
use super::kinds::Kind;
use super::plan::{
    owner_state, plan_deleting_owner, plan_dependent, without_finalizer, without_owners, DependentAction, OwnerState,
    Propagation,
};
use crate::manager::ManagerConfig;
use crate::runtime::error::is_status;
use crate::runtime::{
    enqueue_changes, run_workers, Change, Context, ControllerError, Informer, ObjectKey, Reconciler, Requeue, WorkQueue,
};

pub const NAME: &str = "garbagecollector";

/// How often an owner waiting for its dependents is looked at even without a change (a safety net:
/// the dependents' deletions normally bring it back).
const FOREGROUND_RECHECK: Duration = Duration::from_secs(30);

pub struct GarbageCollector {
    ctx: Context,
    graph: Arc<Mutex<Graph>>,
    queue: WorkQueue<ObjectKey>,
}

fn lock(graph: &Mutex<Graph>) -> MutexGuard<'_, Graph> {
    graph.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the graph feeds and workers in `tasks`. Keys are uids (`ObjectKey::cluster(uid)`).
pub fn spawn(ctx: &Context, config: &ManagerConfig, tasks: &mut JoinSet<()>) {
    let queue = WorkQueue::new();
    let graph = Arc::new(Mutex::new(Graph::new()));
    let inf = &ctx.informers;
    macro_rules! feed_all {
        ($($variant:ident => $field:ident),* $(,)?) => {
            $( tasks.spawn(feed(Kind::$variant, &inf.$field, &queue, graph.clone())); )*
        };
    }
    feed_all!(
        Pod => pods,
        Node => nodes,
        Namespace => namespaces,
        Service => services,
        Endpoints => endpoints,
        EndpointSlice => endpoint_slices,
        ServiceAccount => service_accounts,
        PersistentVolumeClaim => persistent_volume_claims,
        ReplicaSet => replica_sets,
        Deployment => deployments,
        DaemonSet => daemon_sets,
        StatefulSet => stateful_sets,
        ControllerRevision => controller_revisions,
        Job => jobs,
        CronJob => cron_jobs,
        PodDisruptionBudget => pod_disruption_budgets,
        Lease => node_leases,
    );
    let gc = Arc::new(GarbageCollector { ctx: ctx.clone(), graph, queue: queue.clone() });
    tasks.spawn(run_workers(gc, queue, config.workers, config.metrics.clone()));
}

fn feed<K>(
    kind: Kind,
    informer: &Informer<K>,
    queue: &WorkQueue<ObjectKey>,
    graph: Arc<Mutex<Graph>>,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    enqueue_changes(informer, queue, move |change| on_change(kind, change, &graph))
}

fn owner_uids(meta: &ObjectMeta) -> Vec<String> {
    meta.owner_references.iter().flatten().map(|r| r.uid.clone()).collect()
}

/// Updates the graph with one change and returns the uids to look at.
fn on_change<K: Resource<DynamicType = ()>>(kind: Kind, change: &Change<K>, graph: &Mutex<Graph>) -> Vec<ObjectKey> {
    let mut g = lock(graph);
    let mut uids: Vec<String> = Vec::new();
    match change {
        Change::Applied { old, new } => {
            let meta = new.meta();
            let Some(uid) = meta.uid.clone() else { return Vec::new() };
            if let Some(old_uid) = old.as_ref().and_then(|o| o.meta().uid.clone()).filter(|o| *o != uid) {
                // Replaced under the same name: the old object's dependents lost their owner.
                if let Some(gone) = g.remove(&old_uid) {
                    uids.extend(gone.owners);
                }
                uids.extend(g.dependents(&old_uid));
            }
            let owners = owner_uids(meta);
            let node = GraphNode { kind, key: ObjectKey::of(new.as_ref()), owners: owners.clone() };
            let before = g.upsert(&uid, node);
            if before != owners {
                // An owner this object stopped referencing may be waiting for it.
                uids.extend(before);
            }
            if !owners.is_empty() || meta.deletion_timestamp.is_some() {
                uids.push(uid);
            }
        }
        Change::Deleted(obj) => {
            let meta = obj.meta();
            let Some(uid) = meta.uid.clone() else { return Vec::new() };
            g.remove(&uid);
            uids.extend(g.dependents(&uid));
            uids.extend(owner_uids(meta));
        }
    }
    uids.sort();
    uids.dedup();
    uids.into_iter().map(ObjectKey::cluster).collect()
}

impl Reconciler for GarbageCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ControllerError> {
        let uid = key.name.as_str();
        let Some(node) = lock(&self.graph).node(uid).cloned() else { return Ok(Requeue::Done) };
        let cached = node.kind.cached_meta(&self.ctx.informers, &node.key).filter(|m| m.uid.as_deref() == Some(uid));
        let Some(meta) = cached else {
            // Gone without a deletion event (a resync after lagging): forget it, recheck its dependents.
            let dependents = {
                let mut g = lock(&self.graph);
                if g.node(uid) == Some(&node) {
                    g.remove(uid);
                }
                g.dependents(uid)
            };
            for d in dependents {
                self.queue.add(ObjectKey::cluster(d));
            }
            return Ok(Requeue::Done);
        };
        if meta.deletion_timestamp.is_some() {
            return self.process_deleting(&node, &meta).await;
        }
        let refs = meta.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            return Ok(Requeue::Done);
        }
        let mut owners = Vec::with_capacity(refs.len());
        for r in refs {
            let state = self.resolve_owner(&node, &r).await?;
            owners.push((r, state));
        }
        let has_dependents = !lock(&self.graph).dependents(uid).is_empty();
        match plan_dependent(&meta, &owners, has_dependents) {
            DependentAction::Nothing => {}
            DependentAction::RemoveOwners(uids) => self.remove_owners(&node, &meta, &uids).await?,
            DependentAction::Delete(propagation) => self.delete(&node, &meta, propagation).await?,
        }
        Ok(Requeue::Done)
    }
}

impl GarbageCollector {
    fn api(&self, kind: Kind, namespace: &str) -> Api<DynamicObject> {
        let resource = kind.api_resource();
        if kind.namespaced() {
            Api::namespaced_with(self.ctx.client.clone(), namespace, &resource)
        } else {
            Api::all_with(self.ctx.client.clone(), &resource)
        }
    }

    /// Whether the owner `r` of `node` exists: from the cache, and when the cache does not have it,
    /// from a live read. Kinds the collector does not know count as existing (never delete on doubt).
    async fn resolve_owner(&self, node: &GraphNode, r: &OwnerReference) -> Result<OwnerState, ControllerError> {
        let Some(kind) = Kind::of_reference(&r.api_version, &r.kind) else {
            tracing::debug!(dependent = %node.key, owner_kind = %r.kind, "owner of an unknown kind; keeping the dependent");
            return Ok(OwnerState::Solid);
        };
        if kind.namespaced() && !node.kind.namespaced() {
            // A cluster-scoped object cannot be owned by a namespaced one; leave it alone.
            return Ok(OwnerState::Solid);
        }
        let key = kind.key(&node.key.namespace, &r.name);
        let cached = kind.cached_meta(&self.ctx.informers, &key);
        let state = owner_state(r, cached.as_ref());
        if state != OwnerState::Dangling {
            return Ok(state);
        }
        let live = self
            .api(kind, &key.namespace)
            .get_opt(&r.name)
            .await
            .map_err(ControllerError::api(format!("reading {} {key}, owner of {}", r.kind, node.key)))?;
        Ok(owner_state(r, live.as_ref().map(|o| &o.metadata)))
    }

    async fn remove_owners(&self, node: &GraphNode, meta: &ObjectMeta, uids: &[String]) -> Result<(), ControllerError> {
        let refs = without_owners(meta, uids);
        let patch =
            json!({"metadata": {"ownerReferences": refs, "uid": meta.uid, "resourceVersion": meta.resource_version}});
        let api = self.api(node.kind, &node.key.namespace);
        match api.patch(&node.key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(kind = ?node.kind, object = %node.key, owners = ?uids, "removed owner references");
                Ok(())
            }
            Err(e) if is_status(&e, 404) || is_status(&e, 422) => Ok(()),
            Err(e) => {
                Err(ControllerError::api(format!("removing owner references from {:?} {}", node.kind, node.key))(e))
            }
        }
    }

    async fn delete(
        &self,
        node: &GraphNode,
        meta: &ObjectMeta,
        propagation: Propagation,
    ) -> Result<(), ControllerError> {
        let params = DeleteParams {
            propagation_policy: Some(match propagation {
                Propagation::Orphan => PropagationPolicy::Orphan,
                Propagation::Background => PropagationPolicy::Background,
                Propagation::Foreground => PropagationPolicy::Foreground,
            }),
            preconditions: Some(Preconditions { uid: meta.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        let api = self.api(node.kind, &node.key.namespace);
        match api.delete(&node.key.name, &params).await {
            Ok(_) => {
                tracing::info!(kind = ?node.kind, object = %node.key, ?propagation, "deleted a dependent whose owners are gone");
                Ok(())
            }
            // Gone already, or replaced by another object of the same name (uid precondition).
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(ControllerError::api(format!("deleting {:?} {}", node.kind, node.key))(e)),
        }
    }

    /// An owner being deleted: orphan its dependents or wait for them, then drop the finalizer.
    async fn process_deleting(&self, node: &GraphNode, meta: &ObjectMeta) -> Result<Requeue, ControllerError> {
        let uid = meta.uid.clone().unwrap_or_default();
        let dependents: Vec<(GraphNode, ObjectMeta)> = {
            let g = lock(&self.graph);
            g.dependents(&uid).iter().filter_map(|d| g.node(d).cloned().map(|n| (d.clone(), n))).collect::<Vec<_>>()
        }
        .into_iter()
        .filter_map(|(d, n)| {
            let m = n.kind.cached_meta(&self.ctx.informers, &n.key).filter(|m| m.uid.as_deref() == Some(d.as_str()))?;
            Some((n, m))
        })
        .collect();
        let metas: Vec<ObjectMeta> = dependents.iter().map(|(_, m)| m.clone()).collect();
        let Some(plan) = plan_deleting_owner(meta, &metas) else { return Ok(Requeue::Done) };
        for &i in &plan.orphan {
            let (n, m) = &dependents[i];
            self.remove_owners(n, m, std::slice::from_ref(&uid)).await?;
        }
        for &i in &plan.delete {
            if let Some(d) = dependents[i].1.uid.clone() {
                self.queue.add(ObjectKey::cluster(d));
            }
        }
        let Some(finalizer) = plan.remove_finalizer else { return Ok(Requeue::After(FOREGROUND_RECHECK)) };
        let rest = without_finalizer(meta, finalizer);
        let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": meta.resource_version}});
        let api = self.api(node.kind, &node.key.namespace);
        match api.patch(&node.key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(kind = ?node.kind, object = %node.key, finalizer, "dependents handled; finalizer removed");
                Ok(Requeue::Done)
            }
            Err(e) if is_status(&e, 404) => Ok(Requeue::Done),
            Err(e) => Err(ControllerError::api(format!(
                "removing finalizer {finalizer} from {:?} {}",
                node.kind, node.key
            ))(e)),
        }
    }
}
