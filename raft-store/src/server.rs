//! Serving a replica: the Raft peer service on one listener and the etcd client API on another, until
//! `shutdown` resolves. Listeners are passed in so tests bind port 0 and callers choose addresses.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::error::StoreError;
use crate::etcd_api::{ClusterService, KvService, LeaseService, MaintenanceService, WatchService};
use crate::network::peer_client::MAX_PEER_MESSAGE;
use crate::network::peer_service::PeerService;
use crate::proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::proto::raftpb::raft_peer_server::RaftPeerServer;
use crate::store::Store;

/// gRPC framing allowance on top of the request-size limit (etcd allows the same).
const GRPC_OVERHEAD: usize = 512 * 1024;

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How often watches created with `progress_notify` get a progress response.
    pub progress_notify_interval: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { progress_notify_interval: Duration::from_secs(600) }
    }
}

/// Accepted connections with Nagle's algorithm off: HTTP/2 writes headers, data and trailers separately,
/// and with Nagle on, a response can sit behind a 40 ms delayed ACK.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves the peer and client APIs of `store` until `shutdown` resolves, then shuts the store down.
/// If the Raft core stops on its own first (see [`crate::core_watch`]), the same happens and the
/// result is an error naming why.
pub async fn run(
    store: Store,
    peer_listener: TcpListener,
    client_listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let closing = store.clone();
    let failure = std::sync::Arc::new(std::sync::OnceLock::new());
    let failed = failure.clone();
    let metrics = store.raft().metrics();
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {}
            reason = crate::core_watch::core_failure(metrics) => {
                tracing::error!(%reason, "the raft core stopped; shutting the replica down");
                let _ = failed.set(reason);
            }
        }
        // End watch and keep-alive streams first, so the servers' graceful drain can finish.
        closing.begin_close();
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    let peer = Server::builder()
        .tcp_nodelay(true)
        .add_service(
            RaftPeerServer::new(PeerService::new(store.clone()))
                .max_decoding_message_size(MAX_PEER_MESSAGE)
                .max_encoding_message_size(MAX_PEER_MESSAGE),
        )
        .serve_with_incoming_shutdown(incoming(peer_listener), stopped(stop_rx.clone()));

    let limit = store.config().max_request_bytes + GRPC_OVERHEAD;
    let client = Server::builder()
        .tcp_nodelay(true)
        .add_service(KvServer::new(KvService::new(store.clone())).max_decoding_message_size(limit))
        .add_service(
            WatchServer::new(WatchService::new(store.clone(), options.progress_notify_interval))
                .max_decoding_message_size(limit),
        )
        .add_service(LeaseServer::new(LeaseService::new(store.clone())).max_decoding_message_size(limit))
        .add_service(ClusterServer::new(ClusterService::new(store.clone())).max_decoding_message_size(limit))
        .add_service(MaintenanceServer::new(MaintenanceService::new(store.clone())).max_decoding_message_size(limit))
        .serve_with_incoming_shutdown(incoming(client_listener), stopped(stop_rx.clone()));

    let drained = async { tokio::join!(peer, client) };
    tokio::pin!(drained);
    let (p, c) = tokio::select! {
        r = &mut drained => r,
        // Clients that keep requests open past the grace period are cut off.
        _ = async {
            let mut rx = stop_rx.clone();
            let _ = rx.wait_for(|v| *v).await;
            tokio::time::sleep(DRAIN_GRACE).await;
        } => {
            tracing::warn!("connections still open after {DRAIN_GRACE:?}; closing them");
            (Ok(()), Ok(()))
        }
    };
    store.shutdown().await;
    if let Some(reason) = failure.get() {
        return Err(StoreError::Raft(format!("the raft core stopped ({reason}); this replica cannot serve")));
    }
    p.map_err(|e| StoreError::Raft(format!("peer server: {e}")))?;
    c.map_err(|e| StoreError::Raft(format!("client server: {e}")))?;
    Ok(())
}
