//! ConfigMaps and Secrets that pods on this node reference, each followed by its own watch
//! (`fieldSelector=metadata.name=<name>` in its namespace), shared by the pods that reference it and
//! stopped when none does. This is the kubelet's watch-based strategy: the agent never lists every
//! Secret of the cluster, and a changed object reaches the pods using it within one watch event.
//!
//! Owns the watches and the latest state of each object; decides nothing about pods.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::reference::{ObjectData, ObjectKind, ObjectRef, ObjectState, ObjectsView};

struct Entry {
    state: watch::Receiver<ObjectState>,
    users: HashSet<String>,
    task: JoinHandle<()>,
}

/// The watched objects, shared by all pod workers.
pub struct ObjectCache {
    client: Client,
    entries: Mutex<HashMap<ObjectRef, Entry>>,
}

/// One pod's subscriptions: the state of each object it reads, and a way to wait for a change.
pub struct Subscriptions {
    receivers: Vec<(ObjectRef, watch::Receiver<ObjectState>)>,
}

impl Subscriptions {
    /// The current state of every subscribed object.
    pub fn view(&self) -> ObjectsView {
        self.receivers.iter().map(|(r, rx)| (r.clone(), rx.borrow().clone())).collect()
    }

    /// Waits until no object is [`ObjectState::Pending`] (its first list arrived), at most `limit`.
    /// Returns the refs still pending.
    pub async fn wait_listed(&mut self, limit: Duration) -> Vec<ObjectRef> {
        let all = async {
            for (_, rx) in &mut self.receivers {
                let _ = rx.wait_for(|s| *s != ObjectState::Pending).await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
        self.receivers.iter().filter(|(_, rx)| *rx.borrow() == ObjectState::Pending).map(|(r, _)| r.clone()).collect()
    }

    /// Resolves when any subscribed object changes; never, when there are none.
    pub async fn changed(&mut self) {
        if self.receivers.is_empty() {
            return std::future::pending().await;
        }
        let changes = self.receivers.iter_mut().map(|(_, rx)| Box::pin(rx.changed()));
        let (result, _, _) = futures::future::select_all(changes).await;
        if result.is_err() {
            // The watch was dropped (no user left): nothing more will change.
            std::future::pending::<()>().await;
        }
    }

    /// Marks every current state as seen, so [`Self::changed`] waits for the next change.
    pub fn mark_seen(&mut self) {
        for (_, rx) in &mut self.receivers {
            rx.borrow_and_update();
        }
    }
}

impl ObjectCache {
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(Self { client, entries: Mutex::new(HashMap::new()) })
    }

    /// Declares that pod `uid` now reads exactly `refs`: starts a watch for each object nobody
    /// watched yet and stops the watches no pod needs any more.
    pub fn track(&self, uid: &str, refs: &BTreeSet<ObjectRef>) -> Subscriptions {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|r, e| {
            if !refs.contains(r) {
                e.users.remove(uid);
            }
            let keep = !e.users.is_empty();
            if !keep {
                debug!(object = %r, "no pod reads it any more: stopping its watch");
                e.task.abort();
            }
            keep
        });
        let mut receivers = Vec::with_capacity(refs.len());
        for r in refs {
            let entry = entries.entry(r.clone()).or_insert_with(|| {
                let (tx, rx) = watch::channel(ObjectState::Pending);
                let task = tokio::spawn(follow(self.client.clone(), r.clone(), tx));
                Entry { state: rx, users: HashSet::new(), task }
            });
            entry.users.insert(uid.to_string());
            receivers.push((r.clone(), entry.state.clone()));
        }
        Subscriptions { receivers }
    }

    /// Pod `uid` is gone: it reads nothing any more.
    pub fn release(&self, uid: &str) {
        self.track(uid, &BTreeSet::new());
    }

    /// How many objects are being watched.
    pub fn watched(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for ObjectCache {
    fn drop(&mut self) {
        let entries = self.entries.get_mut().unwrap_or_else(|p| p.into_inner());
        for e in entries.values() {
            e.task.abort();
        }
    }
}

async fn follow(client: Client, r: ObjectRef, tx: watch::Sender<ObjectState>) {
    match r.kind {
        ObjectKind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client, &r.namespace);
            follow_kind(api, &r, tx, ObjectData::from_config_map).await
        }
        ObjectKind::Secret => {
            let api: Api<Secret> = Api::namespaced(client, &r.namespace);
            follow_kind(api, &r, tx, ObjectData::from_secret).await
        }
    }
}

async fn follow_kind<K>(api: Api<K>, r: &ObjectRef, tx: watch::Sender<ObjectState>, convert: fn(&K) -> ObjectData)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={}", r.name));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut listed = false;
    // Only real content changes wake the pods (a new resourceVersion alone does not).
    let set = |state: ObjectState| {
        tx.send_if_modified(|old| {
            let changed = *old != state;
            *old = state;
            changed
        });
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed = false,
            Ok(Event::InitApply(o) | Event::Apply(o)) => {
                listed = true;
                set(ObjectState::Present(Arc::new(convert(&o))));
            }
            Ok(Event::InitDone) if !listed => set(ObjectState::Missing),
            Ok(Event::InitDone) => {}
            Ok(Event::Delete(_)) => set(ObjectState::Missing),
            Err(e) => warn!(object = %r, error = %e, "watching a referenced object failed; retrying"),
        }
    }
}
