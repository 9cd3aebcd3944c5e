//! The node's I/O loop: registers the Node, renews its Lease in `kube-node-lease`, probes the runtime
//! and sends the status computed by [`super::status`] when it changed or at least every 5 minutes.
//! Owns no decisions beyond timing; must not touch pods.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use super::pressure::{pressure, Thresholds};
use super::status::{changed, node_object, node_status, NodeFacts};
use crate::runtime::Runtime;

/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Longest time between two status updates even when nothing changed.
pub const STATUS_REFRESH: Duration = Duration::from_secs(300);
const LEASE_DURATION_SECONDS: i32 = 40;

/// Why one heartbeat step failed (logged; the loop retries on its next tick).
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
    #[error("renewing lease {node}: {source}")]
    Lease { node: String, source: kube::Error },
    #[error("updating status of node {node}: {source}")]
    Status { node: String, source: kube::Error },
}

/// Where pressure is read: the filesystem the agent keeps pods on, and the thresholds.
#[derive(Debug, Clone)]
pub struct PressureSource {
    pub fs_path: std::path::PathBuf,
    pub thresholds: Thresholds,
}

/// Drives one node's registration, Lease and status until `shutdown` flips to true.
pub struct Heartbeat {
    pressure: PressureSource,
    client: Client,
    facts: NodeFacts,
    endpoint: String,
    runtime: Option<Runtime>,
    renew_every: Duration,
    registered: bool,
    node_uid: Option<String>,
    last_sent: Option<(NodeStatus, Instant)>,
}

impl Heartbeat {
    pub fn new(
        client: Client,
        facts: NodeFacts,
        endpoint: String,
        renew_every: Duration,
        pressure: PressureSource,
    ) -> Self {
        Self {
            client,
            facts,
            endpoint,
            runtime: None,
            renew_every,
            registered: false,
            node_uid: None,
            last_sent: None,
            pressure,
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.tick().await {
                warn!(node = %self.facts.name, error = %e, "node heartbeat failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.renew_every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn tick(&mut self) -> Result<(), HeartbeatError> {
        self.probe_runtime().await;
        let readings = crate::machine::pressure_readings(&self.pressure.fs_path);
        self.facts.pressure = pressure(&readings, &self.pressure.thresholds);
        if !self.registered {
            self.register().await?;
        }
        self.renew_lease().await?;
        self.update_status().await
    }

    async fn probe_runtime(&mut self) {
        if self.runtime.is_none() {
            match Runtime::connect(&self.endpoint, Duration::from_secs(2)).await {
                Ok(r) => self.runtime = Some(r),
                Err(e) => {
                    self.facts.runtime_not_ready = Some(format!("runtime unreachable: {e}"));
                    return;
                }
            }
        }
        let Some(runtime) = &self.runtime else { return };
        if self.facts.runtime_version.is_empty() {
            if let Ok(v) = runtime.version().await {
                self.facts.runtime_version = format!("{}://{}", v.runtime_name, v.runtime_version);
            }
        }
        self.facts.runtime_not_ready = match runtime.health().await {
            Ok(h) => h.not_ready,
            Err(e) => Some(format!("runtime unreachable: {}", e.runtime_message())),
        };
    }

    async fn register(&mut self) -> Result<(), HeartbeatError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = node_object(&self.facts, Timestamp::now());
        let err = |source| HeartbeatError::Register { node: self.facts.name.clone(), source };
        let created = match nodes.create(&PostParams::default(), &node).await {
            Ok(created) => {
                info!(node = %self.facts.name, "registered node");
                created
            }
            Err(kube::Error::Api(s)) if s.code == 409 => nodes.get(&self.facts.name).await.map_err(err)?,
            Err(e) => return Err(err(e)),
        };
        self.node_uid = created.metadata.uid.clone();
        self.last_sent = created.status.map(|s| (s, Instant::now() - STATUS_REFRESH));
        self.registered = true;
        Ok(())
    }

    async fn renew_lease(&self) -> Result<(), HeartbeatError> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let name = &self.facts.name;
        let err = |source| HeartbeatError::Lease { node: name.clone(), source };
        let now = MicroTime(Timestamp::now());
        let patch = serde_json::json!({"spec": {"holderIdentity": name, "renewTime": now}});
        match leases.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let owner = self.node_uid.as_ref().map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.clone(),
                        uid: uid.clone(),
                        ..Default::default()
                    }]
                });
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(name.clone()), owner_references: owner, ..Default::default() },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                leases.create(&PostParams::default(), &lease).await.map(|_| ()).map_err(err)
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn update_status(&mut self) -> Result<(), HeartbeatError> {
        let old = self.last_sent.as_ref().map(|(s, _)| s);
        let new = node_status(&self.facts, old, Timestamp::now());
        let due = match &self.last_sent {
            None => true,
            Some((old, at)) => changed(old, &new) || at.elapsed() >= STATUS_REFRESH,
        };
        if !due {
            return Ok(());
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({ "status": new });
        match nodes.patch_status(&self.facts.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                info!(node = %self.facts.name, ready = super::status::is_ready(&new), "node status sent");
                self.last_sent = Some((new, Instant::now()));
                Ok(())
            }
            Err(e) => {
                if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                    // Someone deleted the Node: register it again on the next tick.
                    self.registered = false;
                }
                Err(HeartbeatError::Status { node: self.facts.name.clone(), source: e })
            }
        }
    }
}
