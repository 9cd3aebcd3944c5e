//! Prometheus metrics of one replica, prefixed `gantry_store_`.
//!
//! Two kinds: instruments updated where things happen (proposal latency, WAL fsync latency,
//! snapshots, the commit index, leader changes), which exist from `Store::open` on and live in
//! `StoreMetrics`; and figures read at scrape time from openraft's metrics watch channel and RocksDB
//! (term, leadership, indexes, revisions, database size), produced by `StoreCollector`.
//! Nothing is registered in prometheus' global default registry: the owner of the replica passes
//! its own registry to `Store::register_metrics`, so several replicas in one process never collide.
//!
//! Must not depend on anything outside this crate but prometheus; knows nothing of HTTP.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::{proto, Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

use crate::mvcc::reader::ReadView;
use crate::store::Store;
use crate::types::NodeId;

type RaftMetrics = openraft::RaftMetrics<NodeId, openraft::BasicNode>;

/// Why registering the store's metrics failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Most likely the registry already holds metrics of this replica (or another one).
    #[error("registering store metric {name}: {source}")]
    Register { name: String, source: prometheus::Error },
}

const PREFIX: &str = "gantry_store_";

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(Opts::new(format!("{PREFIX}{name}"), help))
        .expect("store metric names are constant and valid")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(format!("{PREFIX}{name}"), help)).expect("store metric names are constant and valid")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(format!("{PREFIX}{name}"), help).buckets(buckets))
        .expect("store metric names and buckets are constant and valid")
}

/// `count` buckets from `start`, each twice the previous one.
fn doubling_buckets(start: f64, count: usize) -> Vec<f64> {
    std::iter::successors(Some(start), |b| Some(b * 2.0)).take(count).collect()
}

/// Instruments the replica updates as things happen. Cheap to share; unregistered until
/// `Store::register_metrics`, so a store nobody scrapes pays only for a few atomics.
pub struct StoreMetrics {
    leader_changes: IntCounter,
    proposal_duration: Histogram,
    proposals_failed: IntCounter,
    wal_fsync_duration: Histogram,
    snapshots_built: IntCounter,
    snapshots_installed: IntCounter,
    commit_index: IntGauge,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            leader_changes: counter("leader_changes_total", "Number of leader changes this replica has seen."),
            proposal_duration: histogram(
                "proposal_duration_seconds",
                "Client writes through this replica, from submission to the applied result.",
                // 0.5 ms to about 8 s.
                doubling_buckets(0.0005, 15),
            ),
            proposals_failed: counter(
                "proposals_failed_total",
                "Client writes that failed for want of a leader, a quorum or time (not rejected requests).",
            ),
            wal_fsync_duration: histogram(
                "wal_fsync_duration_seconds",
                "Synced RocksDB writes of the raft log and vote (WAL fsync).",
                // 0.1 ms to about 6.5 s.
                doubling_buckets(0.0001, 17),
            ),
            snapshots_built: counter("snapshots_built_total", "Snapshots this replica built of its state machine."),
            snapshots_installed: counter(
                "snapshots_installed_total",
                "Snapshots received from the leader and installed on this replica.",
            ),
            commit_index: gauge("commit_index", "The raft log index this replica knows to be committed."),
        }
    }
}

impl StoreMetrics {
    pub(crate) fn observe_proposal(&self, took: Duration, failed: bool) {
        self.proposal_duration.observe(took.as_secs_f64());
        if failed {
            self.proposals_failed.inc();
        }
    }

    pub(crate) fn observe_wal_fsync(&self, took: Duration) {
        self.wal_fsync_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn snapshot_built(&self) {
        self.snapshots_built.inc();
    }

    pub(crate) fn snapshot_installed(&self) {
        self.snapshots_installed.inc();
    }

    pub(crate) fn set_commit_index(&self, index: u64) {
        self.commit_index.set(index_to_i64(index));
    }

    fn instruments(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.leader_changes.clone()),
            Box::new(self.proposal_duration.clone()),
            Box::new(self.proposals_failed.clone()),
            Box::new(self.wal_fsync_duration.clone()),
            Box::new(self.snapshots_built.clone()),
            Box::new(self.snapshots_installed.clone()),
            Box::new(self.commit_index.clone()),
        ]
    }
}

fn index_to_i64(index: u64) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

/// The figures read at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreFigures {
    pub term: u64,
    pub is_leader: bool,
    pub has_leader: bool,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub revision: i64,
    pub compact_revision: i64,
    pub db_size_bytes: i64,
}

