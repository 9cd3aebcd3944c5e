//! Noticing that the Raft core stopped on its own: a storage error it cannot go on from (a failed log
//! flush, say) or a panic. openraft then answers every request with an error but leaves the process
//! running, so a replica would look alive to its supervisor while it can never serve again. The
//! server shuts the replica down instead, and the binary exits non-zero so it gets restarted.
//!
//! Owns only the reading of openraft's metrics; must not depend on the servers.

use openraft::error::Fatal;
use openraft::{BasicNode, RaftMetrics};
use tokio::sync::watch;

use crate::types::NodeId;

/// Resolves with the reason once the Raft core has stopped with an error. A normal stop (on
/// shutdown) is not a failure: the future then never resolves.
pub async fn core_failure(mut metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>) -> String {
    loop {
        if let Some(reason) = failure_of(&metrics.borrow_and_update()) {
            return reason;
        }
        if metrics.changed().await.is_err() {
            // The core is gone; its last word is the value left in the channel.
            if let Some(reason) = failure_of(&metrics.borrow()) {
                return reason;
            }
            return std::future::pending().await;
        }
    }
}

fn failure_of(metrics: &RaftMetrics<NodeId, BasicNode>) -> Option<String> {
    match &metrics.running_state {
        Ok(()) | Err(Fatal::Stopped) => None,
        Err(fatal) => Some(fatal.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Waker};

    use super::*;

    fn with_state(state: Result<(), Fatal<NodeId>>) -> RaftMetrics<NodeId, BasicNode> {
        let mut metrics = RaftMetrics::new_initial(1);
        metrics.running_state = state;
        metrics
    }

    #[tokio::test]
    async fn a_panicked_core_is_reported_with_its_reason() {
        let (tx, rx) = watch::channel(RaftMetrics::new_initial(1));
        let watching = tokio::spawn(core_failure(rx));
        tx.send_replace(with_state(Ok(())));
        tx.send_replace(with_state(Err(Fatal::Panicked)));
        assert_eq!(watching.await.expect("watcher"), "panicked");
    }

    #[tokio::test]
    async fn a_failure_sent_just_before_the_core_went_away_is_still_seen() {
        let (tx, rx) = watch::channel(RaftMetrics::new_initial(1));
        tx.send_replace(with_state(Err(Fatal::Panicked)));
        drop(tx);
        assert_eq!(core_failure(rx).await, "panicked");
    }

    #[test]
    fn a_normal_stop_is_not_a_failure() {
        let (tx, rx) = watch::channel(RaftMetrics::new_initial(1));
        tx.send_replace(with_state(Err(Fatal::Stopped)));
        drop(tx);
        // Everything the watcher could wait for has happened: polled once, it must stay pending.
        let mut watching = std::pin::pin!(core_failure(rx));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(watching.as_mut().poll(&mut cx).is_pending(), "a normal stop resolved the watcher");
    }
}
