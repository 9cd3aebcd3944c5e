//! A de-duplicating work queue with client-go's semantics: a key waits in the queue at most once; a key
//! added while a worker processes it is queued again only when that worker is done, so no two workers
//! ever reconcile the same key at once; failed keys come back after an exponential per-key back-off.
//!
//! Must not depend on the API client: it only moves keys.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// First retry delay after a failure; doubles per consecutive failure of the same key.
pub const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

struct State<T> {
    queue: VecDeque<T>,
    /// Keys waiting: in `queue`, or re-added while processing (queued again by `done`).
    waiting: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    shut_down: bool,
}

/// See the module docs. Cheap to clone (shared).
pub struct WorkQueue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        Self { state: self.state.clone(), notify: self.notify.clone() }
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                waiting: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shut_down: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` unless it is already waiting.
    pub fn add(&self, item: T) {
        let mut s = self.lock();
        if s.shut_down || !s.waiting.insert(item.clone()) {
            return;
        }
        if !s.processing.contains(&item) {
            s.queue.push_back(item);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `item` after `delay`.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(item);
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(item);
        });
    }

    /// Queues `item` after its back-off, which doubles with each call until `forget`.
    pub fn add_rate_limited(&self, item: T) {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(item.clone()).or_insert(0);
            *n += 1;
            backoff(*n)
        };
        self.add_after(item, delay);
    }

    /// Resets `item`'s back-off (after a successful reconcile).
    pub fn forget(&self, item: &T) {
        self.lock().failures.remove(item);
    }

    /// Consecutive failures recorded for `item`.
    pub fn failures(&self, item: &T) -> u32 {
        self.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// The next key to process, marked as processing; `None` once shut down.
    pub async fn next(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if s.shut_down {
                    return None;
                }
                if let Some(item) = s.queue.pop_front() {
                    s.waiting.remove(&item);
                    s.processing.insert(item.clone());
                    if !s.queue.is_empty() {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return Some(item);
                }
            }
            notified.await;
        }
    }

    /// Marks `item` processed; if it was added meanwhile it is queued again now.
    pub fn done(&self, item: &T) {
        let mut s = self.lock();
        s.processing.remove(item);
        if s.waiting.contains(item) {
            s.queue.push_back(item.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Keys waiting to be processed.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys: every `next` returns `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

/// The delay before retry number `failures` (1-based).
pub fn backoff(failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_deduplicated_while_waiting() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_processing_waits_until_done() {
        let q = WorkQueue::new();
        q.add("a");
        let got = q.next().await;
        assert_eq!(got, Some("a"));
        q.add("a");
        q.add("a");
        assert!(q.is_empty(), "a key being processed must not be handed to a second worker");
        q.done(&"a");
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, Some("a"));
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn shut_down_releases_waiting_workers() {
        let q: WorkQueue<&str> = WorkQueue::new();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiter.await.ok().flatten(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_until_forgotten() {
        assert_eq!(backoff(1), BACKOFF_BASE);
        assert_eq!(backoff(3), BACKOFF_BASE * 4);
        assert_eq!(backoff(40), BACKOFF_MAX);
        let q = WorkQueue::new();
        q.add_rate_limited("a");
        q.add_rate_limited("a");
        assert_eq!(q.failures(&"a"), 2);
        tokio::time::sleep(BACKOFF_BASE * 2 + Duration::from_millis(1)).await;
        assert_eq!(q.next().await, Some("a"));
        q.forget(&"a");
        assert_eq!(q.failures(&"a"), 0);
    }
}
