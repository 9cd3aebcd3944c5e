//! Lease timing; lease state itself lives in the key space (`mvcc`).

pub mod tracker;

/// Shortest TTL granted: shorter requests get this, so a lease survives a leader election.
pub const MIN_TTL_SECONDS: i64 = 2;
