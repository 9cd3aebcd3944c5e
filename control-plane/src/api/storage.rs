//! Kubernetes objects in the replicated store: JSON values under `/registry/<group>/<resource>/...`,
//! with `metadata.resourceVersion` taken from the key's mod revision (never stored). Creates, updates
//! and deletes are compare-and-swap transactions, so concurrent writers through any replica get 409s,
//! never lost updates.
//!
//! Services are written through `services::ServiceAllocator`, which reserves and releases their
//! cluster IPs and node ports in the same transaction, whichever path writes them (requests, deletion,
//! namespace cleanup, finalizers).
//!
//! Knows nothing of HTTP; policy (defaulting, validation, who may change what) is the handlers'.

use raft_store::mvcc::model::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyRange, KeyValue, PutRequest, RangeRequest, RequestOp,
    ResponseOp, TxnRequest,
};
use raft_store::watch::watcher::{WatchSpec, Watcher};
use raft_store::Store;
use serde_json::{json, Value};

use super::resources::ResourceDef;
use super::services::{self, ServiceAllocator};
use super::status::ApiError;

/// A page of a list.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Value>,
    /// Store revision the page was read at.
    pub revision: i64,
    /// Key to continue from, when more items remain.
    pub next_key: Option<String>,
}

/// How a list reads the store.
#[derive(Debug, Clone, Default)]
pub struct ListRead {
    /// Read at this revision (0: latest).
    pub revision: i64,
    /// Start at this key (inclusive), for `continue`.
    pub start_key: Option<String>,
    /// Stop after this many matching items (0: all).
    pub limit: usize,
    /// Serve from this replica's applied state without a quorum check.
    pub serializable: bool,
}

#[derive(Clone)]
pub struct ObjectStore {
    store: Store,
    cache: std::sync::Arc<super::cache::WatchCache>,
    services: std::sync::Arc<ServiceAllocator>,
}

fn decode(def: &ResourceDef, kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!("stored {} at {} is not JSON: {e}", def.kind, String::from_utf8_lossy(&kv.key)))
    })?;
    set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}

/// Sets `metadata.resourceVersion` to `revision`.
pub fn set_resource_version(v: &mut Value, revision: i64) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
    }
}

/// The stored bytes of an object (without its resourceVersion).
pub(crate) fn encode(v: &Value) -> Vec<u8> {
    let mut stored = v.clone();
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&stored).unwrap_or_default()
}

fn key_compare(key: &str, target: CompareTarget) -> Compare {
    Compare { range: KeyRange::single(key.as_bytes().to_vec()), result: CompareResult::Equal, target }
}

impl ObjectStore {
    /// Objects in `store`, Services allocated from the default ranges.
    pub fn new(store: Store) -> Self {
        Self::with_services(store, Default::default())
    }

    /// Objects in `store`, Services allocated by `services`.
    pub fn with_services(store: Store, services: std::sync::Arc<ServiceAllocator>) -> Self {
        Self { store, cache: Default::default(), services }
    }

    /// The allocator Service writes go through.
    pub fn services(&self) -> &std::sync::Arc<ServiceAllocator> {
        &self.services
    }

    /// The object and its mod revision, read linearizably; `None` when absent.
    async fn get_with_revision(&self, def: &ResourceDef, key: &str) -> Result<Option<(Value, i64)>, ApiError> {
        let req = RangeRequest { range: KeyRange::single(key.as_bytes().to_vec()), ..Default::default() };
        let (resp, _) = self.store.range(req, false).await?;
        resp.kvs.first().map(|kv| Ok((decode(def, kv)?, kv.mod_revision))).transpose()
    }

    /// What a write of `obj` over `current` (`None`: a create) would store, without storing it: for
    /// Services, the values allocation would fill in (a requested value that is taken is a 422).
    pub async fn preview_write(
        &self,
        def: &ResourceDef,
        current: Option<&Value>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        if !services::is_services(def) || current.is_some_and(|c| c.get("spec") == obj.get("spec")) {
            return Ok(obj);
        }
        self.services.preview(&self.store, current, obj).await
    }

    /// This replica's watch cache of `def`.
    pub async fn cache(
        &self,
        def: &'static ResourceDef,
    ) -> Result<std::sync::Arc<super::cache::ResourceCache>, ApiError> {
        self.cache.resource(def, self).await
    }

