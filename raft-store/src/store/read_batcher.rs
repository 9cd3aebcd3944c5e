//! Coalesces concurrent linearizable-read checks into rounds. A read may use the result of a round
//! only if the round *started* after the read arrived (otherwise a write acknowledged between the
//! round's start and the read's arrival could be missed), so arrivals wait for the next round, and
//! each round serves everyone who arrived before it started. Under load this turns one quorum
//! round-trip per read into one per round, like etcd's read-index batching.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::oneshot;

type Waiter<T, E> = oneshot::Sender<Result<T, E>>;

struct State<T, E> {
    running: bool,
    waiters: Vec<Waiter<T, E>>,
}

pub struct RoundBatcher<T, E> {
    state: Mutex<State<T, E>>,
}

impl<T: Clone + Send + 'static, E: Clone + Send + 'static> Default for RoundBatcher<T, E> {
    fn default() -> Self {
        Self { state: Mutex::new(State { running: false, waiters: Vec::new() }) }
    }
}

impl<T: Clone + Send + 'static, E: Clone + Send + 'static> RoundBatcher<T, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T, E>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the next round. `round` performs one round; it is called by whichever caller finds no
    /// round running, and keeps running rounds while callers keep arriving.
    pub async fn join<F, Fut>(&self, round: F) -> Result<T, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Dropped>,
    {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut st = self.lock();
            st.waiters.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if lead {
            // If this caller is cancelled mid-round (a client hung up), nobody would run rounds for
            // the others any more: the guard then stops leading and fails every waiter, each of which
            // retries and one of which leads anew.
            let mut guard = LeadGuard { batcher: self, finished: false };
            loop {
                let batch = {
                    let mut st = self.lock();
                    if st.waiters.is_empty() {
                        st.running = false;
                        break;
                    }
                    std::mem::take(&mut st.waiters)
                };
                let result = round().await;
                for w in batch {
                    let _ = w.send(result.clone());
                }
            }
            guard.finished = true;
        }
        rx.await.unwrap_or_else(|_| Err(E::from(Dropped)))
    }
}

struct LeadGuard<'a, T, E> {
    batcher: &'a RoundBatcher<T, E>,
    finished: bool,
}

impl<T, E> Drop for LeadGuard<'_, T, E> {
    fn drop(&mut self) {
        if !self.finished {
            let mut st = self.batcher.state.lock().unwrap_or_else(|p| p.into_inner());
            st.running = false;
            // Dropping the senders wakes the waiters with `Dropped`.
            st.waiters.clear();
        }
    }
}

/// The round serving a caller was abandoned (its leader task was cancelled).
#[derive(Debug, Clone, Copy)]
pub struct Dropped;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Gone;
    impl From<Dropped> for Gone {
        fn from(_: Dropped) -> Self {
            Gone
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_share_rounds_and_each_round_starts_after_its_callers() {
        let batcher = Arc::new(RoundBatcher::<usize, Gone>::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let b = batcher.clone();
            let r = rounds.clone();
            tasks.push(tokio::spawn(async move {
                let arrived = r.load(Ordering::SeqCst);
                let got = b
                    .join(|| {
                        let r = r.clone();
                        async move {
                            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                            Ok(n)
                        }
                    })
                    .await
                    .expect("round result");
                assert!(got > arrived, "served by round {got}, which started before arrival ({arrived})");
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let n = rounds.load(Ordering::SeqCst);
        assert!((1..64).contains(&n), "64 concurrent callers shared rounds: {n} rounds");
    }

    #[tokio::test]
    async fn a_cancelled_leader_does_not_strand_the_callers_behind_it() {
        let batcher = Arc::new(RoundBatcher::<usize, Gone>::default());
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let started_tx = std::sync::Mutex::new(Some(started_tx));
        let leader = {
            let b = batcher.clone();
            tokio::spawn(async move {
                b.join(|| {
                    if let Some(tx) = started_tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        let _ = tx.send(());
                    }
                    std::future::pending::<Result<usize, Gone>>()
                })
                .await
            })
        };
        started_rx.await.expect("the first round started");
        let follower = {
            let b = batcher.clone();
            tokio::spawn(async move { b.join(|| async { Ok(7) }).await })
        };
        tokio::task::yield_now().await;
        leader.abort();
        // The follower was waiting for the next round: it is failed (to retry), not stranded.
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), follower).await;
        assert_eq!(first.expect("no hang").expect("task"), Err(Gone));
        let retried = tokio::time::timeout(std::time::Duration::from_secs(5), batcher.join(|| async { Ok(9) })).await;
        assert_eq!(retried.expect("a new caller leads a new round"), Ok(9));
    }
}
