//! `Store`: one replica of the replicated store, and the handle every caller (the etcd API, the
//! Kubernetes API, tests) uses. Opening it checks the data directory, opens RocksDB, starts openraft
//! and the replica's background duties; the gRPC servers are started separately (`server::run`).

use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use rocksdb::DB;
use tokio::task::JoinHandle;

use super::identity::{check_or_init, cluster_id, DB_DIR};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::lease::tracker::LeaseTracker;
use crate::metrics::StoreMetrics;
use crate::mvcc::reader::ReadView;
use crate::network::peer_client::{NetworkFactory, PeerChannels};
use crate::storage::db::open_db;
use crate::storage::log_store::RocksLogStore;
use crate::storage::state_machine::{RocksStateMachine, StateMachineShared};
use crate::types::{NodeId, Raft};
use crate::watch::hub::WatchHub;

pub(crate) struct Inner {
    pub config: StoreConfig,
    pub cluster_id: u64,
    pub raft: Raft,
    pub db: Arc<DB>,
    pub hub: Arc<WatchHub>,
    pub leases: Arc<LeaseTracker>,
    pub channels: PeerChannels,
    pub tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Read-index rounds, shared by all linearizable reads through this replica.
    pub reads: super::read_batcher::RoundBatcher<u64, ReadIndexError>,
    /// Transactions waiting to be proposed together.
    pub writes: super::write_batcher::WriteQueue,
    /// Flipped to true when the replica starts shutting down; long-lived client streams end on it.
    pub closing: tokio::sync::watch::Sender<bool>,
    pub metrics: Arc<StoreMetrics>,
}

/// Why a read-index round failed (cloneable, so one failure answers every read in the round).
#[derive(Clone, Debug)]
pub(crate) struct ReadIndexError(pub String);

impl From<super::read_batcher::Dropped> for ReadIndexError {
    fn from(_: super::read_batcher::Dropped) -> Self {
        ReadIndexError("read-index round was abandoned".into())
    }
}

/// A running replica. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl Store {
    /// Opens the replica described by `config` and starts Raft. A new data directory bootstraps the
    /// initial cluster; an existing one rejoins with the state it holds.
    pub async fn open(config: StoreConfig) -> Result<Store, StoreError> {
        config.validate()?;
        let fresh = check_or_init(&config.data_dir, config.node_id, &config.initial_cluster)?;
        let db = open_db(&config.data_dir.join(DB_DIR))?;
        let hub = Arc::new(WatchHub::new(ReadView::live(&db).revision()?));
        let leases = Arc::new(LeaseTracker::default());
        let shared = StateMachineShared {
            db: db.clone(),
            hub: hub.clone(),
            leases: leases.clone(),
            snapshot_dir: config.data_dir.join("snapshots"),
        };
        let metrics = Arc::new(StoreMetrics::default());
        let sm = RocksStateMachine::open(shared)?.with_metrics(metrics.clone());
        let log = RocksLogStore::with_metrics(db.clone(), metrics.clone());
        let channels = PeerChannels::default();
        let raft_config = Config {
            cluster_name: format!("gantry-{:016x}", cluster_id(&config.initial_cluster)),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: config.election_timeout_min.as_millis() as u64,
            election_timeout_max: config.election_timeout_max.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: config.keep_entries_after_snapshot,
            snapshot_max_chunk_size: 1 << 20,
            max_payload_entries: 512,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().map_err(|e| StoreError::Config(e.to_string()))?);
        let raft = Raft::new(config.node_id, raft_config, NetworkFactory { channels: channels.clone() }, log, sm)
            .await
            .map_err(|e| StoreError::Raft(format!("cannot start raft: {e}")))?;
        if fresh && config.join_peer_addr.is_none() {
            let members: std::collections::BTreeMap<NodeId, BasicNode> =
                config.initial_cluster.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
            // Every initial member initialises with the same membership; openraft makes that safe.
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "cluster already initialised");
            }
        }
        let store = Store {
            inner: Arc::new(Inner {
                cluster_id: cluster_id(&config.initial_cluster),
                config,
                raft,
                db,
                hub,
                leases,
                channels,
                tasks: std::sync::Mutex::new(Vec::new()),
                reads: Default::default(),
                writes: Default::default(),
                closing: tokio::sync::watch::channel(false).0,
                metrics,
            }),
        };
        store.spawn_duties();
        Ok(store)
    }

    /// Tells long-lived client streams (watches, lease keep-alives) to end, so servers can drain.
    pub fn begin_close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once `begin_close` has been called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Stops Raft and the background duties. The data directory stays consistent at any point, so
    /// this is about being polite to peers, not about safety.
    pub async fn shutdown(&self) {
        self.begin_close();
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            t.abort();
        }
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        if let Err(e) = self.inner.db.flush_wal(true) {
            tracing::warn!(error = %e, "final wal sync");
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub(crate) fn db(&self) -> &Arc<DB> {
        &self.inner.db
    }

    pub(crate) fn hub(&self) -> &Arc<WatchHub> {
        &self.inner.hub
    }

    /// The leader this replica currently knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id())
    }

    /// Resolves once this replica's leadership is `leader` (at once if it already is). A replica
    /// that is shutting down never resolves a wait for `true`.
    pub async fn wait_leadership(&self, leader: bool) {
        let mut metrics = self.inner.raft.metrics();
        let me = self.node_id();
        loop {
            let now = {
                let m = metrics.borrow_and_update();
                m.state == ServerState::Leader && m.current_leader == Some(me)
            };
            if now == leader {
                return;
            }
            if metrics.changed().await.is_err() {
                // Raft stopped: this replica leads nothing any more.
                if !leader {
                    return;
                }
                std::future::pending::<()>().await;
            }
        }
    }

    pub fn term(&self) -> u64 {
        self.inner.raft.metrics().borrow().current_term
    }

    /// The revision of the last applied write on this replica.
    pub fn revision(&self) -> i64 {
        self.inner.hub.revision()
    }

    /// Waits until some leader is known, returning its id and peer address.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(NodeId, String), StoreError> {
        let mut rx = self.inner.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let m = rx.borrow_and_update();
                if let Some(leader) = m.current_leader {
                    if let Some(node) = m.membership_config.membership().get_node(&leader) {
                        return Ok((leader, node.addr.clone()));
                    }
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(StoreError::ShuttingDown),
                Err(_) => return Err(StoreError::NoLeader),
            }
        }
    }

    pub(crate) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut);
        self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(handle);
    }
}
