//! Configuration of one store replica.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::StoreError;
use crate::types::NodeId;

/// Default limit on one client request, like etcd's `--max-request-bytes`.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Upper bound for `max_request_bytes`: a request must fit in one peer message with room to spare.
pub const MAX_REQUEST_BYTES_LIMIT: usize = 8 << 20;

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    /// Peer address of every initial member, this one included.
    pub initial_cluster: BTreeMap<NodeId, String>,
    /// URLs this replica serves clients on, announced in `MemberList`.
    pub client_urls: Vec<String>,
    pub max_request_bytes: usize,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Take a snapshot (and let the log be purged) after this many applied entries.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot so briefly lagging followers need no snapshot.
    pub keep_entries_after_snapshot: u64,
    /// Automatic compaction keeps at least this much history...
    pub compaction_retention: Duration,
    /// ...and at least this many revisions.
    pub compaction_min_revisions: i64,
    pub compaction_check_interval: Duration,
    /// How long a client request may wait for a leader or for its entry to commit.
    pub request_timeout: Duration,
    /// Set when this replica joins an existing cluster (as a learner added by the leader) instead of
    /// being one of `initial_cluster`: its own peer address. A joining replica never bootstraps.
    pub join_peer_addr: Option<String>,
}

impl StoreConfig {
    pub fn new(node_id: NodeId, data_dir: impl Into<PathBuf>, initial_cluster: BTreeMap<NodeId, String>) -> Self {
        Self {
            node_id,
            data_dir: data_dir.into(),
            initial_cluster,
            client_urls: Vec::new(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(600),
            election_timeout_max: Duration::from_millis(1200),
            snapshot_after_entries: 10_000,
            keep_entries_after_snapshot: 2_000,
            compaction_retention: Duration::from_secs(300),
            compaction_min_revisions: 10_000,
            compaction_check_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            join_peer_addr: None,
        }
    }

    /// This replica's peer address.
    pub fn peer_addr(&self) -> Result<&str, StoreError> {
        if let Some(addr) = &self.join_peer_addr {
            return Ok(addr);
        }
        self.initial_cluster.get(&self.node_id).map(String::as_str).ok_or_else(|| {
            StoreError::Config(format!(
                "node id {} is not a member of the initial cluster ({})",
                self.node_id,
                format_cluster(&self.initial_cluster)
            ))
        })
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        if self.node_id == 0 {
            return Err(StoreError::Config("node id must be at least 1".into()));
        }
        self.peer_addr()?;
        if self.max_request_bytes < 1024 {
            return Err(StoreError::Config(format!(
                "max request bytes must be at least 1024, got {}",
                self.max_request_bytes
            )));
        }
        if self.max_request_bytes > MAX_REQUEST_BYTES_LIMIT {
            return Err(StoreError::Config(format!(
                "max request bytes must be at most {MAX_REQUEST_BYTES_LIMIT} (8 MiB), got {}",
                self.max_request_bytes
            )));
        }
        if self.election_timeout_min <= self.heartbeat_interval * 2
            || self.election_timeout_max <= self.election_timeout_min
        {
            return Err(StoreError::Config("election timeouts must exceed twice the heartbeat interval".into()));
        }
        Ok(())
    }
}

/// `1=host:port,2=host:port`
pub fn format_cluster(c: &BTreeMap<NodeId, String>) -> String {
    c.iter().map(|(id, a)| format!("{id}={a}")).collect::<Vec<_>>().join(",")
}

/// Parses `1=host:port,2=host:port,...`.
pub fn parse_cluster(s: &str) -> Result<BTreeMap<NodeId, String>, StoreError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| StoreError::Config(format!("initial cluster entry {part:?} is not ID=HOST:PORT")))?;
        let id: NodeId = id.trim().parse().map_err(|_| {
            StoreError::Config(format!("initial cluster entry {part:?}: node id {id:?} is not a number"))
        })?;
        if id == 0 {
            return Err(StoreError::Config(format!("initial cluster entry {part:?}: node id must be at least 1")));
        }
        let addr = addr.trim().trim_start_matches("http://").to_string();
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| StoreError::Config(format!("initial cluster entry {part:?}: address has no port")))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(StoreError::Config(format!("initial cluster entry {part:?}: bad address {addr:?}")));
        }
        if out.insert(id, addr).is_some() {
            return Err(StoreError::Config(format!("initial cluster names node {id} twice")));
        }
    }
    if out.is_empty() {
        return Err(StoreError::Config("initial cluster is empty".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_and_rejects_garbage() {
        let c = parse_cluster("1=127.0.0.1:2380, 2=http://127.0.0.1:2381,3=h:1").expect("valid");
        assert_eq!(c.len(), 3);
        assert_eq!(c[&2], "127.0.0.1:2381");
        assert_eq!(format_cluster(&c), "1=127.0.0.1:2380,2=127.0.0.1:2381,3=h:1");
        for bad in ["", "1", "x=h:1", "1=h", "1=h:99999", "0=h:1", "1=h:1,1=h:2"] {
            assert!(parse_cluster(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn node_must_be_member() {
        let c = parse_cluster("1=h:1,2=h:2").expect("valid");
        let cfg = StoreConfig::new(3, "/tmp/x", c);
        let err = cfg.validate().expect_err("not a member");
        assert!(err.to_string().contains("node id 3"), "{err}");
    }
}
