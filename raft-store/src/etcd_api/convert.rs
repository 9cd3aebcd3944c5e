//! Conversions between the etcd wire messages and the store's own model, with the request checks etcd
//! makes before anything is proposed (empty keys, unknown enum values, sizes).

use prost::Message;

use crate::error::RequestError;
use crate::mvcc::model::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, Event, EventKind, KeyRange, KeyValue, PutRequest,
    RangeRequest, RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};
use crate::proto::{etcdserverpb as pb, mvccpb};

fn invalid(reason: impl Into<String>) -> RequestError {
    RequestError::Invalid { reason: reason.into() }
}

/// Rejects a request whose encoding exceeds the configured limit.
pub fn check_size<M: Message>(msg: &M, limit: usize) -> Result<(), RequestError> {
    let size = msg.encoded_len();
    if size > limit {
        return Err(RequestError::TooLarge { size, limit });
    }
    Ok(())
}

pub fn kv_to_pb(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn event_to_pb(e: Event) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match e.kind {
            EventKind::Put => mvccpb::event::EventType::Put as i32,
            EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(kv_to_pb(e.kv)),
        prev_kv: e.prev_kv.map(kv_to_pb),
    }
}

pub fn range_from_pb(r: pb::RangeRequest) -> Result<RangeRequest, RequestError> {
    if r.key.is_empty() {
        return Err(invalid("key is not provided"));
    }
    let sort_order = match pb::range_request::SortOrder::try_from(r.sort_order) {
        Ok(pb::range_request::SortOrder::None) => SortOrder::None,
        Ok(pb::range_request::SortOrder::Ascend) => SortOrder::Ascend,
        Ok(pb::range_request::SortOrder::Descend) => SortOrder::Descend,
        Err(_) => return Err(invalid(format!("invalid sort option {}", r.sort_order))),
    };
    let sort_target = match pb::range_request::SortTarget::try_from(r.sort_target) {
        Ok(pb::range_request::SortTarget::Key) => SortTarget::Key,
        Ok(pb::range_request::SortTarget::Version) => SortTarget::Version,
        Ok(pb::range_request::SortTarget::Create) => SortTarget::Create,
        Ok(pb::range_request::SortTarget::Mod) => SortTarget::Mod,
        Ok(pb::range_request::SortTarget::Value) => SortTarget::Value,
        Err(_) => return Err(invalid(format!("invalid sort target {}", r.sort_target))),
    };
    if r.limit < 0 {
        return Err(invalid(format!("negative limit {}", r.limit)));
    }
    Ok(RangeRequest {
        range: KeyRange::new(r.key, r.range_end),
        revision: r.revision,
        limit: r.limit,
        keys_only: r.keys_only,
        count_only: r.count_only,
        sort_order,
        sort_target,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

pub fn range_resp_to_pb(r: crate::mvcc::model::RangeResponse, header: pb::ResponseHeader) -> pb::RangeResponse {
    pb::RangeResponse {
        header: Some(header),
        kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_from_pb(p: pb::PutRequest) -> Result<PutRequest, RequestError> {
    if p.key.is_empty() {
        return Err(invalid("key is not provided"));
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(invalid("value is provided with ignore_value"));
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(invalid("lease is provided with ignore_lease"));
    }
    Ok(PutRequest {
        key: p.key,
        value: p.value,
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    })
}

pub fn delete_from_pb(d: pb::DeleteRangeRequest) -> Result<DeleteRangeRequest, RequestError> {
    if d.key.is_empty() {
        return Err(invalid("key is not provided"));
    }
    Ok(DeleteRangeRequest { range: KeyRange::new(d.key, d.range_end), prev_kv: d.prev_kv })
}

fn compare_from_pb(c: pb::Compare) -> Result<Compare, RequestError> {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    if c.key.is_empty() {
        return Err(invalid("compare key is not provided"));
    }
    let result = match R::try_from(c.result) {
        Ok(R::Equal) => CompareResult::Equal,
        Ok(R::Greater) => CompareResult::Greater,
        Ok(R::Less) => CompareResult::Less,
        Ok(R::NotEqual) => CompareResult::NotEqual,
        Err(_) => return Err(invalid(format!("invalid compare result {}", c.result))),
    };
    // proto3: an unset operand is the zero value.
    let int = match &c.target_union {
        Some(U::Version(v)) | Some(U::CreateRevision(v)) | Some(U::ModRevision(v)) | Some(U::Lease(v)) => *v,
        _ => 0,
    };
    let target = match T::try_from(c.target) {
        Ok(T::Version) => CompareTarget::Version(int),
        Ok(T::Create) => CompareTarget::Create(int),
        Ok(T::Mod) => CompareTarget::Mod(int),
        Ok(T::Lease) => CompareTarget::Lease(int),
        Ok(T::Value) => CompareTarget::Value(match c.target_union {
            Some(U::Value(v)) => v,
            _ => Vec::new(),
        }),
        Err(_) => return Err(invalid(format!("invalid compare target {}", c.target))),
    };
    Ok(Compare { range: KeyRange::new(c.key, c.range_end), result, target })
}

fn op_from_pb(op: pb::RequestOp) -> Result<RequestOp, RequestError> {
    use pb::request_op::Request as R;
    match op.request {
        Some(R::RequestRange(r)) => Ok(RequestOp::Range(range_from_pb(r)?)),
        Some(R::RequestPut(p)) => Ok(RequestOp::Put(put_from_pb(p)?)),
        Some(R::RequestDeleteRange(d)) => Ok(RequestOp::DeleteRange(delete_from_pb(d)?)),
        Some(R::RequestTxn(t)) => Ok(RequestOp::Txn(txn_from_pb(t)?)),
        None => Err(invalid("request op has no request")),
    }
}

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

pub fn txn_from_pb(t: pb::TxnRequest) -> Result<TxnRequest, RequestError> {
    if t.compare.len() > MAX_TXN_OPS || t.success.len() > MAX_TXN_OPS || t.failure.len() > MAX_TXN_OPS {
        return Err(invalid(format!("too many operations in txn request (limit {MAX_TXN_OPS})")));
    }
    Ok(TxnRequest {
        compare: t.compare.into_iter().map(compare_from_pb).collect::<Result<_, _>>()?,
        success: t.success.into_iter().map(op_from_pb).collect::<Result<_, _>>()?,
        failure: t.failure.into_iter().map(op_from_pb).collect::<Result<_, _>>()?,
    })
}

pub fn txn_resp_to_pb(t: TxnResponse, header: &pb::ResponseHeader) -> pb::TxnResponse {
    use pb::response_op::Response as R;
    let responses = t
        .responses
        .into_iter()
        .map(|r| pb::ResponseOp {
            response: Some(match r {
                ResponseOp::Range(r) => R::ResponseRange(range_resp_to_pb(r, *header)),
                ResponseOp::Put(p) => {
                    R::ResponsePut(pb::PutResponse { header: Some(*header), prev_kv: p.prev_kv.map(kv_to_pb) })
                }
                ResponseOp::DeleteRange(d) => R::ResponseDeleteRange(pb::DeleteRangeResponse {
                    header: Some(*header),
                    deleted: d.deleted,
                    prev_kvs: d.prev_kvs.into_iter().map(kv_to_pb).collect(),
                }),
                ResponseOp::Txn(t) => R::ResponseTxn(txn_resp_to_pb(t, header)),
            }),
        })
        .collect();
    pb::TxnResponse { header: Some(*header), succeeded: t.succeeded, responses }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_keys_and_bad_enums_are_rejected() {
        assert!(range_from_pb(pb::RangeRequest::default()).is_err());
        let bad_sort = pb::RangeRequest { key: b"a".to_vec(), sort_order: 9, ..Default::default() };
        assert!(range_from_pb(bad_sort).is_err());
        assert!(put_from_pb(pb::PutRequest::default()).is_err());
        let bad_cmp = pb::TxnRequest {
            compare: vec![pb::Compare { key: b"k".to_vec(), target: 42, ..Default::default() }],
            ..Default::default()
        };
        assert!(txn_from_pb(bad_cmp).is_err());
    }

    #[test]
    fn compare_operands_map_to_targets() {
        use pb::compare::{CompareTarget as T, TargetUnion as U};
        let c = pb::Compare {
            key: b"k".to_vec(),
            target: T::Mod as i32,
            target_union: Some(U::ModRevision(7)),
            ..Default::default()
        };
        let t = txn_from_pb(pb::TxnRequest { compare: vec![c], ..Default::default() }).expect("valid");
        assert_eq!(t.compare[0].target, CompareTarget::Mod(7));
    }

    #[test]
    fn size_limit() {
        let p = pb::PutRequest { key: b"k".to_vec(), value: vec![0; 2000], ..Default::default() };
        assert!(matches!(check_size(&p, 1024), Err(RequestError::TooLarge { .. })));
        assert!(check_size(&p, 4096).is_ok());
    }
}
