//! A de-duplicating work queue of keys (client-go's semantics: a key is queued at most once and never
//! handed to two workers at a time) plus delayed re-adds. Knows nothing about pods.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

struct Inner<K> {
    queue: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
    /// The pending delayed add of each key (only the earliest is kept).
    wakes: HashMap<K, Instant>,
}

/// See the module docs. Cheap to clone (shared).
pub struct WorkQueue<K> {
    inner: Arc<Mutex<Inner<K>>>,
    notify: Arc<Notify>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), notify: self.notify.clone() }
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    pub fn new() -> Self {
        let inner =
            Inner { queue: VecDeque::new(), dirty: HashSet::new(), processing: HashSet::new(), wakes: HashMap::new() };
        Self { inner: Arc::new(Mutex::new(inner)), notify: Arc::new(Notify::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // A panic while holding this lock leaves only plain collections behind, which stay consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, key: K) {
        let mut inner = self.lock();
        if !inner.dirty.insert(key.clone()) {
            return;
        }
        if !inner.processing.contains(&key) {
            inner.queue.push_back(key);
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Adds `key` after `delay`, unless an add of it is already due no later.
    pub fn add_after(&self, key: K, delay: Duration) {
        let at = Instant::now() + delay;
        {
            let mut inner = self.lock();
            match inner.wakes.get(&key) {
                Some(existing) if *existing <= at => return,
                _ => {
                    inner.wakes.insert(key.clone(), at);
                }
            }
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let due = {
                let mut inner = queue.lock();
                if inner.wakes.get(&key) == Some(&at) {
                    inner.wakes.remove(&key);
                    true
                } else {
                    false
                }
            };
            if due {
                queue.add(key);
            }
        });
    }

    /// The next key to work on; call [`WorkQueue::done`] with it afterwards.
    pub async fn next(&self) -> K {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if let Some(key) = inner.queue.pop_front() {
                    inner.dirty.remove(&key);
                    inner.processing.insert(key.clone());
                    let more = !inner.queue.is_empty();
                    drop(inner);
                    if more {
                        // Permits do not accumulate: pass the wake-up on to another idle worker.
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &K) {
        let mut inner = self.lock();
        inner.processing.remove(key);
        if inner.dirty.contains(key) {
            inner.queue.push_back(key.clone());
            drop(inner);
            self.notify.notify_one();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_requeued_after_done_if_added_meanwhile() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.next().await;
        assert_eq!(a, "a");
        q.add("a");
        assert_eq!(q.len(), 1, "a is being processed: not handed out twice");
        assert_eq!(q.next().await, "b");
        q.done(&"b");
        q.done(&a);
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_keep_the_earliest() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(5));
        q.add_after("a", Duration::from_secs(10));
        q.add_after("b", Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(q.next().await, "b");
        assert_eq!(q.next().await, "a");
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(q.is_empty(), "the later add was superseded");
    }
}
