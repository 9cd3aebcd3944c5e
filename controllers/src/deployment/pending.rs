//! Writes of a Deployment's sync that the informers have not shown yet. A sync planned from a cache
//! that misses its own last writes would repeat them from stale counts (scale the same ReplicaSet down
//! twice, create the new one again), so a Deployment waits until the cache shows every object it wrote
//! changed. Entries expire, as upstream's expectations do, so a lost watch event cannot wedge it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::runtime::expectations::EXPECTATION_TIMEOUT;
use crate::runtime::ObjectKey;

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Written {
    ReplicaSet,
    Deployment,
}

#[derive(Debug)]
struct Entry {
    /// (kind, object, resourceVersion before the write; `None` for a create).
    writes: Vec<(Written, ObjectKey, Option<String>)>,
    since: Instant,
}

/// Pending writes per Deployment. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct PendingWrites {
    inner: Arc<Mutex<HashMap<ObjectKey, Entry>>>,
}

impl PendingWrites {
    /// Records that `owner`'s sync wrote `object`, whose resourceVersion was `before` (`None`: created).
    pub fn expect(&self, owner: &ObjectKey, kind: Written, object: ObjectKey, before: Option<String>) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(owner.clone()).or_insert_with(|| Entry { writes: Vec::new(), since: Instant::now() });
        entry.writes.push((kind, object, before));
    }

    /// Whether the cache shows all of `owner`'s writes; `cached(kind, key)` returns the cached
    /// resourceVersion (`None` when the object is not cached). Seen or expired entries are dropped.
    pub fn satisfied(&self, owner: &ObjectKey, cached: impl Fn(Written, &ObjectKey) -> Option<Option<String>>) -> bool {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = map.get_mut(owner) else { return true };
        entry.writes.retain(|(kind, key, before)| match (before, cached(*kind, key)) {
            (None, seen) => seen.is_none(),
            (Some(_), None) => false,
            (Some(before), Some(now)) => now.as_ref() == Some(before),
        });
        if entry.writes.is_empty() {
            map.remove(owner);
            return true;
        }
        if entry.since.elapsed() >= EXPECTATION_TIMEOUT {
            tracing::warn!(deployment = %owner, writes = entry.writes.len(), "writes never observed; resyncing");
            map.remove(owner);
            return true;
        }
        false
    }

    pub fn forget(&self, owner: &ObjectKey) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).remove(owner);
    }
}
