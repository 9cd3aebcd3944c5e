//! An informer: one list-and-watch of a resource (kube-runtime's `watcher`, which resumes from the last
//! resourceVersion and re-lists after 410 Gone), an in-memory cache of the objects, and a broadcast of
//! every change (with the previous object) to the controllers that subscribe.
//!
//! Owns the cache consistency: after a re-list, objects that vanished are reported as deleted and
//! changed ones as applied, so subscribers never miss a deletion. Must not decide anything.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

use super::object_key::ObjectKey;

/// Changes a slow subscriber may fall behind by before it is told to resync.
const CHANGE_BUFFER: usize = 16_384;

/// One change of the cache.
#[derive(Debug)]
pub enum Change<K> {
    /// Created (`old` is `None`) or updated.
    Applied {
        old: Option<Arc<K>>,
        new: Arc<K>,
    },
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Applied { old, new } => Self::Applied { old: old.clone(), new: new.clone() },
            Self::Deleted(o) => Self::Deleted(o.clone()),
        }
    }
}

impl<K> Change<K> {
    /// The object as it is now (or was when deleted).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Self::Applied { new, .. } => new,
            Self::Deleted(o) => o,
        }
    }
}

struct Shared<K> {
    objects: RwLock<BTreeMap<ObjectKey, Arc<K>>>,
    changes: broadcast::Sender<Change<K>>,
    ready: watch::Sender<bool>,
}

/// See the module docs. Cheap to clone (shared).
pub struct Informer<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<K> Default for Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An empty, not yet ready informer (fed by `run`, or by `apply` in tests).
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        Self {
            shared: Arc::new(Shared { objects: RwLock::new(BTreeMap::new()), changes, ready: watch::channel(false).0 }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<ObjectKey, Arc<K>>> {
        self.shared.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    /// Every cached object, ordered by namespace and name.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    /// The cached objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let start = ObjectKey::new(namespace, "");
        self.read().range(start..).take_while(|(k, _)| k.namespace == namespace).map(|(_, v)| v.clone()).collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes from now on. A receiver that lags gets `RecvError::Lagged` and should resync from `list`.
    pub fn subscribe(&self) -> broadcast::Receiver<Change<K>> {
        self.shared.changes.subscribe()
    }

    /// Whether the first full list has been loaded.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Resolves once the first full list has been loaded.
    pub async fn wait_ready(&self) {
        let mut rx = self.shared.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Lists and watches `api` into the cache until the returned future is dropped. Watch errors are
    /// retried with kube-runtime's default back-off.
    pub async fn run(self, api: Api<K>) {
        let mut relist: Option<BTreeMap<ObjectKey, Arc<K>>> = None;
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => self.apply(event, &mut relist),
                Err(e) => tracing::debug!(kind = %K::kind(&()), error = %e, "watch failed; retrying"),
            }
        }
    }

    /// Applies one watcher event; `relist` buffers a re-list until it is complete.
    pub fn apply(&self, event: Event<K>, relist: &mut Option<BTreeMap<ObjectKey, Arc<K>>>) {
        match event {
            Event::Init => *relist = Some(BTreeMap::new()),
            Event::InitApply(obj) => {
                relist.get_or_insert_with(BTreeMap::new).insert(ObjectKey::of(&obj), Arc::new(obj));
            }
            Event::InitDone => {
                let fresh = relist.take().unwrap_or_default();
                let mut changes = Vec::new();
                {
                    let mut objects = self.shared.objects.write().unwrap_or_else(|p| p.into_inner());
                    for (key, old) in objects.iter() {
                        if !fresh.contains_key(key) {
                            changes.push(Change::Deleted(old.clone()));
                        }
                    }
                    for (key, new) in &fresh {
                        let old = objects.get(key);
                        if old.map(|o| o.meta().resource_version != new.meta().resource_version).unwrap_or(true) {
                            changes.push(Change::Applied { old: old.cloned(), new: new.clone() });
                        }
                    }
                    *objects = fresh;
                }
                for c in changes {
                    let _ = self.shared.changes.send(c);
                }
                self.shared.ready.send_replace(true);
            }
            Event::Apply(obj) => {
                let key = ObjectKey::of(&obj);
                let new = Arc::new(obj);
                let old = self.shared.objects.write().unwrap_or_else(|p| p.into_inner()).insert(key, new.clone());
                let _ = self.shared.changes.send(Change::Applied { old, new });
            }
            Event::Delete(obj) => {
                let key = ObjectKey::of(&obj);
                let old = self.shared.objects.write().unwrap_or_else(|p| p.into_inner()).remove(&key);
                let _ = self.shared.changes.send(Change::Deleted(old.unwrap_or_else(|| Arc::new(obj))));
            }
        }
    }

    /// Test helper: loads `objects` as a complete list.
    pub fn load(&self, objects: impl IntoIterator<Item = K>) {
        let mut relist = None;
        self.apply(Event::Init, &mut relist);
        for o in objects {
            self.apply(Event::InitApply(o), &mut relist);
        }
        self.apply(Event::InitDone, &mut relist);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(name: &str, rv: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_relist_reports_vanished_objects_as_deleted_and_changed_ones_as_applied() {
        let inf = Informer::<ConfigMap>::new();
        inf.load([cm("a", "1"), cm("b", "2")]);
        assert!(inf.is_ready());
        let mut rx = inf.subscribe();
        inf.load([cm("b", "2"), cm("c", "5")]);
        let mut seen = Vec::new();
        while let Ok(c) = rx.try_recv() {
            let kind = if matches!(c, Change::Deleted(_)) { "deleted" } else { "applied" };
            seen.push(format!("{kind} {}", c.object().metadata.name.as_deref().unwrap_or_default()));
        }
        assert_eq!(seen, ["deleted a", "applied c"]);
        assert_eq!(inf.list_namespace("ns").len(), 2);
        assert!(inf.list_namespace("other").is_empty());
    }

    #[tokio::test]
    async fn updates_carry_the_previous_object() {
        let inf = Informer::<ConfigMap>::new();
        inf.load([cm("a", "1")]);
        let mut rx = inf.subscribe();
        let mut relist = None;
        inf.apply(Event::Apply(cm("a", "2")), &mut relist);
        match rx.try_recv() {
            Ok(Change::Applied { old: Some(old), new }) => {
                assert_eq!(old.metadata.resource_version.as_deref(), Some("1"));
                assert_eq!(new.metadata.resource_version.as_deref(), Some("2"));
            }
            other => panic!("expected an update, got {other:?}"),
        }
        inf.apply(Event::Delete(cm("a", "3")), &mut relist);
        assert!(inf.get(&ObjectKey::new("ns", "a")).is_none());
    }
}
