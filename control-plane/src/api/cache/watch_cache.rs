//! All resource caches of one replica, each started on first use and kept for the replica's life.
//!
//! Must not depend on HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::resource_cache::ResourceCache;
use crate::api::resources::ResourceDef;
use crate::api::status::ApiError;
use crate::api::storage::ObjectStore;

type Slot = Arc<OnceCell<Arc<ResourceCache>>>;

#[derive(Default)]
pub struct WatchCache {
    caches: Mutex<HashMap<String, Slot>>,
}

impl WatchCache {
    /// The cache of `def`, listing the resource from the store the first time.
    pub async fn resource(
        &self,
        def: &'static ResourceDef,
        objects: &ObjectStore,
    ) -> Result<Arc<ResourceCache>, ApiError> {
        let slot = {
            let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
            caches.entry(def.key_prefix()).or_default().clone()
        };
        // A failed start leaves the cell empty, so the next request tries again.
        slot.get_or_try_init(|| ResourceCache::start(def, objects)).await.cloned()
    }
}
