//! What only the leader does: serve forwarded requests, expire leases, compact history on schedule,
//! and make sure every member's client URLs are recorded.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};

use super::handle::Store;
use crate::error::RequestError;
use crate::mvcc::reader::{decode, ReadView};
use crate::network::forward::{ForwardError, ForwardRequest, ForwardResponse, ForwardResult};
use crate::storage::db::CF_SM_META;
use crate::storage::state_machine::META_CLIENT_URLS;
use crate::types::{ClientUrls, Command, NodeId};

impl Store {
    /// Serves a request another replica forwarded (or this one routed to itself as leader).
    pub(crate) async fn handle_forward(&self, req: ForwardRequest) -> ForwardResult {
        let not_leader = || ForwardError::NotLeader { node_id: self.node_id() };
        match req {
            ForwardRequest::Write(cmd) => self.propose_local(cmd).await.map(ForwardResponse::Write),
            ForwardRequest::ReadIndex => match self.inner.raft.get_read_log_id().await {
                Ok((read_log_id, _)) => {
                    Ok(ForwardResponse::ReadIndex { index: read_log_id.map(|l| l.index).unwrap_or(0) })
                }
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(not_leader()),
                Err(e) => Err(ForwardError::Other(e.to_string())),
            },
            ForwardRequest::LeaseKeepAlive { id } => {
                if !self.is_leader() {
                    return Err(not_leader());
                }
                Ok(ForwardResponse::LeaseKeepAlive { ttl: self.inner.leases.keep_alive(id, Instant::now()) })
            }
            ForwardRequest::LeaseTimeToLive { id } => {
                if !self.is_leader() {
                    return Err(not_leader());
                }
                Ok(ForwardResponse::LeaseTimeToLive { remaining: self.inner.leases.remaining(id, Instant::now()) })
            }
            ForwardRequest::AddLearner { node_id, addr } => {
                if !self.is_leader() {
                    return Err(not_leader());
                }
                self.inner
                    .raft
                    .add_learner(node_id, BasicNode { addr }, true)
                    .await
                    .map(|_| ForwardResponse::Done)
                    .map_err(|e| ForwardError::Other(format!("adding learner {node_id}: {e}")))
            }
            ForwardRequest::ChangeVoters { voters } => {
                if !self.is_leader() {
                    return Err(not_leader());
                }
                let set: BTreeSet<NodeId> = voters.into_iter().collect();
                self.inner
                    .raft
                    .change_membership(set.clone(), false)
                    .await
                    .map(|_| ForwardResponse::Done)
                    .map_err(|e| ForwardError::Other(format!("changing voters to {set:?}: {e}")))
            }
            ForwardRequest::RemoveMember { node_id } => {
                if !self.is_leader() {
                    return Err(not_leader());
                }
                let m = self.inner.raft.metrics().borrow().membership_config.clone();
                let voters: BTreeSet<NodeId> = m.membership().voter_ids().collect();
                let change = if voters.contains(&node_id) {
                    let rest: BTreeSet<NodeId> = voters.into_iter().filter(|v| *v != node_id).collect();
                    if rest.is_empty() {
                        return Err(RequestError::Invalid { reason: "cannot remove the last voter".into() }.into());
                    }
                    ChangeMembers::ReplaceAllVoters(rest)
                } else {
                    ChangeMembers::RemoveNodes([node_id].into_iter().collect())
                };
                self.inner
                    .raft
                    .change_membership(change, false)
                    .await
                    .map(|_| ForwardResponse::Done)
                    .map_err(|e| ForwardError::Other(format!("removing member {node_id}: {e}")))
            }
        }
    }

    /// Starts the replica's background duties.
    pub(crate) fn spawn_duties(&self) {
        let s = self.clone();
        self.spawn(async move { s.leader_duties().await });
        let s = self.clone();
        self.spawn(async move { s.announce_client_urls().await });
        self.spawn(crate::metrics::track_leader_changes(self.inner.raft.metrics(), self.inner.metrics.clone()));
    }

    async fn leader_duties(self) {
        let mut metrics = self.inner.raft.metrics();
        let mut was_leader = false;
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        let mut last_sample = Instant::now() - self.config().compaction_check_interval;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = metrics.changed() => if changed.is_err() { return },
            }
            let leader = {
                let m = metrics.borrow_and_update();
                m.state == ServerState::Leader && m.current_leader == Some(self.node_id())
            };
            if leader && !was_leader {
                // A new leader gives every lease a full TTL: the old leader's clock is gone.
                self.inner.leases.refresh_all(Instant::now());
                samples.clear();
            }
            was_leader = leader;
            if !leader {
                continue;
            }
            for id in self.inner.leases.expired(Instant::now()) {
                tracing::info!(lease = id, "lease expired; revoking");
                match self.write(Command::LeaseRevoke { id }).await {
                    Ok(_) | Err(crate::error::StoreError::Request(RequestError::LeaseNotFound { .. })) => {
                        self.inner.leases.revoked(id)
                    }
                    Err(e) => tracing::warn!(lease = id, error = %e, "revoking expired lease"),
                }
            }
            if last_sample.elapsed() >= self.config().compaction_check_interval {
                last_sample = Instant::now();
                self.auto_compact(&mut samples).await;
            }
        }
    }

    /// Compacts to the newest revision that is both older than the retention window and at least the
    /// minimum number of revisions behind the current one.
    async fn auto_compact(&self, samples: &mut VecDeque<(Instant, i64)>) {
        let now = Instant::now();
        let current = self.revision();
        samples.push_back((now, current));
        let retention = self.config().compaction_retention;
        let mut target = None;
        while let Some(&(at, rev)) = samples.front() {
            if now.duration_since(at) >= retention {
                target = Some(rev);
                samples.pop_front();
            } else {
                break;
            }
        }
        let Some(rev) = target else { return };
        let rev = rev.min(current - self.config().compaction_min_revisions);
        let compacted = ReadView::live(self.db()).compact_revision().unwrap_or(0);
        if rev > compacted {
            match self.compact(rev).await {
                Ok(_) => tracing::info!(revision = rev, "compacted history"),
                Err(e) => tracing::warn!(revision = rev, error = %e, "automatic compaction"),
            }
        }
    }

    async fn announce_client_urls(self) {
        let urls = self.config().client_urls.clone();
        if urls.is_empty() {
            return;
        }
        loop {
            let stored: Option<Vec<String>> = ReadView::live(self.db())
                .get(CF_SM_META, META_CLIENT_URLS)
                .ok()
                .flatten()
                .and_then(|v| decode::<ClientUrls>("client_urls", &v).ok())
                .and_then(|m| m.get(&self.node_id()).cloned());
            if stored.as_ref() == Some(&urls) {
                return;
            }
            match self.write(Command::SetClientUrls { node_id: self.node_id(), urls: urls.clone() }).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "announcing client urls; will retry");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
