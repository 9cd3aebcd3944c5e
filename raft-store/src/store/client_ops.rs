//! What clients can ask of a replica: writes (proposed here or forwarded to the leader), linearizable
//! and serializable reads, watches, leases, status and membership.

use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};

use super::handle::Store;
use super::write_ack::WriteAck;
use crate::error::{RequestError, StoreError};
use crate::mvcc::model::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};
use crate::mvcc::reader::{decode, ReadView};
use crate::network::forward::{ForwardError, ForwardRequest, ForwardResponse};
use crate::storage::db::CF_SM_META;
use crate::storage::state_machine::META_CLIENT_URLS;
use crate::types::{ClientUrls, Command, CommandResponse, CommandResult, NodeId};
use crate::watch::watcher::{WatchSpec, Watcher};

/// A member as `MemberList` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: NodeId,
    pub peer_addr: String,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// What `Maintenance.Status` reports.
#[derive(Clone, Debug)]
pub struct StoreStatus {
    pub leader: Option<NodeId>,
    pub raft_term: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    pub revision: i64,
    pub db_size: i64,
    pub is_learner: bool,
}

impl Store {
    /// Runs `op` against the leader: locally when this replica leads, else forwarded. Retries only
    /// when the request provably was not proposed (no leader yet, or the target was not the leader).
    pub(crate) async fn on_leader(&self, req: ForwardRequest) -> Result<ForwardResponse, StoreError> {
        let deadline = Instant::now() + self.config().request_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(StoreError::Timeout(format!("no leader answered {}", describe(&req))));
            }
            let (leader, addr) = self.wait_for_leader(remaining).await?;
            let result = if leader == self.node_id() {
                self.handle_forward(req.clone()).await
            } else {
                match self.inner.channels.forward(leader, &addr, &req, remaining).await {
                    Ok(r) => r,
                    Err(StoreError::PeerUnreachable { .. }) => {
                        // The leader we know of is gone and never saw the request: wait for the
                        // election to produce a new one and try again.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            match result {
                Ok(resp) => return Ok(resp),
                Err(ForwardError::NotLeader { .. }) => {
                    // Leadership moved; wait for the metrics to catch up and try the new leader.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(ForwardError::Request(e)) => return Err(e.into()),
                Err(ForwardError::Other(e)) => return Err(StoreError::Raft(e)),
            }
        }
    }

    /// Proposes a command on this replica, which must be the leader.
    pub(crate) async fn propose_local(&self, cmd: Command) -> Result<CommandResponse, ForwardError> {
        match self.inner.raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(ForwardError::NotLeader { node_id: self.node_id() })
            }
            Err(e) => Err(ForwardError::Other(e.to_string())),
        }
    }

    /// Replicates a command and returns its result once it is committed on a quorum and applied here.
    /// Transactions from concurrent callers share log entries (see `write_batcher`).
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, StoreError> {
        self.write_with_ack(cmd, WriteAck::LocalApply).await
    }

    /// Like `write`, acknowledged as `ack` says.
    pub async fn write_with_ack(&self, cmd: Command, ack: WriteAck) -> Result<CommandResponse, StoreError> {
        let started = Instant::now();
        let result =
            if cmd.batchable() { self.write_batched(cmd, ack).await } else { self.write_direct(cmd, ack).await };
        let failed = matches!(result, Err(ref e) if !matches!(e, StoreError::Request(_)));
        self.inner.metrics.observe_proposal(started.elapsed(), failed);
        result
    }

    /// Replicates a command as a log entry of its own.
    pub(crate) async fn write_direct(&self, cmd: Command, ack: WriteAck) -> Result<CommandResponse, StoreError> {
        let resp = self.forward_write(cmd).await?;
        self.settle_write(resp, ack).await
    }

    /// Has the leader replicate and apply `cmd`; returns the leader's response, which this replica
    /// may not have applied yet.
    pub(crate) async fn forward_write(&self, cmd: Command) -> Result<CommandResponse, StoreError> {
        match self.on_leader(ForwardRequest::Write(cmd)).await? {
            ForwardResponse::Write(resp) => Ok(resp),
            other => Err(StoreError::Raft(format!("unexpected forward response {other:?}"))),
        }
    }

    /// Turns the leader's response into the caller's answer: once this replica has applied it too,
    /// or at once with this replica's read fence raised to it (see `WriteAck`). Either way the
    /// caller reads its own write here.
    pub(crate) async fn settle_write(
        &self,
        resp: CommandResponse,
        ack: WriteAck,
    ) -> Result<CommandResponse, StoreError> {
        match ack {
            WriteAck::LocalApply => self.wait_applied_revision(resp.revision).await?,
            WriteAck::Leader => self.hub().acknowledge(resp.revision),
        }
        match resp.result {
            CommandResult::Rejected(e) => Err(e.into()),
            _ => Ok(resp),
        }
    }

    pub(crate) async fn wait_applied_revision(&self, revision: i64) -> Result<(), StoreError> {
        let Some(applied) = self.hub().wait_for(revision) else {
            return Ok(());
        };
        match tokio::time::timeout(self.config().request_timeout, applied).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StoreError::ShuttingDown),
            Err(_) => Err(StoreError::Timeout(format!("applying revision {revision}"))),
        }
    }

    /// Waits until this replica has applied everything committed before the call (read index).
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        // A round fails when the leader cannot hear from a quorum in time (a busy follower is stuck
        // in an fsync, say). Reading is idempotent, so such failures are retried with a fresh round
        // until the request deadline, instead of failing the client's read early.
        let deadline = Instant::now() + self.config().request_timeout;
        let mut backoff = Duration::from_millis(10);
        let index = loop {
            let round = self
                .inner
                .reads
                .join(|| async {
                    match self.on_leader(ForwardRequest::ReadIndex).await {
                        Ok(ForwardResponse::ReadIndex { index }) => Ok(index),
                        Ok(other) => {
                            Err(super::handle::ReadIndexError(format!("unexpected forward response {other:?}")))
                        }
                        Err(e) => Err(super::handle::ReadIndexError(e.to_string())),
                    }
                })
                .await;
            match round {
                Ok(index) => break index,
                Err(e) if Instant::now() + backoff < deadline => {
                    tracing::debug!(error = %e.0, "read-index round failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(StoreError::Timeout(format!("linearizable read: {}", e.0))),
            }
        };
        self.inner
            .raft
            .wait(Some(self.config().request_timeout))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map_err(|e| StoreError::Timeout(format!("waiting to apply index {index}: {e}")))?;
        Ok(())
    }

    /// A range read; linearizable unless `serializable`. Returns the response and the header revision.
    pub async fn range(&self, req: RangeRequest, serializable: bool) -> Result<(RangeResponse, i64), StoreError> {
        if serializable {
            // Not older than any write acknowledged through this replica (`WriteAck::Leader`).
            self.wait_applied_revision(self.hub().fence()).await?;
        } else {
            self.read_barrier().await?;
        }
        let db = self.db().clone();
        tokio::task::spawn_blocking(move || {
            let snap = db.snapshot();
            let view = ReadView::at_snapshot(&db, &snap);
            let resp = view.range(&req)?;
            Ok((resp, view.revision()?))
        })
        .await
        .map_err(|e| StoreError::Raft(format!("range task: {e}")))?
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<(TxnResponse, i64), StoreError> {
        self.txn_with_ack(req, WriteAck::LocalApply).await
    }

    /// Like `txn`, acknowledged as `ack` says.
    pub async fn txn_with_ack(&self, req: TxnRequest, ack: WriteAck) -> Result<(TxnResponse, i64), StoreError> {
        crate::mvcc::writer::validate_txn(&req)?;
        let resp = self.write_with_ack(Command::Txn(req), ack).await?;
        match resp.result {
            CommandResult::Txn(t) => Ok((t, resp.revision)),
            other => Err(StoreError::Raft(format!("unexpected txn result {other:?}"))),
        }
    }

    pub async fn compact(&self, revision: i64) -> Result<i64, StoreError> {
        Ok(self.write(Command::Compact { revision }).await?.revision)
    }

    pub fn watch(&self, spec: WatchSpec) -> Watcher {
        Watcher::new(self.db().clone(), self.hub().clone(), spec)
    }

    /// Grants a lease; `id == 0` lets the store choose one.
    pub async fn lease_grant(&self, id: i64, ttl: i64) -> Result<(i64, i64, i64), StoreError> {
        let id = if id == 0 { (rand::random::<u64>() >> 2) as i64 + 1 } else { id };
        let ttl = ttl.max(crate::lease::MIN_TTL_SECONDS);
        let resp = self.write(Command::LeaseGrant { id, ttl }).await?;
        match resp.result {
            CommandResult::LeaseGranted { id, ttl } => Ok((id, ttl, resp.revision)),
            other => Err(StoreError::Raft(format!("unexpected lease grant result {other:?}"))),
        }
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<i64, StoreError> {
        Ok(self.write(Command::LeaseRevoke { id }).await?.revision)
    }

    /// Renews a lease on the leader; `None` if it does not exist.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<Option<i64>, StoreError> {
        match self.on_leader(ForwardRequest::LeaseKeepAlive { id }).await? {
            ForwardResponse::LeaseKeepAlive { ttl } => Ok(ttl),
            other => Err(StoreError::Raft(format!("unexpected forward response {other:?}"))),
        }
    }

    /// (remaining seconds, granted TTL, attached keys) of a lease, `None` if it does not exist.
    pub async fn lease_time_to_live(&self, id: i64) -> Result<Option<(i64, i64, Vec<Vec<u8>>)>, StoreError> {
        let remaining = match self.on_leader(ForwardRequest::LeaseTimeToLive { id }).await? {
            ForwardResponse::LeaseTimeToLive { remaining } => remaining,
            other => return Err(StoreError::Raft(format!("unexpected forward response {other:?}"))),
        };
        let Some((left, granted)) = remaining else { return Ok(None) };
        self.read_barrier().await?;
        let keys = ReadView::live(self.db()).lease_keys(id)?;
        Ok(Some((left, granted, keys)))
    }

    pub async fn lease_ids(&self) -> Result<Vec<i64>, StoreError> {
        self.read_barrier().await?;
        Ok(ReadView::live(self.db()).leases()?.into_iter().map(|l| l.id).collect())
    }

    pub fn status(&self) -> StoreStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let is_learner = !m.membership_config.membership().voter_ids().any(|id| id == self.node_id());
        StoreStatus {
            leader: m.current_leader,
            raft_term: m.current_term,
            raft_index: m.last_log_index.unwrap_or(0),
            raft_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            revision: self.revision(),
            db_size: self.db_size(),
            is_learner,
        }
    }

    fn db_size(&self) -> i64 {
        let db = self.db();
        let mut total = 0u64;
        for name in ["log", "raft_meta", "sm_meta", "kv", "rev", "index", "lease", "lease_keys"] {
            if let Some(h) = db.cf_handle(name) {
                for prop in ["rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables"] {
                    total += db.property_int_value_cf(h, prop).ok().flatten().unwrap_or(0);
                }
            }
        }
        total as i64
    }

    /// Members of the current configuration, voters and learners.
    pub fn members(&self) -> Result<Vec<MemberInfo>, StoreError> {
        let m = self.inner.raft.metrics().borrow().membership_config.clone();
        let urls: ClientUrls = match ReadView::live(self.db()).get(CF_SM_META, META_CLIENT_URLS)? {
            Some(v) => decode("client_urls", &v)?,
            None => ClientUrls::new(),
        };
        let voters: Vec<NodeId> = m.membership().voter_ids().collect();
        Ok(m.membership()
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                peer_addr: node.addr.clone(),
                client_urls: urls.get(id).cloned().unwrap_or_default(),
                is_learner: !voters.contains(id),
            })
            .collect())
    }

    /// Adds a replica as a non-voting learner and waits until it has caught up.
    pub async fn add_learner(&self, node_id: NodeId, addr: String) -> Result<(), StoreError> {
        self.on_leader(ForwardRequest::AddLearner { node_id, addr }).await.map(|_| ())
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, node_id: NodeId) -> Result<(), StoreError> {
        let members = self.members()?;
        if !members.iter().any(|m| m.id == node_id) {
            return Err(RequestError::MemberNotFound { id: node_id }.into());
        }
        let mut voters: Vec<NodeId> = members.iter().filter(|m| !m.is_learner).map(|m| m.id).collect();
        if !voters.contains(&node_id) {
            voters.push(node_id);
        }
        self.on_leader(ForwardRequest::ChangeVoters { voters }).await.map(|_| ())
    }

    /// Removes a member (voter or learner) from the cluster.
    pub async fn remove_member(&self, node_id: NodeId) -> Result<(), StoreError> {
        if !self.members()?.iter().any(|m| m.id == node_id) {
            return Err(RequestError::MemberNotFound { id: node_id }.into());
        }
        self.on_leader(ForwardRequest::RemoveMember { node_id }).await.map(|_| ())
    }
}

fn describe(req: &ForwardRequest) -> &'static str {
    match req {
        ForwardRequest::Write(_) => "a write",
        ForwardRequest::ReadIndex => "a read-index request",
        ForwardRequest::LeaseKeepAlive { .. } => "a lease keep-alive",
        ForwardRequest::LeaseTimeToLive { .. } => "a lease time-to-live request",
        ForwardRequest::AddLearner { .. } => "adding a learner",
        ForwardRequest::ChangeVoters { .. } | ForwardRequest::RemoveMember { .. } => "a membership change",
    }
}
