//! Simulated nodes for `sched-bench`: registers Ready nodes with capacity and their Leases, renews the
//! Leases like kubelets do (so a node lifecycle controller keeps them Ready), and removes them again.
//!
//! Owns no scheduling knowledge; speaks only the REST API through [`Connector`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;
use tokio::task::JoinSet;

use super::objects::{self, NodeShape, LEASE_NAMESPACE};
use crate::api::client::{ApiConnection, ClientError, Connector};

/// Failures while registering nodes.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error("registering node {node} failed")]
    Register {
        node: String,
        #[source]
        source: ClientError,
    },
    #[error("node {node} answered with an unreadable object: {reason}")]
    Decode { node: String, reason: String },
}

fn lease_path(name: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{name}")
}

fn json(body: &[u8], node: &str) -> Result<Value, NodesError> {
    serde_json::from_slice(body).map_err(|e| NodesError::Decode { node: node.to_string(), reason: e.to_string() })
}

fn is_conflict(e: &ClientError) -> bool {
    e.status() == Some(StatusCode::CONFLICT)
}

/// Creates one node (and its Lease), making sure it reports Ready even if the API dropped the status
/// on create. An existing node is reused.
async fn register_one(conn: &mut ApiConnection, name: &str, shape: &NodeShape) -> Result<(), NodesError> {
    let err = |source| NodesError::Register { node: name.to_string(), source };
    let body = objects::node(name, shape);
    let created = match conn.send(Method::POST, "/api/v1/nodes", Bytes::from(body.to_string())).await {
        Ok(reply) => json(&reply, name)?,
        Err(e) if is_conflict(&e) => conn.get_json(&format!("/api/v1/nodes/{name}")).await.map_err(err)?,
        Err(e) => return Err(err(e)),
    };
    if !objects::is_ready(&created) {
        let mut update = created.clone();
        update["status"] = body["status"].clone();
        let path = format!("/api/v1/nodes/{name}/status");
        conn.send(Method::PUT, &path, Bytes::from(update.to_string())).await.map_err(err)?;
    }
    let lease = objects::lease(name);
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases");
    match conn.send(Method::POST, &path, Bytes::from(lease.to_string())).await {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Registers `names` with `clients` concurrent connections.
pub async fn register(
    connector: &Arc<Connector>,
    names: &[String],
    shape: &NodeShape,
    clients: usize,
) -> Result<(), NodesError> {
    let next = Arc::new(AtomicUsize::new(0));
    let names: Arc<[String]> = names.into();
    let mut tasks = JoinSet::new();
    for client in 0..clients.max(1) {
        let (mut conn, next, names, shape) = (connector.connection(client), next.clone(), names.clone(), shape.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { return Ok(()) };
                register_one(&mut conn, name, &shape).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            return Err(e);
        }
    }
    Ok(())
}

/// Renews every node's Lease each `interval` until the returned task is aborted. Failures are logged
/// and retried on the next round.
pub fn renew_leases(connector: Arc<Connector>, names: Vec<String>, interval: Duration, clients: usize) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let clients = clients.max(1);
    for client in 0..clients {
        let mine: Vec<String> = names.iter().skip(client).step_by(clients).cloned().collect();
        let mut conn = connector.connection(client);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                for name in &mine {
                    if let Err(e) = renew_one(&mut conn, name).await {
                        eprintln!("warning: renewing the lease of {name} failed: {e}");
                    }
                }
            }
        });
    }
    tasks
}

async fn renew_one(conn: &mut ApiConnection, name: &str) -> Result<(), ClientError> {
    let mut lease = conn.get_json(&lease_path(name)).await?;
    lease["spec"]["renewTime"] = objects::lease(name)["spec"]["renewTime"].clone();
    conn.send(Method::PUT, &lease_path(name), Bytes::from(lease.to_string())).await.map(drop)
}

/// Deletes the nodes and their Leases (best effort).
pub async fn remove(connector: &Arc<Connector>, names: &[String], clients: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let names: Arc<[String]> = names.into();
    let mut tasks = JoinSet::new();
    for client in 0..clients.max(1) {
        let (mut conn, next, names) = (connector.connection(client), next.clone(), names.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { return };
                for path in [format!("/api/v1/nodes/{name}"), lease_path(name)] {
                    if let Err(e) = conn.send(Method::DELETE, &path, Bytes::new()).await {
                        if e.status() != Some(StatusCode::NOT_FOUND) {
                            eprintln!("warning: DELETE {path} failed: {e}");
                        }
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
