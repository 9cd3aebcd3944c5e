//! The Raft transport towards one peer (openraft's `RaftNetwork`), plus the factory openraft uses to
//! reach peers by node id. Connections are lazy tonic channels, re-resolved from the membership's
//! address for each new target, so identity stays the node id while the address may change.
//! AppendEntries and forwarded requests go over each peer's `Pipe` stream (see `pipe`); votes and
//! snapshot chunks, which are rare, stay unary calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::forward::{ForwardRequest, ForwardResult};
use super::pipe::{PeerPipe, PipeError};
use crate::error::StoreError;
use crate::proto::raftpb::raft_peer_client::RaftPeerClient;
use crate::proto::raftpb::{FrameKind, Payload};
use crate::types::{NodeId, TypeConfig};

/// Largest peer message; snapshots are chunked well below this by openraft.
pub const MAX_PEER_MESSAGE: usize = 64 << 20;

/// Largest AppendEntries message sent; larger ones are split (one entry always goes, and client
/// requests are far below this).
const MAX_APPEND_BYTES: usize = MAX_PEER_MESSAGE / 4;

/// How many leading entries fit in one AppendEntries message (at least one).
fn entries_that_fit(entries: &[crate::types::Entry]) -> u64 {
    let mut total = 0usize;
    let mut fit = 0u64;
    for e in entries {
        total += bincode::serialized_size(e).map(|s| s as usize).unwrap_or(usize::MAX / 2);
        if total > MAX_APPEND_BYTES {
            break;
        }
        fit += 1;
    }
    fit.max(1)
}

/// Channels and pipes to peers by address, shared by Raft replication and forwarding.
#[derive(Clone, Default)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    pipes: Arc<Mutex<HashMap<String, Arc<PeerPipe>>>>,
}

