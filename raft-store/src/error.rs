//! Errors of the store as a whole: opening the data directory, talking to peers, and serving requests.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A request the store rejected. Deterministic: every replica reaches the same verdict when applying the
/// same log entry, so it travels back to a forwarding replica intact.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RequestError {
    #[error("mvcc: required revision {requested} has been compacted (compact revision {compact_revision})")]
    Compacted { requested: i64, compact_revision: i64 },
    #[error("mvcc: required revision {requested} is a future revision (current {current})")]
    FutureRevision { requested: i64, current: i64 },
    #[error("key not found: {key}")]
    KeyNotFound { key: String },
    #[error("requested lease not found: {id}")]
    LeaseNotFound { id: i64 },
    #[error("lease already exists: {id}")]
    LeaseExists { id: i64 },
    #[error("duplicate key given in txn request: {key}")]
    DuplicateKey { key: String },
    #[error("invalid request: {reason}")]
    Invalid { reason: String },
    #[error("request is too large: {size} bytes, limit {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("member not found: {id}")]
    MemberNotFound { id: u64 },
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database in {path}: {source}")]
    OpenDb { path: PathBuf, source: rocksdb::Error },
    #[error("data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("corrupt record in {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("no leader is known; the cluster may be electing one or lack a quorum")]
    NoLeader,
    #[error("raft: {0}")]
    Raft(String),
    #[error("peer {node_id} at {addr}: {reason}")]
    Peer { node_id: u64, addr: String, reason: String },
    /// The request never reached the peer (no connection), so it is safe to retry elsewhere.
    #[error("peer {node_id} at {addr} is unreachable: {reason}")]
    PeerUnreachable { node_id: u64, addr: String, reason: String },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("store is shutting down")]
    ShuttingDown,
    #[error("io on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// A copy for each of several callers failed by one error (`io::Error` is not `Clone`, so
    /// variants holding one keep their message only).
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Request(e) => StoreError::Request(e.clone()),
            StoreError::NoLeader => StoreError::NoLeader,
            StoreError::Raft(s) => StoreError::Raft(s.clone()),
            StoreError::Peer { node_id, addr, reason } => {
                StoreError::Peer { node_id: *node_id, addr: addr.clone(), reason: reason.clone() }
            }
            StoreError::PeerUnreachable { node_id, addr, reason } => {
                StoreError::PeerUnreachable { node_id: *node_id, addr: addr.clone(), reason: reason.clone() }
            }
            StoreError::Timeout(s) => StoreError::Timeout(s.clone()),
            StoreError::ShuttingDown => StoreError::ShuttingDown,
            StoreError::Db(e) => StoreError::Db(e.clone()),
            StoreError::Corrupt { what, reason } => StoreError::Corrupt { what: what.clone(), reason: reason.clone() },
            StoreError::Config(s) => StoreError::Config(s.clone()),
            other => StoreError::Raft(other.to_string()),
        }
    }

    pub fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        StoreError::Corrupt { what: what.into(), reason: reason.to_string() }
    }
}
