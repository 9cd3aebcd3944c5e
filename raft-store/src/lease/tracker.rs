//! Lease expiry timing. Leases themselves (id, granted TTL, attached keys) are replicated state; when
//! each one expires is not: like etcd, only the leader's clock counts. Every replica tracks deadlines,
//! and a replica that becomes leader restarts every deadline at a full TTL, so a leader change never
//! expires a lease early. Expired leases are revoked through Raft by the leader.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::mvcc::encoding::LeaseRecord;

#[derive(Debug, Clone, Copy)]
struct Deadline {
    ttl: i64,
    expires: Instant,
}

#[derive(Debug, Default)]
pub struct LeaseTracker {
    leases: Mutex<HashMap<i64, Deadline>>,
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

impl LeaseTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Deadline>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn granted(&self, rec: &LeaseRecord, now: Instant) {
        self.lock().insert(rec.id, Deadline { ttl: rec.ttl, expires: now + ttl_duration(rec.ttl) });
    }

    pub fn revoked(&self, id: i64) {
        self.lock().remove(&id);
    }

    /// Replaces everything (after a snapshot install or at start-up).
    pub fn reload(&self, records: &[LeaseRecord], now: Instant) {
        let mut map = self.lock();
        map.clear();
        for r in records {
            map.insert(r.id, Deadline { ttl: r.ttl, expires: now + ttl_duration(r.ttl) });
        }
    }

    /// Every lease gets a full TTL from now (a new leader's grace period).
    pub fn refresh_all(&self, now: Instant) {
        for d in self.lock().values_mut() {
            d.expires = now + ttl_duration(d.ttl);
        }
    }

    /// Renews a lease; returns its TTL, or `None` if unknown.
    pub fn keep_alive(&self, id: i64, now: Instant) -> Option<i64> {
        let mut map = self.lock();
        let d = map.get_mut(&id)?;
        d.expires = now + ttl_duration(d.ttl);
        Some(d.ttl)
    }

    /// (remaining seconds, granted TTL) of a lease.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<(i64, i64)> {
        let map = self.lock();
        let d = map.get(&id)?;
        let left = d.expires.saturating_duration_since(now);
        Some((left.as_secs_f64().ceil() as i64, d.ttl))
    }

    pub fn expired(&self, now: Instant) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().iter().filter(|(_, d)| d.expires <= now).map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids
    }

    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_postpones_expiry_and_refresh_restarts_ttl() {
        let t = LeaseTracker::default();
        let t0 = Instant::now();
        t.granted(&LeaseRecord { id: 7, ttl: 10 }, t0);
        assert!(t.expired(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(t.expired(t0 + Duration::from_secs(10)), vec![7]);
        assert_eq!(t.keep_alive(7, t0 + Duration::from_secs(8)), Some(10));
        assert!(t.expired(t0 + Duration::from_secs(17)).is_empty());
        t.refresh_all(t0 + Duration::from_secs(30));
        assert!(t.expired(t0 + Duration::from_secs(39)).is_empty());
        assert_eq!(t.remaining(7, t0 + Duration::from_secs(35)), Some((5, 10)));
        t.revoked(7);
        assert_eq!(t.keep_alive(7, t0), None);
    }
}
