//! Writes a controller has made that its informers have not shown yet (upstream's
//! `ControllerExpectations`). Until they show up, a reconcile must not act on the stale count, or it
//! would create the same replica twice. Expectations are checked against the cache itself, so they
//! need no event hooks, and expire so a lost write cannot wedge a controller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::object_key::ObjectKey;

/// How long unseen writes hold a controller back before it trusts the cache again.
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Pending {
    /// Objects created, not yet in the cache.
    creates: Vec<ObjectKey>,
    /// Objects deleted (by uid), still in the cache without a deletion timestamp.
    deletes: Vec<(ObjectKey, String)>,
    since: Option<Instant>,
}

/// Pending writes per owner key. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    pending: Arc<Mutex<HashMap<ObjectKey, Pending>>>,
}

impl Expectations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `owner`'s reconcile created `child`.
    pub fn expect_create(&self, owner: &ObjectKey, child: ObjectKey) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let e = p.entry(owner.clone()).or_default();
        e.since.get_or_insert_with(Instant::now);
        e.creates.push(child);
    }

    /// Records that `owner`'s reconcile deleted `child` (with uid `uid`).
    pub fn expect_delete(&self, owner: &ObjectKey, child: ObjectKey, uid: String) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let e = p.entry(owner.clone()).or_default();
        e.since.get_or_insert_with(Instant::now);
        e.deletes.push((child, uid));
    }

    /// Whether every pending write of `owner` is visible through `observed(child)`, which returns the
    /// cached child's `(uid, terminating)` if cached. Satisfied or expired expectations are cleared.
    pub fn satisfied(&self, owner: &ObjectKey, observed: impl Fn(&ObjectKey) -> Option<(String, bool)>) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = p.get_mut(owner) else { return true };
        e.creates.retain(|c| observed(c).is_none());
        e.deletes.retain(|(c, uid)| matches!(observed(c), Some((u, false)) if &u == uid));
        let expired = e.since.is_some_and(|s| s.elapsed() >= EXPECTATION_TIMEOUT);
        if expired && !(e.creates.is_empty() && e.deletes.is_empty()) {
            tracing::warn!(owner = %owner, creates = e.creates.len(), deletes = e.deletes.len(), "writes never observed; resyncing");
        }
        if expired || (e.creates.is_empty() && e.deletes.is_empty()) {
            p.remove(owner);
            return true;
        }
        false
    }

    /// Forgets `owner` (deleted).
    pub fn forget(&self, owner: &ObjectKey) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_hold_until_cached_and_deletes_until_gone_or_terminating() {
        let ex = Expectations::new();
        let owner = ObjectKey::new("ns", "rs");
        let a = ObjectKey::new("ns", "a");
        let b = ObjectKey::new("ns", "b");
        ex.expect_create(&owner, a.clone());
        ex.expect_delete(&owner, b.clone(), "uid-b".into());
        let live_b = |k: &ObjectKey| (k == &b).then(|| ("uid-b".to_string(), false));
        assert!(!ex.satisfied(&owner, live_b), "a is not cached yet and b still lives");
        assert!(!ex.satisfied(&owner, |k| if k == &a { Some(("x".into(), false)) } else { live_b(k) }));
        assert!(ex.satisfied(&owner, |k| if k == &a {
            Some(("x".into(), false))
        } else {
            Some(("uid-b".into(), true))
        }));
        assert!(ex.satisfied(&ObjectKey::new("ns", "other"), |_| None));
    }
}
