//! The proxy's sync loop: each new service catalog is rendered into the whole table and the kernel is
//! brought to it in one transaction.
//!
//! When to write what is decided by [`SyncState`] (pure): the first sync, the first after a failure
//! and one every [`FULL_SYNC_PERIOD`] write the whole table ([`script::full`], which also repairs
//! anything changed behind the agent's back); the others send the difference from the table last
//! applied ([`script::diff`]), so an endpoint change costs the same with 10 or 10,000 Services. An
//! unchanged table costs a render and a comparison, no `nft` run. A failed sync is retried with
//! back-off, as a full one.
//!
//! Rules stay in the kernel when the loop stops (traffic keeps flowing while the agent restarts, as
//! with kube-proxy); `--cleanup` deletes the table.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use super::metrics::ProxyMetrics;
use super::model::RuleSet;
use super::nft::{Netfilter, NftError};
use super::render::render;
use super::script;
use crate::events::{EventRecorder, EventType};
use crate::services::ServiceCatalog;

/// How often the whole table is written even when nothing changed.
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(60);
/// First retry delay after a failed sync; doubled per failure up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Reason of the Node event recorded when syncs start failing.
pub const FAILED_REASON: &str = "ServiceProxySyncFailed";

/// What one sync does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The kernel already holds the rules.
    UpToDate,
    /// Read the kernel's objects and write the whole table.
    Full,
    /// Apply this difference.
    Partial(String),
}

/// What the loop knows about the kernel's table.
#[derive(Debug, Default)]
pub struct SyncState {
    /// The rules the kernel holds, if known (unknown before the first sync and after a failure).
    applied: Option<RuleSet>,
    last_full: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl SyncState {
    /// What bringing the kernel to `desired` takes at `now`.
    pub fn step(&self, desired: &RuleSet, now: Instant) -> Step {
        let Some(applied) = &self.applied else { return Step::Full };
        if self.last_full.is_none_or(|t| now.duration_since(t) >= FULL_SYNC_PERIOD) || applied.table != desired.table {
            return Step::Full;
        }
        match script::diff(applied, desired) {
            None => Step::UpToDate,
            Some(script) => Step::Partial(script),
        }
    }

    /// The kernel now holds `desired`; returns whether syncs had been failing.
    pub fn succeeded(&mut self, desired: RuleSet, full: bool, now: Instant) -> bool {
        self.applied = Some(desired);
        if full {
            self.last_full = Some(now);
        }
        self.retry_at = None;
        std::mem::take(&mut self.failures) > 0
    }

    /// A sync failed: the kernel's table is unknown, the next sync is a full one after a back-off.
    /// Returns the back-off and whether this is the first failure in a row.
    pub fn failed(&mut self, now: Instant) -> (Duration, bool) {
        self.applied = None;
        let delay = RETRY_MIN.saturating_mul(1 << self.failures.min(5)).min(RETRY_MAX);
        self.failures += 1;
        self.retry_at = Some(now + delay);
        (delay, self.failures == 1)
    }

    /// When the loop must sync even without a new catalog: a retry, or the next full sync.
    pub fn wake_at(&self) -> Option<Instant> {
        self.retry_at.or_else(|| self.last_full.map(|t| t + FULL_SYNC_PERIOD))
    }
}

/// The proxy of one node.
pub struct Proxy<N: Netfilter> {
    pub netfilter: N,
    /// nft table name ([`super::model::table_name`]).
    pub table: String,
    pub metrics: ProxyMetrics,
    /// Where failures are reported (the Node), when there is an API.
    pub events: Option<(EventRecorder, ObjectReference)>,
}

impl<N: Netfilter> Proxy<N> {
    /// Syncs after every new catalog (and on [`SyncState::wake_at`]) until `shutdown` becomes true or
    /// the catalog feed ends. Nothing is written before the first catalog arrives.
    pub async fn run(
        self,
        mut catalogs: watch::Receiver<Option<Arc<ServiceCatalog>>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut state = SyncState::default();
        let mut catalog = catalogs.borrow_and_update().clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Some(c) = &catalog {
                self.sync(&mut state, c).await;
            }
            let wake = state.wake_at();
            tokio::select! {
                changed = catalogs.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    catalog = catalogs.borrow_and_update().clone();
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
                stopped = shutdown.changed() => {
                    if stopped.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn sync(&self, state: &mut SyncState, catalog: &ServiceCatalog) {
        let started = Instant::now();
        let desired = render(catalog, &self.table);
        let step = state.step(&desired, started);
        let full = match &step {
            Step::UpToDate => return,
            Step::Full => true,
            Step::Partial(_) => false,
        };
        let kind = if full { "full" } else { "partial" };
        let span = tracing::info_span!(
            "proxy_sync",
            table = %self.table,
            kind,
            service_ports = desired.counts.service_ports,
            endpoints = desired.counts.endpoints
        );
        let result = async {
            match step {
                Step::Partial(script) => self.netfilter.apply(script).await,
                _ => {
                    let existing = self.netfilter.objects(&self.table).await?;
                    self.netfilter.apply(script::full(&desired, &existing)).await
                }
            }
        }
        .instrument(span.clone())
        .await;
        let _entered = span.enter();
        match result {
            Ok(()) => {
                let seconds = started.elapsed().as_secs_f64();
                self.metrics.synced(kind, seconds, &desired);
                debug!(seconds, rules = desired.rule_count(), "service proxy rules applied");
                if state.succeeded(desired, full, Instant::now()) {
                    info!("service proxy rules applied again after failures");
                }
            }
            Err(e) => {
                self.metrics.sync_failed();
                let (retry_in, first) = state.failed(Instant::now());
                warn!(error = %e, ?retry_in, "applying the service proxy rules failed");
                if first {
                    self.report(&e);
                }
            }
        }
    }

    fn report(&self, e: &NftError) {
        if let Some((recorder, node)) = &self.events {
            recorder.record_ref(
                node.clone(),
                EventType::Warning,
                FAILED_REASON,
                format!("Service proxy rules of table {} not applied: {e}", self.table),
            );
        }
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
