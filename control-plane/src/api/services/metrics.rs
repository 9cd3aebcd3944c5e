//! Prometheus metrics of Service allocation (`gantry_service_allocator_`): values reserved and
//! released by pool, picked values found taken (each one a retried transaction), refused requests
//! by reason, and what the repair pass found and fixed.
//!
//! Must not depend on the store or the HTTP layer.

use prometheus::{IntCounterVec, Opts, Registry};

use super::allocation::{Origin, Pool, WritePlan};

/// The counters, cheap to clone (they share their values).
#[derive(Clone)]
pub struct AllocatorMetrics {
    allocations: IntCounterVec,
    releases: IntCounterVec,
    collisions: IntCounterVec,
    errors: IntCounterVec,
    repairs: IntCounterVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

impl AllocatorMetrics {
    /// Creates the counters without registering them.
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            allocations: counter(
                "gantry_service_allocator_allocations_total",
                "Cluster IPs and node ports reserved, by pool and whether the user asked for the value.",
                &["pool", "origin"],
            )?,
            releases: counter(
                "gantry_service_allocator_releases_total",
                "Cluster IPs and node ports released by Service updates and deletes, by pool.",
                &["pool"],
            )?,
            collisions: counter(
                "gantry_service_allocator_collisions_total",
                "Picked values found reserved already (each one retries the write with another).",
                &["pool"],
            )?,
            errors: counter(
                "gantry_service_allocator_errors_total",
                "Service writes refused by allocation, by reason: taken (a requested value is held by another \
                 Service), invalid (out of range, IP family), full.",
                &["reason"],
            )?,
            repairs: counter(
                "gantry_service_allocator_repairs_total",
                "What the repair pass found: leaked reservations released, missing ones restored, values held \
                 by several Services, values outside the range.",
                &["action"],
            )?,
        })
    }

    /// Creates the counters and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self::unregistered()?;
        for c in [&m.allocations, &m.releases, &m.collisions, &m.errors, &m.repairs] {
            registry.register(Box::new(c.clone()))?;
        }
        Ok(m)
    }

    pub fn committed(&self, plan: &WritePlan) {
        for c in &plan.reserve {
            let origin = if matches!(c.origin, Origin::Picked) { "dynamic" } else { "requested" };
            self.allocations.with_label_values(&[c.resource.pool().label(), origin]).inc();
        }
        for r in &plan.release {
            self.released(r.pool());
        }
    }

    pub fn released(&self, pool: Pool) {
        self.releases.with_label_values(&[pool.label()]).inc();
    }

    pub fn collision(&self, pool: Pool) {
        self.collisions.with_label_values(&[pool.label()]).inc();
    }

    pub fn refused(&self, reason: &str) {
        self.errors.with_label_values(&[reason]).inc();
    }

    pub fn repaired(&self, action: &str, n: usize) {
        self.repairs.with_label_values(&[action]).inc_by(n as u64);
    }
}
