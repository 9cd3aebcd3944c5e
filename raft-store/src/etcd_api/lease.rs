//! The etcd `Lease` service.

use std::pin::Pin;

use futures::Stream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::errors::to_status;
use super::header::Header;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::store::Store;

/// etcd's `MaxLeaseTTL`.
const MAX_LEASE_TTL: i64 = 9_000_000_000;

pub struct LeaseService {
    store: Store,
    header: Header,
}

impl LeaseService {
    pub fn new(store: Store) -> Self {
        Self { header: Header::new(store.clone()), store }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let req = req.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(Status::out_of_range("etcdserver: too large lease TTL"));
        }
        if req.id < 0 {
            return Err(Status::invalid_argument("etcdserver: lease id must be positive"));
        }
        let (id, ttl, revision) = self.store.lease_grant(req.id, req.ttl).await.map_err(to_status)?;
        Ok(Response::new(pb::LeaseGrantResponse {
            header: Some(self.header.at(revision)),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let revision = self.store.lease_revoke(req.into_inner().id).await.map_err(to_status)?;
        Ok(Response::new(pb::LeaseRevokeResponse { header: Some(self.header.at(revision)) }))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut incoming = req.into_inner();
        let store = self.store.clone();
        let header = self.header.clone();
        let out = async_stream(move |tx| async move {
            let closed = store.closed();
            tokio::pin!(closed);
            loop {
                let msg = tokio::select! {
                    m = incoming.next() => m,
                    _ = &mut closed => return,
                };
                let msg = match msg {
                    Some(Ok(m)) => m,
                    _ => return,
                };
                let resp = match store.lease_keep_alive(msg.id).await {
                    // An unknown lease is answered with TTL 0, as etcd does.
                    Ok(ttl) => {
                        Ok(pb::LeaseKeepAliveResponse { header: Some(header.now()), id: msg.id, ttl: ttl.unwrap_or(0) })
                    }
                    Err(e) => Err(to_status(e)),
                };
                let failed = resp.is_err();
                if tx.send(resp).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(out))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let req = req.into_inner();
        let found = self.store.lease_time_to_live(req.id).await.map_err(to_status)?;
        let resp = match found {
            Some((left, granted, keys)) => pb::LeaseTimeToLiveResponse {
                header: Some(self.header.now()),
                id: req.id,
                ttl: left,
                granted_ttl: granted,
                keys: if req.keys { keys } else { Vec::new() },
            },
            // etcd answers an unknown lease with TTL -1.
            None => pb::LeaseTimeToLiveResponse {
                header: Some(self.header.now()),
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let ids = self.store.lease_ids().await.map_err(to_status)?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(self.header.now()),
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}

/// A response stream fed by a task through a bounded channel.
pub fn async_stream<T, F, Fut>(body: F) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