impl PeerChannels {
    pub fn client(&self, addr: &str) -> Result<RaftPeerClient<Channel>, StoreError> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match map.get(addr) {
            Some(c) => c.clone(),
            None => {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| StoreError::Config(format!("bad peer address {addr}: {e}")))?
                    .connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(5));
                let c = endpoint.connect_lazy();
                map.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(RaftPeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    /// The pipe to the replica at `addr` (see [`PeerPipe`]).
    fn pipe(&self, addr: &str) -> Arc<PeerPipe> {
        let mut map = self.pipes.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(addr.to_string()).or_insert_with(|| Arc::new(PeerPipe::new(addr))).clone()
    }

    /// Sends one request to `addr`, returning the answer's payload: over the pipe, or as a unary
    /// call to a replica that does not serve the pipe (an older version, during a rolling upgrade).
    pub(crate) async fn call_pipe(
        &self,
        addr: &str,
        kind: FrameKind,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PipeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let connect_err =
            |reason: String, never_sent: bool| PipeError::Connect { addr: addr.to_string(), reason, never_sent };
        // A gRPC client is needed only to open the pipe, or for a peer without one.
        let client = || self.client(addr).map_err(|e| connect_err(e.to_string(), true));
        match self.pipe(addr).open(client, deadline).await {
            Ok(pipe) => return pipe.request(kind, data, deadline).await,
            Err(PipeError::Unsupported { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut client = client()?;
        let mut request = tonic::Request::new(Payload { data });
        request.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let answer = match kind {
            FrameKind::Forward => client.forward(request).await,
            _ => client.append_entries(request).await,
        };
        answer.map(|r| r.into_inner().data).map_err(|status| match status.code() {
            tonic::Code::DeadlineExceeded => PipeError::Timeout { addr: addr.to_string() },
            tonic::Code::InvalidArgument => {
                PipeError::Refused { addr: addr.to_string(), reason: status.message().into() }
            }
            _ if never_sent(&status) => connect_err(status.message().to_string(), true),
            _ => PipeError::Lost { addr: addr.to_string(), reason: status.message().to_string() },
        })
    }

    /// Sends a forwarded request to the replica at `addr`.
    pub async fn forward(
        &self,
        node_id: NodeId,
        addr: &str,
        req: &ForwardRequest,
        timeout: Duration,
    ) -> Result<ForwardResult, StoreError> {
        let data = bincode::serialize(req).map_err(|e| StoreError::Raft(e.to_string()))?;
        let peer_err = |reason: String| StoreError::Peer { node_id, addr: addr.to_string(), reason };
        let answer = self.call_pipe(addr, FrameKind::Forward, data, timeout).await.map_err(|e| match e {
            PipeError::Connect { never_sent: true, .. } => {
                StoreError::PeerUnreachable { node_id, addr: addr.to_string(), reason: e.to_string() }
            }
            other => peer_err(other.to_string()),
        })?;
        bincode::deserialize(&answer).map_err(|e| peer_err(format!("bad forward response: {e}")))
    }
}

/// True when the call failed while connecting, i.e. the peer never saw the request.
pub(crate) fn never_sent(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("connect") || text.contains("connection refused") {
            return true;
        }
        source = e.source();
    }
    let msg = status.message().to_ascii_lowercase();
    msg.contains("tcp connect error") || msg.contains("connection refused")
}

pub struct NetworkFactory {
    pub channels: PeerChannels,
}

pub struct PeerConnection {
    target: NodeId,
    addr: String,
    channels: PeerChannels,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerConnection { target, addr: node.addr.clone(), channels: self.channels.clone() }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, E>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(&mut self, method: &'static str, req: &Req, option: &RPCOption) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.send(method, data, option).await
    }

    async fn send<Resp, E>(&mut self, method: &'static str, data: Vec<u8>, option: &RPCOption) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = self.channels.client(&self.addr).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut request = tonic::Request::new(Payload { data });
        request.set_timeout(option.hard_ttl());
        let resp = match method {
            "vote" => client.vote(request).await,
            _ => client.install_snapshot(request).await,
        };
        let payload = match resp {
            Ok(r) => r.into_inner().data,
            Err(status) => {
                let err = AnyError::error(format!("{} to node {} at {}: {}", method, self.target, self.addr, status));
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown => RPCError::Unreachable(Unreachable::new(&err)),
                    _ => RPCError::Network(NetworkError::new(&err)),
                });
            }
        };
        let result: Result<Resp, E> =
            bincode::deserialize(&payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let data = bincode::serialize(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if data.len() > MAX_APPEND_BYTES && rpc.entries.len() > 1 {
            // openraft bounds entries per message by count only; ask it to send fewer at a time.
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries_that_fit(&rpc.entries))));
        }
        let answer = self.channels.call_pipe(&self.addr, FrameKind::AppendEntries, data, option.hard_ttl()).await;
        let payload = answer.map_err(|e| {
            let err = AnyError::error(format!("append to node {}: {e}", self.target));
            match e {
                // Appends are idempotent: whether or not the follower saw it, openraft retries.
                PipeError::Connect { .. } | PipeError::Lost { .. } | PipeError::Unsupported { .. } => {
                    RPCError::Unreachable(Unreachable::new(&err))
                }
                PipeError::Timeout { .. } | PipeError::Refused { .. } => RPCError::Network(NetworkError::new(&err)),
            }
        })?;
        let result: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
            bincode::deserialize(&payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call("vote", &rpc, &option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::mvcc::model::{PutRequest, RequestOp, TxnRequest};
    use crate::types::{Command, Entry, LogId};

    fn entry_of(index: u64, bytes: usize) -> Entry {
        let put = PutRequest { key: b"k".to_vec(), value: vec![7; bytes], ..Default::default() };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::Txn(TxnRequest::ops(vec![RequestOp::Put(put)]))),
        }
    }

    #[test]
    fn oversized_appends_are_split_by_entry_count() {
        let third = MAX_APPEND_BYTES / 3;
        let entries: Vec<Entry> = (1..=7).map(|i| entry_of(i, third)).collect();
        assert_eq!(entries_that_fit(&entries), 2, "two thirds fit, the third pushes past the limit");
        let small: Vec<Entry> = (1..=100).map(|i| entry_of(i, 100)).collect();
        assert_eq!(entries_that_fit(&small), 100);
        let huge = vec![entry_of(1, MAX_APPEND_BYTES + 1)];
        assert_eq!(entries_that_fit(&huge), 1, "a single entry always goes");
    }
}
