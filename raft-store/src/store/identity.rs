//! The data directory's identity: which cluster and node it belongs to. Checked before anything is
//! opened, so a replica never starts on another node's or another cluster's data, and never
//! overwrites what it finds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::format_cluster;
use crate::error::StoreError;
use crate::types::NodeId;

const IDENTITY_FILE: &str = "identity.json";
pub const DB_DIR: &str = "db";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster_id: u64,
    pub node_id: NodeId,
    /// The initial cluster this data directory was bootstrapped with.
    pub initial_cluster: String,
}

/// Derives the cluster id from the initial member ids and addresses (the same on every member).
pub fn cluster_id(initial: &BTreeMap<NodeId, String>) -> u64 {
    let mut h = crc32fast::Hasher::new();
    h.update(format_cluster(initial).as_bytes());
    let a = h.finalize() as u64;
    let mut h2 = crc32fast::Hasher::new_with_initial(0x9e37_79b9);
    h2.update(format_cluster(initial).as_bytes());
    (a << 32) | h2.finalize() as u64
}

fn dir_err(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::DataDir { path: path.to_path_buf(), reason: reason.into() }
}

/// Checks (or, for a new directory, records) the identity. Returns whether the directory is new.
pub fn check_or_init(dir: &Path, node_id: NodeId, initial: &BTreeMap<NodeId, String>) -> Result<bool, StoreError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(dir_err(dir, "exists but is not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| dir_err(dir, format!("cannot create: {e}")))?;
        }
        Err(e) => return Err(dir_err(dir, format!("cannot access: {e}"))),
    }
    let id_path = dir.join(IDENTITY_FILE);
    let expected = Identity { cluster_id: cluster_id(initial), node_id, initial_cluster: format_cluster(initial) };
    match std::fs::read(&id_path) {
        Ok(bytes) => {
            let found: Identity = serde_json::from_slice(&bytes)
                .map_err(|e| dir_err(&id_path, format!("identity file is corrupt: {e}")))?;
            if found.node_id != node_id {
                return Err(dir_err(
                    dir,
                    format!("belongs to node id {}, not node id {node_id}; use that node's data dir", found.node_id),
                ));
            }
            if found.cluster_id != expected.cluster_id {
                return Err(dir_err(
                    dir,
                    format!(
                        "belongs to another cluster (bootstrapped with initial cluster {}, now given {}); \
                         pass the same --initial-cluster or use an empty data dir",
                        found.initial_cluster, expected.initial_cluster
                    ),
                ));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let db = dir.join(DB_DIR);
            let has_db = std::fs::read_dir(&db).map(|mut d| d.next().is_some()).unwrap_or(false);
            if has_db {
                return Err(dir_err(dir, "holds a database but no identity file; refusing to guess whose it is"));
            }
            let bytes = serde_json::to_vec_pretty(&expected).map_err(|e| dir_err(&id_path, e.to_string()))?;
            write_synced(&id_path, &bytes).map_err(|e| dir_err(&id_path, format!("cannot write: {e}")))?;
            Ok(true)
        }
        Err(e) => Err(dir_err(&id_path, format!("cannot read: {e}"))),
    }
}

fn write_synced(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(s: &str) -> BTreeMap<NodeId, String> {
        crate::config::parse_cluster(s).expect("valid cluster")
    }

    #[test]
    fn new_dir_is_recorded_then_checked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("d");
        let c = cluster("1=h:1,2=h:2,3=h:3");
        assert!(check_or_init(&dir, 2, &c).expect("fresh"));
        assert!(!check_or_init(&dir, 2, &c).expect("same identity"));
        let err = check_or_init(&dir, 3, &c).expect_err("other node");
        assert!(err.to_string().contains("node id 2"), "{err}");
        let err = check_or_init(&dir, 2, &cluster("1=h:1,2=h:2,3=h:4")).expect_err("other cluster");
        assert!(err.to_string().contains("another cluster"), "{err}");
    }

    #[test]
    fn file_instead_of_dir_and_corrupt_identity_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        let c = cluster("1=h:1");
        assert!(check_or_init(&file, 1, &c).expect_err("file").to_string().contains("not a directory"));
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join(IDENTITY_FILE), b"{nope").expect("write");
        assert!(check_or_init(&dir, 1, &c).expect_err("corrupt").to_string().contains("corrupt"));
        assert_eq!(std::fs::read(dir.join(IDENTITY_FILE)).expect("kept"), b"{nope", "nothing overwritten");
    }
}
