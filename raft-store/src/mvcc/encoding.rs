//! Byte layouts of the key space in RocksDB. Owns the column-family key formats; knows nothing of Raft.
//!
//! - `kv`:    user key → current `KeyValue` (the fast path for reads at the current revision)
//! - `rev`:   (revision, sub) big-endian → `RevRecord` (the change made at that point; watch history)
//! - `index`: escaped(user key) ‖ revision ‖ sub → one byte, 0 = put, 1 = delete (reads at past revisions)
//! - `lease`: lease id → `LeaseRecord`; `lease_keys`: lease id ‖ user key → empty
//!
//! User keys are escaped in `index` (0x00 → 0x00 0xff, terminated by 0x00 0x01) so that the revision
//! suffix never changes how two different user keys sort.

use serde::{Deserialize, Serialize};

use super::model::{EventKind, KeyValue};

pub const TOMBSTONE: u8 = 1;
pub const LIVE: u8 = 0;

/// A revision key: main revision and the position of the change within its transaction.
pub fn rev_key(revision: i64, sub: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&(revision as u64).to_be_bytes());
    k[8..].copy_from_slice(&sub.to_be_bytes());
    k
}

pub fn decode_rev_key(k: &[u8]) -> Option<(i64, u32)> {
    if k.len() != 12 {
        return None;
    }
    let rev = u64::from_be_bytes(k[..8].try_into().ok()?) as i64;
    let sub = u32::from_be_bytes(k[8..].try_into().ok()?);
    Some((rev, sub))
}

/// Escaped user key followed by the terminator; every index entry of the key starts with this.
pub fn index_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 2);
    for &b in user_key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.push(0);
    out.push(1);
    out
}

pub fn index_key(user_key: &[u8], revision: i64, sub: u32) -> Vec<u8> {
    let mut k = index_prefix(user_key);
    k.extend_from_slice(&rev_key(revision, sub));
    k
}

/// Splits an index key into (user key, revision, sub).
pub fn decode_index_key(k: &[u8]) -> Option<(Vec<u8>, i64, u32)> {
    if k.len() < 14 {
        return None;
    }
    let (escaped, rev) = k.split_at(k.len() - 12);
    let (revision, sub) = decode_rev_key(rev)?;
    let body = escaped.strip_suffix(&[0, 1])?;
    let mut user = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        user.push(body[i]);
        if body[i] == 0 {
            if body.get(i + 1) != Some(&0xff) {
                return None;
            }
            i += 1;
        }
        i += 1;
    }
    Some((user, revision, sub))
}

/// The change recorded at one revision. For deletes, `kv.value` is empty and `kv.mod_revision` is the
/// deleting revision (as etcd reports delete events).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevRecord {
    pub kind: EventKind,
    pub kv: KeyValue,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub id: i64,
    /// The TTL the lease was granted with, in seconds.
    pub ttl: i64,
}

pub fn lease_key(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

pub fn lease_keys_key(id: i64, user_key: &[u8]) -> Vec<u8> {
    let mut k = lease_key(id).to_vec();
    k.extend_from_slice(user_key);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_sort_by_user_key_then_revision() {
        let a = index_key(b"a", 9, 0);
        let a0 = index_key(b"a\x00", 1, 0);
        let ab = index_key(b"ab", 1, 0);
        let a_late = index_key(b"a", 10, 0);
        assert!(a < a_late);
        assert!(a_late < a0, "every revision of 'a' sorts before key 'a\\0'");
        assert!(a0 < ab);
    }

    #[test]
    fn index_key_round_trips() {
        for key in [&b""[..], b"a", b"\x00\x00", b"x\x00y\xff"] {
            let k = index_key(key, 42, 3);
            assert_eq!(decode_index_key(&k), Some((key.to_vec(), 42, 3)));
            assert!(k.starts_with(&index_prefix(key)));
        }
    }

    #[test]
    fn rev_keys_sort_numerically() {
        assert!(rev_key(2, 0) < rev_key(10, 0));
        assert!(rev_key(10, 0) < rev_key(10, 1));
        assert_eq!(decode_rev_key(&rev_key(77, 5)), Some((77, 5)));
    }
}
