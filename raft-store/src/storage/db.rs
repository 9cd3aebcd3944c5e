//! Opening the replica's RocksDB database: one database, one column family per kind of record, so a
//! single synced write makes every earlier write of any column family durable (they share one WAL).
//! Owns the column-family names and the database tuning; knows nothing of what is stored.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, DB};

use crate::error::StoreError;

/// Raft log entries, keyed by big-endian index.
pub const CF_LOG: &str = "log";
/// Raft vote, committed log id, last purged log id.
pub const CF_RAFT_META: &str = "raft_meta";
/// State machine metadata: last applied log id, membership, revision, compact revision.
pub const CF_SM_META: &str = "sm_meta";
pub const CF_KV: &str = "kv";
pub const CF_REV: &str = "rev";
pub const CF_INDEX: &str = "index";
pub const CF_LEASE: &str = "lease";
pub const CF_LEASE_KEYS: &str = "lease_keys";

/// The column families that make up the state machine; a snapshot is exactly their contents.
pub const STATE_MACHINE_CFS: [&str; 6] = [CF_SM_META, CF_KV, CF_REV, CF_INDEX, CF_LEASE, CF_LEASE_KEYS];

const ALL_CFS: [&str; 8] = [CF_LOG, CF_RAFT_META, CF_SM_META, CF_KV, CF_REV, CF_INDEX, CF_LEASE, CF_LEASE_KEYS];

/// Opens (creating if needed) the database in `dir`.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
    let cache = Cache::new_lru_cache(32 << 20);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);

    let mut cf_opts = Options::default();
    cf_opts.set_block_based_table_factory(&table);
    cf_opts.set_write_buffer_size(16 << 20);
    cf_opts.set_max_write_buffer_number(3);
    cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);

    let mut db_opts = Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_max_total_wal_size(64 << 20);
    db_opts.set_max_background_jobs(2);
    db_opts.set_keep_log_file_num(3);
    db_opts.set_max_log_file_size(8 << 20);
    db_opts.set_paranoid_checks(true);

    let cfs = ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
    let db = DB::open_cf_descriptors(&db_opts, dir, cfs)
        .map_err(|source| StoreError::OpenDb { path: dir.to_path_buf(), source })?;
    Ok(Arc::new(db))
}

/// The handle of a column family that `open_db` always creates.
pub fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} is created by open_db"))
}
