//! The scheduling queue (upstream's `PriorityQueue` without priorities): pods waiting for a placement
//! attempt in arrival order, pods that did not fit parked until something changes, and back-off so a
//! pod that keeps failing is not retried in a hot loop.
//!
//! Parked pods move back when a node is added or changes, or a bound pod goes away
//! ([`SchedulingQueue::move_all_unschedulable`]), each once its back-off (1 s doubling to 10 s) has
//! passed; a pod parked for [`MAX_UNSCHEDULABLE`] is retried anyway (upstream's periodic flush).
//!
//! Pure (time is passed in): must not depend on the store, HTTP or I/O.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Back-off after the first failed attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A parked pod is retried after this long even if nothing changed.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Parked {
    /// When the last attempt failed.
    since: Instant,
    /// Failed attempts so far.
    attempts: u32,
    /// A cluster change happened since: retry once the back-off has passed.
    moved: bool,
}

/// See the module docs. Keys are `namespace/name`.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    active: VecDeque<String>,
    in_active: HashSet<String>,
    parked: HashMap<String, Parked>,
}

/// Back-off after `attempts` failed attempts.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new pod or one whose scheduling-relevant fields changed: attempt it soon, keeping its failure
    /// count for back-off. A pod already waiting keeps its place.
    pub fn add(&mut self, key: &str) {
        match self.parked.get_mut(key) {
            // Retried by `flush` once its back-off has passed; the count stays for the next back-off.
            Some(parked) => parked.moved = true,
            None => self.push_active(key),
        }
    }

    fn push_active(&mut self, key: &str) {
        if self.in_active.insert(key.to_string()) {
            self.active.push_back(key.to_string());
        }
    }

    /// The next pod to attempt.
    pub fn pop(&mut self) -> Option<String> {
        let key = self.active.pop_front()?;
        self.in_active.remove(&key);
        Some(key)
    }

    /// An attempt for `key` failed at `now` (no node fits, or binding failed): park it.
    pub fn park(&mut self, key: &str, now: Instant) {
        let attempts = self.parked.get(key).map_or(0, |p| p.attempts).saturating_add(1);
        self.parked.insert(key.to_string(), Parked { since: now, attempts, moved: false });
    }

    /// Like [`SchedulingQueue::park`], but retry once the back-off has passed without waiting for a
    /// cluster change (the failure was the API's, not the cluster's).
    pub fn park_and_retry(&mut self, key: &str, now: Instant) {
        self.park(key, now);
        if let Some(parked) = self.parked.get_mut(key) {
            parked.moved = true;
        }
    }

    /// Forgets `key` (deleted, bound by someone else, or no longer ours).
    pub fn remove(&mut self, key: &str) {
        self.parked.remove(key);
        if self.in_active.remove(key) {
            self.active.retain(|k| k != key);
        }
    }

    /// A change that may let parked pods fit (a node added or changed, a bound pod gone): every parked
    /// pod is retried once its back-off has passed.
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        for parked in self.parked.values_mut() {
            parked.moved = true;
        }
        self.flush(now);
    }

    /// Moves the parked pods that are due at `now` to the active queue: moved ones whose back-off has
    /// passed, and any parked for [`MAX_UNSCHEDULABLE`].
    pub fn flush(&mut self, now: Instant) {
        let due: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, p)| {
                let waited = now.saturating_duration_since(p.since);
                (p.moved && waited >= backoff(p.attempts)) || waited >= MAX_UNSCHEDULABLE
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(parked) = self.parked.get_mut(&key) {
                // Stays known (for its attempt count) until it is scheduled or removed.
                parked.moved = false;
                parked.since = now;
            }
            self.push_active(&key);
        }
    }

    /// A pod was placed: forget its failures.
    pub fn scheduled(&mut self, key: &str) {
        self.parked.remove(key);
    }

    /// Whether `key` waits in the active queue.
    pub fn is_active(&self, key: &str) -> bool {
        self.in_active.contains(key)
    }

    /// Whether `key` is parked (failed before, not scheduled since).
    pub fn is_parked(&self, key: &str) -> bool {
        self.parked.contains_key(key)
    }

    /// Pods waiting in the active queue.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Pods that failed and are not scheduled yet.
    pub fn parked_len(&self) -> usize {
        self.parked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut SchedulingQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn new_pods_come_out_in_order_once() {
        let mut q = SchedulingQueue::new();
        for k in ["a", "b", "a", "c"] {
            q.add(k);
        }
        assert_eq!(drain(&mut q), ["a", "b", "c"]);
        assert!(q.pop().is_none());
    }

    #[test]
    fn parked_pods_wait_for_a_change_and_their_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add("p");
        assert_eq!(drain(&mut q), ["p"]);
        q.park("p", t0);
        // Nothing changed: not retried, even after the back-off.
        q.flush(t0 + Duration::from_secs(5));
        assert!(drain(&mut q).is_empty());
        // A change within the back-off: retried only once it has passed.
        q.move_all_unschedulable(t0 + Duration::from_millis(500));
        assert!(drain(&mut q).is_empty());
        q.flush(t0 + Duration::from_millis(1000));
        assert_eq!(drain(&mut q), ["p"]);
        // Second failure: 2 s back-off.
        let t1 = t0 + Duration::from_secs(2);
        q.park("p", t1);
        q.move_all_unschedulable(t1 + Duration::from_millis(1500));
        assert!(drain(&mut q).is_empty());
        q.flush(t1 + Duration::from_secs(2));
        assert_eq!(drain(&mut q), ["p"]);
    }

    #[test]
    fn parked_pods_are_retried_after_the_flush_interval() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.park("p", t0);
        q.flush(t0 + MAX_UNSCHEDULABLE - Duration::from_millis(1));
        assert!(drain(&mut q).is_empty());
        q.flush(t0 + MAX_UNSCHEDULABLE);
        assert_eq!(drain(&mut q), ["p"]);
    }

    #[test]
    fn an_update_of_a_parked_pod_respects_its_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.park("p", t0);
        q.add("p");
        assert!(drain(&mut q).is_empty(), "no hot loop on updates");
        q.flush(t0 + INITIAL_BACKOFF);
        assert_eq!(drain(&mut q), ["p"]);
        q.scheduled("p");
        assert!(!q.is_parked("p"));
    }

    #[test]
    fn removed_pods_leave_every_queue() {
        let mut q = SchedulingQueue::new();
        q.add("a");
        q.add("b");
        q.park("c", Instant::now());
        q.remove("a");
        q.remove("c");
        assert_eq!(drain(&mut q), ["b"]);
        assert_eq!(q.parked_len(), 0);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
