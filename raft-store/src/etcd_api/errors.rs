//! Mapping store errors to gRPC statuses with etcd's exact messages: stock clients (Go's clientv3
//! included) recognise errors by these strings, e.g. "etcdserver: mvcc: required revision has been
//! compacted".

use tonic::Status;

use crate::error::{RequestError, StoreError};

pub fn to_status(e: StoreError) -> Status {
    match e {
        StoreError::Request(r) => request_status(r),
        StoreError::NoLeader => Status::unavailable("etcdserver: no leader"),
        StoreError::Timeout(what) => Status::unavailable(format!("etcdserver: request timed out ({what})")),
        StoreError::ShuttingDown => Status::unavailable("etcdserver: server stopped"),
        StoreError::Peer { node_id, addr, reason } | StoreError::PeerUnreachable { node_id, addr, reason } => {
            Status::unavailable(format!("etcdserver: leader {node_id} at {addr} unreachable: {reason}"))
        }
        other => Status::internal(format!("etcdserver: {other}")),
    }
}

pub fn request_status(r: RequestError) -> Status {
    match r {
        RequestError::Compacted { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
        }
        RequestError::FutureRevision { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
        }
        RequestError::KeyNotFound { .. } => Status::invalid_argument("etcdserver: key not found"),
        RequestError::LeaseNotFound { .. } => Status::not_found("etcdserver: requested lease not found"),
        RequestError::LeaseExists { .. } => Status::failed_precondition("etcdserver: lease already exists"),
        RequestError::DuplicateKey { .. } => Status::invalid_argument("etcdserver: duplicate key given in txn request"),
        RequestError::TooLarge { size, limit } => {
            Status::invalid_argument(format!("etcdserver: request is too large ({size} bytes, limit {limit} bytes)"))
        }
        RequestError::Invalid { reason } => Status::invalid_argument(format!("etcdserver: {reason}")),
        RequestError::MemberNotFound { .. } => Status::not_found("etcdserver: member not found"),
    }
}