    /// The revision a linearizable read must see: everything committed before this call.
    pub async fn consistent_revision(&self) -> Result<i64, ApiError> {
        self.store.read_barrier().await?;
        Ok(self.store.revision())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current object, read linearizably (or serializably).
    pub async fn get(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        serializable: bool,
    ) -> Result<Option<Value>, ApiError> {
        let key = def.key(namespace, name);
        let req = RangeRequest { range: KeyRange::single(key.into_bytes()), ..Default::default() };
        let (resp, _) = self.store.range(req, serializable).await?;
        resp.kvs.first().map(|kv| decode(def, kv)).transpose()
    }

    /// The current object (read linearizably) and its revision; a 404 when there is none.
    pub async fn get_existing(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(Value, i64), ApiError> {
        let key = def.key(namespace, name);
        let req = RangeRequest { range: KeyRange::single(key.into_bytes()), ..Default::default() };
        let (resp, _) = self.store.range(req, false).await?;
        let kv = resp.kvs.first().ok_or_else(|| ApiError::not_found(def.group, def.resource, name))?;
        Ok((decode(def, kv)?, kv.mod_revision))
    }

    /// Objects of `def` (in `namespace`, or all), in key order.
    pub async fn list(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        read: &ListRead,
        mut keep: impl FnMut(&Value) -> bool,
    ) -> Result<Page, ApiError> {
        let prefix = match namespace {
            Some(ns) if def.namespaced => def.namespace_prefix(ns),
            _ => def.key_prefix(),
        };
        let range = KeyRange::prefix(prefix.into_bytes());
        let start = read.start_key.clone().map(String::into_bytes).unwrap_or_else(|| range.key.clone());
        let mut page = Page::default();
        let mut from = start;
        let mut revision = read.revision;
        // Read in chunks, filtering as we go, until the page is full or the range is exhausted.
        const CHUNK: i64 = 1000;
        loop {
            let req = RangeRequest {
                range: KeyRange::new(from.clone(), range.range_end.clone()),
                revision,
                limit: CHUNK,
                ..Default::default()
            };
            let (resp, header_rev) = self.store.range(req, read.serializable).await?;
            if revision == 0 {
                // Pin every later chunk to the revision of the first read.
                revision = header_rev;
            }
            let n = resp.kvs.len();
            for kv in &resp.kvs {
                let obj = decode(def, kv)?;
                if !keep(&obj) {
                    continue;
                }
                if read.limit > 0 && page.items.len() == read.limit {
                    page.next_key = Some(String::from_utf8_lossy(&kv.key).into_owned());
                    page.revision = revision;
                    return Ok(page);
                }
                page.items.push(obj);
            }
            if !resp.more || n == 0 {
                break;
            }
            let mut next = resp.kvs[n - 1].key.clone();
            next.push(0);
            from = next;
        }
        page.revision = revision;
        Ok(page)
    }

    /// Stores a new object; fails with `AlreadyExists` if the key is taken.
    pub async fn create(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.put_if(def, namespace, name, CompareTarget::Create(0), obj)
            .await?
            .ok_or_else(|| ApiError::already_exists(def.group, def.resource, name))
    }

    /// Replaces the object if it is still at `expected_revision`; `Ok(None)` means it moved on (or
    /// vanished) and the caller decides between retrying and a 409.
    pub async fn replace_if(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        expected_revision: i64,
        obj: Value,
    ) -> Result<Option<Value>, ApiError> {
        self.put_if(def, namespace, name, CompareTarget::Mod(expected_revision), obj).await
    }

    /// Writes `obj` if the key's `condition` holds; returns it with its new resourceVersion.
    async fn put_if(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        condition: CompareTarget,
        obj: Value,
    ) -> Result<Option<Value>, ApiError> {
        let key = def.key(namespace, name);
        if services::is_services(def) {
            let old = match condition {
                CompareTarget::Mod(expected) => match self.get_with_revision(def, &key).await? {
                    Some((current, rev)) if rev == expected => Some((current, rev)),
                    _ => return Ok(None),
                },
                _ => None,
            };
            // A write that leaves the spec alone (labels, status) holds exactly what it held.
            let spec_unchanged = old.as_ref().is_some_and(|(o, _)| o.get("spec") == obj.get("spec"));
            if !spec_unchanged {
                return self.services.write(&self.store, &key, old.as_ref().map(|(o, r)| (o, *r)), obj).await;
            }
        }
        let txn = TxnRequest {
            compare: vec![key_compare(&key, condition)],
            success: vec![RequestOp::Put(PutRequest {
                key: key.into_bytes(),
                value: encode(&obj),
                ..Default::default()
            })],
            failure: vec![],
        };
        let (resp, revision) = self.store.txn(txn).await?;
        if !resp.succeeded {
            return Ok(None);
        }
        let mut out = obj;
        set_resource_version(&mut out, revision);
        Ok(Some(out))
    }

    /// Deletes the object if it is still at `expected_revision`. Returns the deletion revision, or
    /// `None` when the object moved on or vanished.
    pub async fn delete_if(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        expected_revision: i64,
    ) -> Result<Option<i64>, ApiError> {
        let key = def.key(namespace, name);
        if services::is_services(def) {
            return match self.get_with_revision(def, &key).await? {
                Some((current, rev)) if rev == expected_revision => {
                    self.services.delete(&self.store, &key, &current, rev).await
                }
                _ => Ok(None),
            };
        }
        let txn = TxnRequest {
            compare: vec![key_compare(&key, CompareTarget::Mod(expected_revision))],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                range: KeyRange::single(key.into_bytes()),
                prev_kv: false,
            })],
            failure: vec![],
        };
        let (resp, revision) = self.store.txn(txn).await?;
        if !resp.succeeded {
            return Ok(None);
        }
        match resp.responses.first() {
            Some(ResponseOp::DeleteRange(d)) if d.deleted == 1 => Ok(Some(revision)),
            _ => Ok(None),
        }
    }

    /// A watch of every object of `def` (in `namespace`, or all) from `start_revision` on.
    pub fn watch(&self, def: &ResourceDef, namespace: Option<&str>, start_revision: i64) -> Watcher {
        let prefix = match namespace {
            Some(ns) if def.namespaced => def.namespace_prefix(ns),
            _ => def.key_prefix(),
        };
        self.store.watch(WatchSpec {
            range: KeyRange::prefix(prefix.into_bytes()),
            start_revision,
            prev_kv: true,
            filter_put: false,
            filter_delete: false,
        })
    }

    /// Decodes a watched key-value.
    pub fn decode(&self, def: &ResourceDef, kv: &KeyValue) -> Result<Value, ApiError> {
        decode(def, kv)
    }

    /// The store's current revision on this replica.
    pub fn revision(&self) -> i64 {
        self.store.revision()
    }
}
