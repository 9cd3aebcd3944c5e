//! Requests a replica hands to the leader on a client's behalf, and their answers. They travel over
//! the peer service's `Forward` call, bincode-encoded.

use serde::{Deserialize, Serialize};

use crate::error::RequestError;
use crate::types::{Command, CommandResponse, NodeId};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardRequest {
    Write(Command),
    /// Confirm leadership with a quorum and return the log index a linearizable read must wait for.
    ReadIndex,
    LeaseKeepAlive {
        id: i64,
    },
    LeaseTimeToLive {
        id: i64,
    },
    AddLearner {
        node_id: NodeId,
        addr: String,
    },
    /// Make the voter set exactly this.
    ChangeVoters {
        voters: Vec<NodeId>,
    },
    RemoveMember {
        node_id: NodeId,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardResponse {
    Write(CommandResponse),
    ReadIndex { index: u64 },
    LeaseKeepAlive { ttl: Option<i64> },
    LeaseTimeToLive { remaining: Option<(i64, i64)> },
    Done,
}

/// Why a forwarded request failed on the receiving replica.
#[derive(Clone, Debug, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    #[error("replica {node_id} is not the leader")]
    NotLeader { node_id: NodeId },
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("{0}")]
    Other(String),
}

pub type ForwardResult = Result<ForwardResponse, ForwardError>;
