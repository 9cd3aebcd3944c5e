//! The cache of one resource type on this replica: current objects by key, the recent events, and a
//! broadcast of new events. One store watch feeds it; readers take consistent snapshots under a lock
//! that the feeder also holds while it publishes, so a snapshot plus its subscription never has a gap
//! or a duplicate.
//!
//! Must not depend on HTTP; selector and output policy belong to the callers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use raft_store::mvcc::model::{Event, EventKind, KeyRange};
use raft_store::watch::watcher::{WatchBatch, WatchSpec};
use raft_store::Store;
use tokio::sync::{broadcast, watch};

use super::cached_object::{CachedEvent, CachedObject, EventType};
use crate::api::resources::ResourceDef;
use crate::api::status::ApiError;
use crate::api::storage::{ListRead, ObjectStore};

/// Events kept for watchers that resume from a recent resourceVersion.
const HISTORY_EVENTS: usize = 10_000;
/// Events a watcher may fall behind before its watch is ended (it then resumes from its last
/// resourceVersion, usually out of the history).
const BROADCAST_CAPACITY: usize = 8192;

struct CacheState {
    objects: BTreeMap<String, Arc<CachedObject>>,
    /// Every change up to this revision is applied.
    revision: i64,
    history: VecDeque<Arc<CachedEvent>>,
    /// `history` holds every event with a revision above this one.
    history_floor: i64,
    events: broadcast::Sender<Arc<CachedEvent>>,
}

/// A consistent view plus the events after it.
pub struct CacheSubscription {
    /// The revision the view is current at.
    pub revision: i64,
    /// Objects (for snapshots) or past events (for resumes), in order.
    pub objects: Vec<Arc<CachedObject>>,
    pub history: Vec<Arc<CachedEvent>>,
    pub events: broadcast::Receiver<Arc<CachedEvent>>,
}

pub struct ResourceCache {
    def: &'static ResourceDef,
    state: RwLock<CacheState>,
    revision: watch::Sender<i64>,
}

impl ResourceCache {
    /// Lists the resource from this replica's store and starts following it.
    pub async fn start(def: &'static ResourceDef, objects: &ObjectStore) -> Result<Arc<Self>, ApiError> {
        let (state, revision) = Self::load(def, objects).await?;
        let cache = Arc::new(Self { def, state: RwLock::new(state), revision: watch::channel(revision).0 });
        let feeder = Arc::downgrade(&cache);
        let store = objects.store().clone();
        tokio::spawn(async move { feed(feeder, store, def, revision).await });
        Ok(cache)
    }

    async fn load(def: &'static ResourceDef, objects: &ObjectStore) -> Result<(CacheState, i64), ApiError> {
        // Build the map while the chunks stream by (the filter keeps nothing), so a large resource is
        // never held twice, as parsed objects and as cached ones.
        let mut map = BTreeMap::new();
        let mut failed = None;
        let read = ListRead { serializable: true, ..Default::default() };
        let page = objects
            .list(def, None, &read, |obj| {
                if failed.is_none() {
                    if let Err(e) = cache_entry(def, obj).map(|o| map.insert(o.key.clone(), Arc::new(o))) {
                        failed = Some(e);
                    }
                }
                false
            })
            .await?;
        if let Some(e) = failed {
            return Err(e);
        }
        let state = CacheState {
            objects: map,
            revision: page.revision,
            history: VecDeque::new(),
            history_floor: page.revision,
            events: broadcast::channel(BROADCAST_CAPACITY).0,
        };
        Ok((state, page.revision))
    }

