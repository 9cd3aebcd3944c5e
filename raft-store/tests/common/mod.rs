//! An in-process cluster of store replicas on loopback port-0 listeners, with partitions made by
//! stopping and restarting a replica's peer server.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raft_store::etcd_api::{ClusterService, KvService, LeaseService, MaintenanceService, WatchService};
use raft_store::network::peer_service::PeerService;
use raft_store::proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use raft_store::proto::raftpb::raft_peer_server::RaftPeerServer;
use raft_store::server::incoming;
use raft_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Replica {
    pub id: u64,
    pub store: Store,
    pub peer_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub data_dir: PathBuf,
    peer_stop: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    client_stop: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub replicas: BTreeMap<u64, Replica>,
    pub initial: BTreeMap<u64, String>,
    pub tune: fn(&mut StoreConfig),
}

pub fn fast(c: &mut StoreConfig) {
    c.heartbeat_interval = Duration::from_millis(50);
    c.election_timeout_min = Duration::from_millis(300);
    c.election_timeout_max = Duration::from_millis(600);
}

/// Serves the peer API until told to stop. Stopping ends the open peer streams too, as a network
/// partition would; the store keeps running.
async fn serve_peer(store: Store, l: TcpListener) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(async move {
        let service = PeerService::new(store).with_stop(stop_rx);
        let _ = tonic::transport::Server::builder()
            .add_service(RaftPeerServer::new(service).max_decoding_message_size(64 << 20))
            .serve_with_incoming_shutdown(incoming(l), async move {
                let _ = rx.await;
                let _ = stop_tx.send(true);
            })
            .await;
    });
    (tx, h)
}

async fn serve_client(store: Store, l: TcpListener) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(KvServer::new(KvService::new(store.clone())))
            .add_service(WatchServer::new(WatchService::new(store.clone(), Duration::from_millis(200))))
            .add_service(LeaseServer::new(LeaseService::new(store.clone())))
            .add_service(ClusterServer::new(ClusterService::new(store.clone())))
            .add_service(MaintenanceServer::new(MaintenanceService::new(store)))
            .serve_with_incoming_shutdown(incoming(l), async {
                let _ = rx.await;
            })
            .await;
    });
    (tx, h)
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

impl TestCluster {
    pub async fn start(n: u64, tune: fn(&mut StoreConfig)) -> TestCluster {
        init_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut peers = BTreeMap::new();
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            let pl = TcpListener::bind("127.0.0.1:0").await.expect("bind peer");
            let cl = TcpListener::bind("127.0.0.1:0").await.expect("bind client");
            peers.insert(id, pl.local_addr().expect("addr").to_string());
            listeners.insert(id, (pl, cl));
        }
        let mut cluster = TestCluster { dir, replicas: BTreeMap::new(), initial: peers, tune };
        for (id, (pl, cl)) in listeners {
            cluster.launch(id, pl, cl, None).await;
        }
        cluster
    }

    fn config(&self, id: u64, join: Option<String>) -> StoreConfig {
        let mut c = StoreConfig::new(id, self.dir.path().join(format!("node-{id}")), self.initial.clone());
        fast(&mut c);
        c.join_peer_addr = join;
        (self.tune)(&mut c);
        c
    }

    async fn launch(&mut self, id: u64, pl: TcpListener, cl: TcpListener, join: Option<String>) {
        let mut config = self.config(id, join);
        let client_addr = cl.local_addr().expect("addr");
        config.client_urls = vec![format!("http://{client_addr}")];
        let data_dir = config.data_dir.clone();
        let peer_addr = pl.local_addr().expect("addr");
        let store = Store::open(config).await.expect("open store");
        let peer_stop = Some(serve_peer(store.clone(), pl).await);
        let client_stop = Some(serve_client(store.clone(), cl).await);
        self.replicas.insert(id, Replica { id, store, peer_addr, client_addr, data_dir, peer_stop, client_stop });
    }

    /// Starts a new replica that joins the cluster (not yet a member: add it as a learner).
    pub async fn launch_joiner(&mut self, id: u64) -> String {
        let pl = TcpListener::bind("127.0.0.1:0").await.expect("bind peer");
        let cl = TcpListener::bind("127.0.0.1:0").await.expect("bind client");
        let addr = pl.local_addr().expect("addr").to_string();
        self.launch(id, pl, cl, Some(addr.clone())).await;
        addr
    }

    pub fn store(&self, id: u64) -> &Store {
        &self.replicas[&id].store
    }

    pub fn endpoint(&self, id: u64) -> String {
        format!("http://{}", self.replicas[&id].client_addr)
    }

    /// Waits until every running replica agrees on one leader.
    pub async fn leader(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let leaders: Vec<Option<u64>> =
                self.replicas.values().filter(|r| r.peer_stop.is_some()).map(|r| r.store.leader()).collect();
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l)) && self.replicas.contains_key(l) && self.store(*l).is_leader()
                {
                    return *l;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no agreed leader within 20s: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The lowest-numbered running replica other than `leader`.
    pub fn follower_of(&self, leader: u64) -> u64 {
        *self.replicas.keys().find(|id| **id != leader).expect("a replica besides the leader")
    }

    /// Cuts a replica off from its peers by stopping its peer server (it keeps serving clients).
    pub async fn partition(&mut self, id: u64) {
        let r = self.replicas.get_mut(&id).expect("replica");
        if let Some((tx, h)) = r.peer_stop.take() {
            let _ = tx.send(());
            let _ = h.await;
        }
    }

    pub async fn heal(&mut self, id: u64) {
        let r = self.replicas.get_mut(&id).expect("replica");
        let l = TcpListener::bind(r.peer_addr).await.expect("rebind peer address");
        r.peer_stop = Some(serve_peer(r.store.clone(), l).await);
    }

    /// Stops a replica entirely (servers and raft).
    pub async fn stop(&mut self, id: u64) -> Replica {
        let mut r = self.replicas.remove(&id).expect("replica");
        r.store.begin_close();
        for (tx, h) in [r.peer_stop.take(), r.client_stop.take()].into_iter().flatten() {
            let _ = tx.send(());
            let _ = h.await;
        }
        r.store.shutdown().await;
        r
    }

    /// Restarts a stopped replica on its old addresses and data.
    pub async fn restart(&mut self, old: Replica) {
        let pl = TcpListener::bind(old.peer_addr).await.expect("rebind peer");
        let cl = TcpListener::bind(old.client_addr).await.expect("rebind client");
        drop(old.store);
        self.launch(old.id, pl, cl, None).await;
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.replicas.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

pub async fn client(endpoint: &str) -> etcd_client::Client {
    etcd_client::Client::connect([endpoint], None).await.expect("connect etcd client")
}
