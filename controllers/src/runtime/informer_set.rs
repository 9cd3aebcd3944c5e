//! The informers every controller shares: one watch per resource for the whole controller manager, so
//! ten controllers interested in pods cost one pod watch and one pod cache.

use std::fmt::Debug;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, PersistentVolumeClaim, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::informer::Informer;

/// Namespace of the node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// One informer per resource the controllers read. Every informer watches all namespaces, except
/// `node_leases` (only `kube-node-lease`).
#[derive(Clone, Default)]
pub struct InformerSet {
    pub pods: Informer<Pod>,
    pub nodes: Informer<Node>,
    pub namespaces: Informer<Namespace>,
    pub services: Informer<Service>,
    pub endpoints: Informer<Endpoints>,
    pub endpoint_slices: Informer<EndpointSlice>,
    pub service_accounts: Informer<ServiceAccount>,
    pub persistent_volume_claims: Informer<PersistentVolumeClaim>,
    pub replica_sets: Informer<ReplicaSet>,
    pub deployments: Informer<Deployment>,
    pub daemon_sets: Informer<DaemonSet>,
    pub stateful_sets: Informer<StatefulSet>,
    pub controller_revisions: Informer<ControllerRevision>,
    pub jobs: Informer<Job>,
    pub cron_jobs: Informer<CronJob>,
    pub pod_disruption_budgets: Informer<PodDisruptionBudget>,
    pub node_leases: Informer<Lease>,
}

impl InformerSet {
    /// Empty informers, fed by `start` (or loaded directly in tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// Every informer's watch, named by resource, to be spawned by the caller (they run until dropped).
    pub fn start(&self, client: &Client) -> Vec<(&'static str, BoxFuture<'static, ()>)> {
        let c = client;
        vec![
            watch("pods", &self.pods, Api::all(c.clone())),
            watch("nodes", &self.nodes, Api::all(c.clone())),
            watch("namespaces", &self.namespaces, Api::all(c.clone())),
            watch("services", &self.services, Api::all(c.clone())),
            watch("endpoints", &self.endpoints, Api::all(c.clone())),
            watch("endpoint_slices", &self.endpoint_slices, Api::all(c.clone())),
            watch("service_accounts", &self.service_accounts, Api::all(c.clone())),
            watch("persistent_volume_claims", &self.persistent_volume_claims, Api::all(c.clone())),
            watch("replica_sets", &self.replica_sets, Api::all(c.clone())),
            watch("deployments", &self.deployments, Api::all(c.clone())),
            watch("daemon_sets", &self.daemon_sets, Api::all(c.clone())),
            watch("stateful_sets", &self.stateful_sets, Api::all(c.clone())),
            watch("controller_revisions", &self.controller_revisions, Api::all(c.clone())),
            watch("jobs", &self.jobs, Api::all(c.clone())),
            watch("cron_jobs", &self.cron_jobs, Api::all(c.clone())),
            watch("pod_disruption_budgets", &self.pod_disruption_budgets, Api::all(c.clone())),
            watch("node_leases", &self.node_leases, Api::namespaced(c.clone(), NODE_LEASE_NAMESPACE)),
        ]
    }

    /// Resolves once every informer has loaded its first full list.
    pub async fn wait_ready(&self) {
        self.pods.wait_ready().await;
        self.nodes.wait_ready().await;
        self.namespaces.wait_ready().await;
        self.services.wait_ready().await;
        self.endpoints.wait_ready().await;
        self.endpoint_slices.wait_ready().await;
        self.service_accounts.wait_ready().await;
        self.persistent_volume_claims.wait_ready().await;
        self.replica_sets.wait_ready().await;
        self.deployments.wait_ready().await;
        self.daemon_sets.wait_ready().await;
        self.stateful_sets.wait_ready().await;
        self.controller_revisions.wait_ready().await;
        self.jobs.wait_ready().await;
        self.cron_jobs.wait_ready().await;
        self.pod_disruption_budgets.wait_ready().await;
        self.node_leases.wait_ready().await;
    }
}

fn watch<K>(name: &'static str, informer: &Informer<K>, api: Api<K>) -> (&'static str, BoxFuture<'static, ()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    (name, Box::pin(informer.clone().run(api)))
}