type ReadFigures = Box<dyn Fn() -> Option<StoreFigures> + Send + Sync>;

/// Produces the scrape-time gauges. Holds the replica only weakly: a registry that outlives its
/// replica (a test restarting one) must not keep the database open; it then reports nothing.
struct StoreCollector {
    read: ReadFigures,
    term: IntGauge,
    is_leader: IntGauge,
    has_leader: IntGauge,
    applied_index: IntGauge,
    last_log_index: IntGauge,
    revision: IntGauge,
    compact_revision: IntGauge,
    db_size: IntGauge,
    descs: Vec<Desc>,
}

impl StoreCollector {
    fn new(read: ReadFigures) -> Self {
        let mut c = Self {
            read,
            term: gauge("term", "The raft term this replica is in."),
            is_leader: gauge("is_leader", "1 if this replica is the leader, else 0."),
            has_leader: gauge("has_leader", "1 if this replica knows of a leader, else 0."),
            applied_index: gauge("applied_index", "The last raft log index applied to the state machine."),
            last_log_index: gauge("last_log_index", "The last raft log index this replica holds."),
            revision: gauge("revision", "The key space revision of the last applied write."),
            compact_revision: gauge("compact_revision", "The revision history is compacted up to."),
            db_size: gauge("db_size_bytes", "Size of the RocksDB database: SST files plus memtables."),
            descs: Vec::new(),
        };
        c.descs = c.gauges().iter().flat_map(|g| g.desc().into_iter().cloned()).collect();
        c
    }

    fn gauges(&self) -> [&IntGauge; 8] {
        [
            &self.term,
            &self.is_leader,
            &self.has_leader,
            &self.applied_index,
            &self.last_log_index,
            &self.revision,
            &self.compact_revision,
            &self.db_size,
        ]
    }

    fn set(&self, f: &StoreFigures) {
        self.term.set(index_to_i64(f.term));
        self.is_leader.set(i64::from(f.is_leader));
        self.has_leader.set(i64::from(f.has_leader));
        self.applied_index.set(index_to_i64(f.applied_index));
        self.last_log_index.set(index_to_i64(f.last_log_index));
        self.revision.set(f.revision);
        self.compact_revision.set(f.compact_revision);
        self.db_size.set(f.db_size_bytes);
    }
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        match (self.read)() {
            Some(figures) => {
                self.set(&figures);
                self.gauges().iter().flat_map(|g| g.collect()).collect()
            }
            None => Vec::new(),
        }
    }
}

fn register_all(registry: &Registry, collectors: Vec<Box<dyn Collector>>) -> Result<(), MetricsError> {
    for c in collectors {
        let name = c.desc().first().map(|d| d.fq_name.clone()).unwrap_or_default();
        registry.register(c).map_err(|source| MetricsError::Register { name, source })?;
    }
    Ok(())
}

/// Whether the metrics show a leadership not seen before, given the last one seen (term, leader).
/// A leader re-elected in a later term is a new leadership; losing the leader is not a change yet.
fn new_leadership(last: Option<(u64, NodeId)>, term: u64, leader: Option<NodeId>) -> Option<(u64, NodeId)> {
    let now = (term, leader?);
    (last != Some(now)).then_some(now)
}

