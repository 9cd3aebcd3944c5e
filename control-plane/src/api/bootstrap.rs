//! Objects every cluster has from the start: the `default`, `kube-system`, `kube-public` and
//! `kube-node-lease` namespaces. Every replica tries to create them; the store's create-if-absent
//! makes that safe when several do at once.

use std::time::Duration;

use serde_json::json;

use super::admission;
use super::objects::SystemFields;
use super::resources;
use super::status::ApiError;
use super::storage::ObjectStore;

pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates whatever bootstrap objects are missing, retrying while the store has no leader.
pub async fn ensure_bootstrap_objects(objects: &ObjectStore) {
    let Some(namespaces) = resources::find("", "v1", "namespaces") else { return };
    for ns in SYSTEM_NAMESPACES {
        loop {
            let mut obj = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } });
            let result = match admission::admit_new(namespaces, &mut obj, &SystemFields::generate()) {
                Ok(_) => objects.create(namespaces, None, ns, obj).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => break,
                Err(ApiError { code: 409, .. }) => break,
                Err(e) => {
                    tracing::debug!(namespace = ns, error = %e.message, "bootstrap namespace not created yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    tracing::info!("bootstrap namespaces present");
}
