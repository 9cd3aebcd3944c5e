//! RocksDB storage for openraft: the database, the log store, the state machine and its snapshots.

pub mod db;
pub mod log_store;
pub mod snapshot_file;
pub mod state_machine;
