//! The openraft type configuration and the commands replicated through the Raft log.

use std::collections::BTreeMap;
use std::io::Cursor;

use openraft::{BasicNode, TokioRuntime};
use serde::{Deserialize, Serialize};

use crate::error::RequestError;
use crate::mvcc::model::TxnRequest;
use crate::mvcc::model::TxnResponse;

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
}

impl Default for CommandResponse {
    fn default() -> Self {
        Self { revision: 0, result: CommandResult::Done }
    }
}

/// Client URLs announced by each member.
pub type ClientUrls = BTreeMap<NodeId, Vec<String>>;
