//! The openraft type configuration and the commands replicated through the Raft log.

use std::collections::BTreeMap;
use std::io::Cursor;

use openraft::{BasicNode, TokioRuntime};
use serde::{Deserialize, Serialize};

use crate::error::RequestError;
use crate::mvcc::model::{RequestOp, TxnRequest, TxnResponse};

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Gantry's Raft types: u64 node ids, nodes addressed by their peer address, commands below.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;

/// A state change, replicated through the log and applied by every replica in log order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Compare, then run the success or failure operations. Puts and deletes are one-branch transactions.
    Txn(TxnRequest),
    /// Drop history below `revision`.
    Compact { revision: i64 },
    /// Create a lease; the id is chosen by the proposer so that apply stays deterministic.
    LeaseGrant { id: i64, ttl: i64 },
    /// Revoke a lease (by a client, or by the leader when it expired) and delete its keys.
    LeaseRevoke { id: i64 },
    /// A replica announces the client URLs it serves, for `MemberList`.
    SetClientUrls { node_id: NodeId, urls: Vec<String> },
    /// Transactions from concurrent clients, applied in order in one log entry, each with its own
    /// revision and result (`CommandResult::Batch`). One entry means one log fsync for all of them.
    Batch(Vec<Command>),
}

impl Command {
    /// The command's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Txn(_) => "txn",
            Command::Compact { .. } => "compact",
            Command::LeaseGrant { .. } => "lease grant",
            Command::LeaseRevoke { .. } => "lease revoke",
            Command::SetClientUrls { .. } => "set client urls",
            Command::Batch(_) => "batch",
        }
    }

    /// Whether the command may travel in a `Batch`: transactions whose ranges all read the current
    /// state (a range at an explicit revision could name one written earlier in the same batch).
    pub fn batchable(&self) -> bool {
        fn current_reads_only(ops: &[RequestOp]) -> bool {
            ops.iter().all(|op| match op {
                RequestOp::Range(r) => r.revision == 0,
                RequestOp::Txn(t) => current_reads_only(&t.success) && current_reads_only(&t.failure),
                RequestOp::Put(_) | RequestOp::DeleteRange(_) => true,
            })
        }
        match self {
            Command::Txn(t) => current_reads_only(&t.success) && current_reads_only(&t.failure),
            _ => false,
        }
    }
}

/// The result of applying a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// Store revision after the command.
    pub revision: i64,
    pub result: CommandResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Txn(TxnResponse),
    LeaseGranted {
        id: i64,
        ttl: i64,
    },
    Done,
    /// The command was rejected and changed nothing.
    Rejected(RequestError),
    /// One response per command of a `Command::Batch`, in order.
    Batch(Vec<CommandResponse>),
}

impl Default for CommandResponse {
    fn default() -> Self {
        Self { revision: 0, result: CommandResult::Done }
    }
}

/// Client URLs announced by each member.
pub type ClientUrls = BTreeMap<NodeId, Vec<String>>;
