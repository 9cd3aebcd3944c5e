//! openraft's storage conformance suite against the RocksDB log store and state machine.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use raft_store::lease::tracker::LeaseTracker;
use raft_store::storage::db::open_db;
use raft_store::storage::log_store::RocksLogStore;
use raft_store::storage::state_machine::{RocksStateMachine, StateMachineShared};
use raft_store::types::{StorageError, TypeConfig};
use raft_store::watch::hub::WatchHub;

struct Builder;

impl StoreBuilder<TypeConfig, RocksLogStore, RocksStateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, RocksLogStore, RocksStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_db(&dir.path().join("db")).expect("open db");
        let shared = StateMachineShared {
            db: db.clone(),
            hub: Arc::new(WatchHub::new(0)),
            leases: Arc::new(LeaseTracker::default()),
            snapshot_dir: dir.path().join("snapshots"),
        };
        let sm = RocksStateMachine::open(shared).expect("open state machine");
        Ok((dir, RocksLogStore::new(db), sm))
    }
}

#[test]
fn rocksdb_storage_passes_openraft_suite() -> Result<(), StorageError> {
    Suite::test_all(Builder)?;
    Ok(())
}
