//! A bounded in-memory copy of recently written keys' current values, so that applying a write
//! does not have to look its key up in RocksDB first.
//!
//! Why: every put reads the key's current record (for its create revision, version, lease and the
//! watch event's previous value). Profiled at 256 clients, that RocksDB `Get` was 15 % of the
//! leader's CPU, and it runs on the one state-machine task every write goes through.
//!
//! Write-through only: the state machine records what an entry left behind after its batch is in
//! the database, so the cache never holds anything the database does not. Keys never written since
//! start are read from the database as before. A snapshot install replaces the database and
//! clears the cache. Owns nothing else; the state machine owns the one instance.

use std::collections::HashMap;

use super::model::KeyValue;

/// Default memory budget. At store-bench's 256-byte values it holds about 75,000 keys; measured peak
/// RSS under load grew by about twice the budget (allocator rounding, the map's spare capacity).
pub const DEFAULT_BUDGET_BYTES: usize = 32 << 20;

/// Per-entry cost beyond the key and value bytes: the map slot with its `KeyValue`, and the
/// allocations of the key (held twice: map key and `KeyValue::key`) and value, rounded up.
const ENTRY_OVERHEAD: usize = 160;

pub struct CurrentCache {
    /// `None`: the key is known not to exist.
    entries: HashMap<Vec<u8>, Option<KeyValue>>,
    bytes: usize,
    budget: usize,
}

impl Default for CurrentCache {
    fn default() -> Self {
        Self::with_budget(DEFAULT_BUDGET_BYTES)
    }
}

fn cost(key: &[u8], kv: &Option<KeyValue>) -> usize {
    ENTRY_OVERHEAD + key.len() * 2 + kv.as_ref().map_or(0, |kv| kv.value.len())
}

impl CurrentCache {
    pub fn with_budget(budget: usize) -> Self {
        Self { entries: HashMap::new(), bytes: 0, budget }
    }

    /// `Some(current)` when the key's current state is known here.
    pub fn get(&self, key: &[u8]) -> Option<&Option<KeyValue>> {
        self.entries.get(key)
    }

    /// Records the current state of keys an applied entry wrote (already in the database).
    pub fn record(&mut self, changes: impl IntoIterator<Item = (Vec<u8>, Option<KeyValue>)>) {
        for (key, kv) in changes {
            let added = cost(&key, &kv);
            if let Some(old) = self.entries.insert(key.clone(), kv) {
                self.bytes -= cost(&key, &old);
            }
            self.bytes += added;
        }
        if self.bytes > self.budget {
            self.shrink();
        }
    }

    /// Forgets everything (the database was replaced).
    pub fn clear(&mut self) {
        self.entries = HashMap::new();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops entries until a quarter of the budget is free again. Which ones is left to the map's
    /// (randomly seeded) order: cheaper than tracking recency on every write, and a dropped entry
    /// only costs one database read.
    fn shrink(&mut self) {
        let target = self.budget / 4 * 3;
        let mut bytes = self.bytes;
        self.entries.retain(|key, kv| {
            if bytes <= target {
                return true;
            }
            bytes -= cost(key, kv);
            false
        });
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value_len: usize) -> (Vec<u8>, Option<KeyValue>) {
        let key = key.as_bytes().to_vec();
        (key.clone(), Some(KeyValue { key, value: vec![7; value_len], version: 1, ..Default::default() }))
    }

    #[test]
    fn records_overwrites_and_deletions() {
        let mut c = CurrentCache::default();
        c.record([kv("a", 10)]);
        c.record([kv("a", 20), (b"b".to_vec(), None)]);
        assert_eq!(c.get(b"a").and_then(|v| v.as_ref()).map(|v| v.value.len()), Some(20));
        assert_eq!(c.get(b"b"), Some(&None), "a deleted key is known to be absent");
        assert_eq!(c.get(b"c"), None, "an unknown key is not claimed either way");
        assert_eq!(c.bytes, cost(b"a", &kv("a", 20).1) + cost(b"b", &None), "an overwrite replaces the old cost");
    }

    #[test]
    fn stays_within_its_budget() {
        let budget = 100 * (ENTRY_OVERHEAD + 200);
        let mut c = CurrentCache::with_budget(budget);
        for i in 0..1000 {
            c.record([kv(&format!("k{i:04}"), 190)]);
            assert!(c.bytes <= budget, "after {i} writes: {} bytes over a budget of {budget}", c.bytes);
        }
        assert!(c.len() >= 50, "shrinking keeps three quarters of the budget, kept {}", c.len());
        let counted: usize = c.entries.iter().map(|(k, v)| cost(k, v)).sum();
        assert_eq!(counted, c.bytes, "the byte count matches what is held");
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.bytes, 0);
    }
}
