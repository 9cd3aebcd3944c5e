//! The etcd `KV` service.

use tonic::{Request, Response, Status};

use super::convert::{
    check_size, delete_from_pb, put_from_pb, range_from_pb, range_resp_to_pb, txn_from_pb, txn_resp_to_pb,
};
use super::errors::{request_status, to_status};
use super::header::Header;
use crate::error::StoreError;
use crate::mvcc::model::{RequestOp, ResponseOp, TxnRequest, TxnResponse};
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::store::{Store, WriteAck};

pub struct KvService {
    store: Store,
    header: Header,
}

impl KvService {
    pub fn new(store: Store) -> Self {
        Self { header: Header::new(store.clone()), store }
    }

    /// Writes of etcd clients are acknowledged once the leader has applied them; this replica's
    /// read fence keeps each client's own writes visible to it here (see `WriteAck::Leader`).
    async fn txn(&self, req: TxnRequest) -> Result<(TxnResponse, i64), StoreError> {
        self.store.txn_with_ack(req, WriteAck::Leader).await
    }

    fn limit(&self) -> usize {
        self.store.config().max_request_bytes
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn range(&self, req: Request<pb::RangeRequest>) -> Result<Response<pb::RangeResponse>, Status> {
        let req = req.into_inner();
        let serializable = req.serializable;
        let range = range_from_pb(req).map_err(request_status)?;
        let (resp, revision) = self.store.range(range, serializable).await.map_err(to_status)?;
        Ok(Response::new(range_resp_to_pb(resp, self.header.at(revision))))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        check_size(&req, self.limit()).map_err(request_status)?;
        let put = put_from_pb(req).map_err(request_status)?;
        let (mut t, revision) = self.txn(TxnRequest::ops(vec![RequestOp::Put(put)])).await.map_err(to_status)?;
        let prev_kv = match t.responses.pop() {
            Some(ResponseOp::Put(p)) => p.prev_kv.map(super::convert::kv_to_pb),
            _ => None,
        };
        Ok(Response::new(pb::PutResponse { header: Some(self.header.at(revision)), prev_kv }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let req = req.into_inner();
        check_size(&req, self.limit()).map_err(request_status)?;
        let del = delete_from_pb(req).map_err(request_status)?;
        let (mut t, revision) =
            self.txn(TxnRequest::ops(vec![RequestOp::DeleteRange(del)])).await.map_err(to_status)?;
        let (deleted, prev_kvs) = match t.responses.pop() {
            Some(ResponseOp::DeleteRange(d)) => {
                (d.deleted, d.prev_kvs.into_iter().map(super::convert::kv_to_pb).collect())
            }
            _ => (0, Vec::new()),
        };
        Ok(Response::new(pb::DeleteRangeResponse { header: Some(self.header.at(revision)), deleted, prev_kvs }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let req = req.into_inner();
        check_size(&req, self.limit()).map_err(request_status)?;
        let txn = txn_from_pb(req).map_err(request_status)?;
        let (t, revision) = self.txn(txn).await.map_err(to_status)?;
        Ok(Response::new(txn_resp_to_pb(t, &self.header.at(revision))))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn compact(&self, req: Request<pb::CompactionRequest>) -> Result<Response<pb::CompactionResponse>, Status> {
        let req = req.into_inner();
        let revision = self.store.compact(req.revision).await.map_err(to_status)?;
        Ok(Response::new(pb::CompactionResponse { header: Some(self.header.at(revision)) }))
    }
}