/// Counts leader changes until the raft metrics channel closes (raft shut down).
pub(crate) async fn track_leader_changes(
    mut rx: tokio::sync::watch::Receiver<RaftMetrics>,
    metrics: Arc<StoreMetrics>,
) {
    let mut last = None;
    loop {
        let seen = {
            let m = rx.borrow_and_update();
            new_leadership(last, m.current_term, m.current_leader)
        };
        if let Some(now) = seen {
            last = Some(now);
            metrics.leader_changes.inc();
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl Store {
    /// Registers this replica's `gantry_store_*` metrics in `registry`. Call once per registry.
    pub fn register_metrics(&self, registry: &Registry) -> Result<(), MetricsError> {
        let weak = Arc::downgrade(&self.inner);
        let read: ReadFigures = Box::new(move || weak.upgrade().map(|inner| Store { inner }.figures()));
        let mut collectors = self.inner.metrics.instruments();
        collectors.push(Box::new(StoreCollector::new(read)));
        register_all(registry, collectors)
    }

    /// The scrape-time figures of this replica.
    pub fn figures(&self) -> StoreFigures {
        let status = self.status();
        let compact_revision = ReadView::live(self.db()).compact_revision().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the compact revision for metrics");
            0
        });
        StoreFigures {
            term: status.raft_term,
            is_leader: self.is_leader(),
            has_leader: status.leader.is_some(),
            applied_index: status.raft_applied_index,
            last_log_index: status.raft_index,
            revision: status.revision,
            compact_revision,
            db_size_bytes: status.db_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("utf-8")
    }

    /// The value of the sample line that starts with `series` followed by a space.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn leadership_changes_count_new_leaders_and_terms_only() {
        assert_eq!(new_leadership(None, 1, None), None, "no leader yet");
        assert_eq!(new_leadership(None, 1, Some(2)), Some((1, 2)), "first leader seen");
        assert_eq!(new_leadership(Some((1, 2)), 1, Some(2)), None, "same leadership");
        assert_eq!(new_leadership(Some((1, 2)), 2, None), None, "election under way");
        assert_eq!(new_leadership(Some((1, 2)), 2, Some(2)), Some((2, 2)), "re-elected in a new term");
        assert_eq!(new_leadership(Some((2, 2)), 3, Some(1)), Some((3, 1)), "another node leads");
    }

    #[test]
    fn instruments_render_with_the_store_prefix() {
        let m = StoreMetrics::default();
        let registry = Registry::new();
        register_all(&registry, m.instruments()).expect("register");
        m.observe_proposal(Duration::from_millis(3), false);
        m.observe_proposal(Duration::from_millis(20), true);
        m.observe_wal_fsync(Duration::from_micros(150));
        m.snapshot_built();
        m.snapshot_installed();
        m.snapshot_installed();
        m.set_commit_index(42);
        let text = render(&registry);
        assert_eq!(sample(&text, "gantry_store_proposal_duration_seconds_count"), Some(2.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_proposal_duration_seconds_bucket{le=\"0.004\"}"), Some(1.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_proposals_failed_total"), Some(1.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_wal_fsync_duration_seconds_bucket{le=\"0.0002\"}"), Some(1.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_wal_fsync_duration_seconds_bucket{le=\"0.0001\"}"), Some(0.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_snapshots_built_total"), Some(1.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_snapshots_installed_total"), Some(2.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_commit_index"), Some(42.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_leader_changes_total"), Some(0.0), "{text}");
        assert!(text.contains("# TYPE gantry_store_wal_fsync_duration_seconds histogram"), "{text}");
    }

    #[test]
    fn scrape_time_figures_are_read_at_every_scrape_and_vanish_with_the_replica() {
        let figures = Arc::new(std::sync::Mutex::new(Some(StoreFigures {
            term: 3,
            is_leader: true,
            has_leader: true,
            applied_index: 10,
            last_log_index: 11,
            revision: 7,
            compact_revision: 2,
            db_size_bytes: 4096,
        })));
        let source = figures.clone();
        let registry = Registry::new();
        let read: ReadFigures = Box::new(move || source.lock().expect("lock").clone());
        registry.register(Box::new(StoreCollector::new(read))).expect("register");
        let text = render(&registry);
        for (series, value) in [
            ("gantry_store_term", 3.0),
            ("gantry_store_is_leader", 1.0),
            ("gantry_store_has_leader", 1.0),
            ("gantry_store_applied_index", 10.0),
            ("gantry_store_last_log_index", 11.0),
            ("gantry_store_revision", 7.0),
            ("gantry_store_compact_revision", 2.0),
            ("gantry_store_db_size_bytes", 4096.0),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in {text}");
        }
        if let Some(f) = figures.lock().expect("lock").as_mut() {
            f.is_leader = false;
            f.revision = 8;
        }
        let text = render(&registry);
        assert_eq!(sample(&text, "gantry_store_is_leader"), Some(0.0), "{text}");
        assert_eq!(sample(&text, "gantry_store_revision"), Some(8.0), "{text}");
        *figures.lock().expect("lock") = None;
        assert!(!render(&registry).contains("gantry_store_term"), "a closed replica reports nothing");
    }

    #[test]
    fn registering_twice_in_one_registry_is_an_error_naming_the_metric() {
        let m = StoreMetrics::default();
        let registry = Registry::new();
        register_all(&registry, m.instruments()).expect("first registration");
        let e = register_all(&registry, m.instruments()).expect_err("duplicate");
        assert!(e.to_string().contains("gantry_store_leader_changes_total"), "{e}");
        let other = Registry::new();
        register_all(&other, m.instruments()).expect("another registry (another replica's API) is independent");
    }
}