    fn read(&self) -> RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn def(&self) -> &'static ResourceDef {
        self.def
    }

    /// The revision the cache is current at.
    pub fn revision(&self) -> i64 {
        self.read().revision
    }

    /// Waits until the cache has applied `revision`; a 504 after `timeout`, as upstream answers a
    /// resourceVersion it cannot reach.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> Result<(), ApiError> {
        let mut rx = self.revision.subscribe();
        let reached = tokio::time::timeout(timeout, async { rx.wait_for(|r| *r >= revision).await.map(|_| ()) }).await;
        match reached {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ApiError::unavailable(format!("the {} cache stopped", self.def.qualified()))),
            Err(_) => Err(ApiError::timeout(format!(
                "Too large resource version: {revision}, current resource version: {}",
                self.revision()
            ))),
        }
    }

    fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.def.namespaced => self.def.namespace_prefix(ns),
            _ => self.def.key_prefix(),
        }
    }

    /// The object under `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.read().objects.get(key).cloned()
    }

    /// Current objects (in `namespace`, or all) in key order, and the revision they are current at.
    pub fn list(&self, namespace: Option<&str>) -> (Vec<Arc<CachedObject>>, i64) {
        let prefix = self.prefix(namespace);
        let st = self.read();
        let items = st.objects.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix));
        (items.map(|(_, v)| v.clone()).collect(), st.revision)
    }

    /// Current objects plus a subscription to every later event.
    pub fn snapshot_and_subscribe(&self, namespace: Option<&str>) -> CacheSubscription {
        let prefix = self.prefix(namespace);
        let st = self.read();
        let objects =
            st.objects.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(_, v)| v.clone());
        CacheSubscription {
            revision: st.revision,
            objects: objects.collect(),
            history: Vec::new(),
            events: st.events.subscribe(),
        }
    }

    /// Events from `start_revision` on (past ones from the history, later ones through the
    /// subscription), or `None` when the history no longer reaches back that far.
    pub fn subscribe_from(&self, start_revision: i64) -> Option<CacheSubscription> {
        let st = self.read();
        if start_revision <= st.history_floor {
            return None;
        }
        let skip = st.history.partition_point(|e| e.revision < start_revision);
        Some(CacheSubscription {
            revision: st.revision,
            objects: Vec::new(),
            history: st.history.iter().skip(skip).cloned().collect(),
            events: st.events.subscribe(),
        })
    }

    /// Applies one batch from the store watch and publishes its events.
    fn apply(&self, batch: WatchBatch) -> Result<(), ApiError> {
        // Serialize outside the lock (only this feeder writes, so what it reads stays current); a
        // batch may change one key several times, hence the overlay.
        let mut overlay: HashMap<String, Option<Arc<CachedObject>>> = HashMap::new();
        let mut events = Vec::with_capacity(batch.events.len());
        for event in batch.events {
            let key = String::from_utf8_lossy(&event.kv.key).into_owned();
            let prev = match overlay.get(&key) {
                Some(p) => p.clone(),
                None => self.get(&key),
            };
            let cached = Arc::new(self.event(&key, prev, event)?);
            let now = (cached.event_type != EventType::Deleted).then(|| cached.object.clone());
            overlay.insert(key, now);
            events.push(cached);
        }
        let mut st = self.write();
        for cached in events {
            match cached.event_type {
                EventType::Deleted => st.objects.remove(&cached.object.key),
                _ => st.objects.insert(cached.object.key.clone(), cached.object.clone()),
            };
            st.history.push_back(cached.clone());
            if st.history.len() > HISTORY_EVENTS {
                if let Some(old) = st.history.pop_front() {
                    st.history_floor = old.revision;
                }
            }
            let _ = st.events.send(cached);
        }
        st.revision = st.revision.max(batch.revision);
        let revision = st.revision;
        drop(st);
        self.revision.send_replace(revision);
        Ok(())
    }

    fn event(&self, key: &str, prev: Option<Arc<CachedObject>>, event: Event) -> Result<CachedEvent, ApiError> {
        let revision = event.kv.mod_revision;
        match event.kind {
            EventKind::Put => {
                let object = CachedObject::from_stored(self.def, &event.kv.key, revision, &event.kv.value)?;
                let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
                Ok(CachedEvent::new(revision, kind, Arc::new(object), prev))
            }
            EventKind::Delete => {
                let last = match (&prev, &event.prev_kv) {
                    (Some(p), _) => p.at_revision(self.def, revision)?,
                    (None, Some(p)) => CachedObject::from_stored(self.def, &p.key, revision, &p.value)?,
                    (None, None) => return Err(ApiError::internal(format!("deletion of unknown {key}"))),
                };
                Ok(CachedEvent::new(revision, EventType::Deleted, Arc::new(last), prev))
            }
        }
    }

    /// Replaces the whole state after the store watch could not continue gap-free (a snapshot was
    /// installed or history was compacted under it). Current subscribers are ended.
    fn reload(&self, state: CacheState, revision: i64) {
        *self.write() = state;
        self.revision.send_replace(revision);
    }
}

/// The cached form of a listed object (which carries its resourceVersion).
fn cache_entry(def: &ResourceDef, obj: &serde_json::Value) -> Result<CachedObject, ApiError> {
    let meta = |field| crate::api::objects::meta_str(obj, field);
    let namespace = Some(meta("namespace")).filter(|n| !n.is_empty());
    let key = def.key(namespace, meta("name"));
    let revision = crate::api::objects::resource_version(obj)?.unwrap_or(0);
    CachedObject::new(def, key, revision, obj.clone())
}

/// Follows the store from `revision` until the cache is dropped or the store closes.
async fn feed(cache: std::sync::Weak<ResourceCache>, store: Store, def: &'static ResourceDef, mut revision: i64) {
    let closed = store.closed();
    tokio::pin!(closed);
    let objects = ObjectStore::new(store.clone());
    'follow: loop {
        let mut watcher = store
            .watch(WatchSpec {
                range: KeyRange::prefix(def.key_prefix().into_bytes()),
                start_revision: revision + 1,
                prev_kv: true,
                filter_put: false,
                filter_delete: false,
            })
            .with_empty_batches();
        loop {
            let batch = tokio::select! {
                _ = &mut closed => return,
                b = watcher.next() => b,
            };
            let Some(cache) = cache.upgrade() else { return };
            let failure = match batch {
                Ok(batch) => match cache.apply(batch) {
                    Ok(()) => continue,
                    Err(e) => e.message,
                },
                Err(raft_store::StoreError::ShuttingDown) => return,
                Err(e) => e.to_string(),
            };
            tracing::warn!(resource = %def.qualified(), error = %failure, "watch cache lost its feed; reloading");
            loop {
                match ResourceCache::load(def, &objects).await {
                    Ok((state, rev)) => {
                        cache.reload(state, rev);
                        revision = rev;
                        continue 'follow;
                    }
                    Err(e) => {
                        tracing::warn!(resource = %def.qualified(), error = %e.message, "watch cache reload failed");
                        tokio::select! {
                            _ = &mut closed => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        }
    }
}
