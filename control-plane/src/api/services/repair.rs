//! The consistency check of reservations against Services, run by the replica that leads Raft (the
//! counterpart of upstream's cluster IP and node port "repair" controllers). Allocation keeps both in
//! step transactionally, so in a healthy cluster a pass finds nothing; it exists for Services stored
//! before allocation existed (restored from a snapshot, written by an older version) and as a safety
//! net. A pass reads all Services and reservations at one revision, then
//! - releases reservations whose Service is gone, has another uid, or no longer holds the value,
//! - restores missing reservations of values Services hold (for the oldest holder when several
//!   Services hold the same value, which is reported),
//! - reports held values outside the current ranges (they keep working; their reservations stay).
//!
//! Each fix is its own transaction, conditional on the reservation and its Service being exactly as
//! read, so a pass racing with Service writes changes nothing they did. Owns the decisions
//! (`plan_repair`, pure) and a thin driver; must not depend on the HTTP layer.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use raft_store::mvcc::model::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyRange, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use raft_store::Store;
use serde_json::Value;

use super::allocation::{held, Pool, Resource};
use super::allocator::ServiceAllocator;
use super::ranges::ServiceRanges;
use super::reservations::{self, Owner};
use crate::api::objects::meta_str;
use crate::api::resources::{self, ResourceDef};
use crate::api::status::ApiError;

/// First pass after gaining leadership.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(5);
/// Time between passes.
const PASS_INTERVAL: Duration = Duration::from_secs(60);

/// A stored Service as a pass reads it.
#[derive(Debug, Clone)]
pub struct ServiceRecord {
    pub key: String,
    pub object: Value,
    pub mod_revision: i64,
    pub create_revision: i64,
}

/// A stored reservation as a pass reads it.
#[derive(Debug, Clone)]
pub struct ReservationRecord {
    pub resource: Resource,
    /// `None` when the value does not name a Service.
    pub owner: Option<Owner>,
    pub mod_revision: i64,
}

/// One fix, applied only if what it was decided on is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairAction {
    /// Delete the reservation of `resource` (at `mod_revision`); `owner_key` is its Service's key and
    /// `owner_revision` the revision it was read at (0: absent).
    Release { resource: Resource, mod_revision: i64, owner_key: Option<String>, owner_revision: i64 },
    /// Reserve `resource` for `owner`, whose Service at `service_key` was read at `service_revision`.
    Reserve { resource: Resource, owner: Owner, service_key: String, service_revision: i64 },
}

/// What a pass found and does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairPlan {
    pub actions: Vec<RepairAction>,
    /// Values held by more than one Service, with the Services (`namespace/name`).
    pub duplicates: Vec<(Resource, Vec<String>)>,
    /// Held values outside the current ranges, with their Service.
    pub out_of_range: Vec<(Resource, String)>,
}

fn services_def() -> Option<&'static ResourceDef> {
    resources::find("", "v1", "services")
}

fn service_key(owner: &Owner) -> Option<String> {
    services_def().map(|def| def.key(Some(&owner.namespace), &owner.name))
}

fn in_range(ranges: &ServiceRanges, r: Resource) -> bool {
    match r {
        Resource::ClusterIp(ip) => ranges.cluster_ip.is_assignable(ip),
        Resource::NodePort(p) => ranges.node_port.contains(p),
    }
}

/// Decides a pass over `services` and `reservations`, read at the same revision.
pub fn plan_repair(
    ranges: &ServiceRanges,
    services: &[ServiceRecord],
    reservations: &[ReservationRecord],
) -> RepairPlan {
    let by_key: BTreeMap<&str, &ServiceRecord> = services.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut holders: BTreeMap<Resource, Vec<&ServiceRecord>> = BTreeMap::new();
    for s in services {
        for r in held(&s.object) {
            holders.entry(r).or_default().push(s);
        }
    }
    for list in holders.values_mut() {
        list.sort_by_key(|s| (s.create_revision, s.key.clone()));
    }
    let name_of = |s: &ServiceRecord| Owner::of(&s.object).to_string();
    let mut plan = RepairPlan::default();
    let mut reserved: BTreeSet<Resource> = BTreeSet::new();
    for res in reservations {
        let owner_key = res.owner.as_ref().and_then(service_key);
        let owner_svc = owner_key.as_deref().and_then(|k| by_key.get(k).copied());
        let valid = match (&res.owner, owner_svc) {
            (Some(owner), Some(svc)) => {
                meta_str(&svc.object, "uid") == owner.uid && held(&svc.object).contains(&res.resource)
            }
            _ => false,
        };
        if valid {
            reserved.insert(res.resource);
        } else {
            plan.actions.push(RepairAction::Release {
                resource: res.resource,
                mod_revision: res.mod_revision,
                owner_key,
                owner_revision: owner_svc.map_or(0, |s| s.mod_revision),
            });
        }
    }
    for (resource, list) in &holders {
        if list.len() > 1 {
            plan.duplicates.push((*resource, list.iter().map(|s| name_of(s)).collect()));
        }
        if !in_range(ranges, *resource) {
            for s in list {
                plan.out_of_range.push((*resource, name_of(s)));
            }
        }
        if reserved.contains(resource) {
            continue;
        }
        let oldest = list[0];
        plan.actions.push(RepairAction::Reserve {
            resource: *resource,
            owner: Owner::of(&oldest.object),
            service_key: oldest.key.clone(),
            service_revision: oldest.mod_revision,
        });
    }
    plan
}

fn compare(key: &str, target: CompareTarget) -> Compare {
    Compare { range: KeyRange::single(key.as_bytes().to_vec()), result: CompareResult::Equal, target }
}

/// Reads every Service and reservation at one revision.
async fn read_state(store: &Store) -> Result<(Vec<ServiceRecord>, Vec<ReservationRecord>), ApiError> {
    let def = services_def().ok_or_else(|| ApiError::internal("the resource table has no services"))?;
    store.read_barrier().await?;
    let revision = store.revision();
    let read = |prefix: String| {
        let req = RangeRequest { range: KeyRange::prefix(prefix.into_bytes()), revision, ..Default::default() };
        store.range(req, true)
    };
    let (svc_resp, _) = read(def.key_prefix()).await?;
    let services = svc_resp
        .kvs
        .iter()
        .filter_map(|kv| {
            let object: Value = serde_json::from_slice(&kv.value).ok()?;
            Some(ServiceRecord {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                object,
                mod_revision: kv.mod_revision,
                create_revision: kv.create_revision,
            })
        })
        .collect();
    let mut found = Vec::new();
    for pool in [Pool::ClusterIp, Pool::NodePort] {
        let (resp, _) = read(reservations::prefix(pool).to_string()).await?;
        found.extend(resp.kvs.iter().filter_map(|kv| {
            Some(ReservationRecord {
                resource: reservations::parse_key(&kv.key)?,
                owner: Owner::decode(&kv.value),
                mod_revision: kv.mod_revision,
            })
        }));
    }
    Ok((services, found))
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairOutcome {
    pub released: usize,
    pub reserved: usize,
    pub duplicates: usize,
    pub out_of_range: usize,
}

/// Runs one pass now.
pub async fn repair_once(store: &Store, allocator: &ServiceAllocator) -> Result<RepairOutcome, ApiError> {
    let (services, found) = read_state(store).await?;
    let plan = plan_repair(allocator.ranges(), &services, &found);
    let mut outcome = RepairOutcome {
        duplicates: plan.duplicates.len(),
        out_of_range: plan.out_of_range.len(),
        ..Default::default()
    };
    for (resource, names) in &plan.duplicates {
        tracing::warn!(%resource, services = ?names, "the same value is held by several services; recreate all but one");
    }
    for (resource, name) in &plan.out_of_range {
        tracing::warn!(%resource, service = %name, "a service holds a value outside the configured range");
    }
    for action in plan.actions {
        let txn = match &action {
            RepairAction::Release { resource, mod_revision, owner_key, owner_revision } => {
                let key = reservations::key(*resource);
                let mut compares = vec![compare(&key, CompareTarget::Mod(*mod_revision))];
                if let Some(owner_key) = owner_key {
                    compares.push(if *owner_revision == 0 {
                        compare(owner_key, CompareTarget::Create(0))
                    } else {
                        compare(owner_key, CompareTarget::Mod(*owner_revision))
                    });
                }
                TxnRequest {
                    compare: compares,
                    success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                        range: KeyRange::single(key.into_bytes()),
                        prev_kv: false,
                    })],
                    failure: vec![],
                }
            }
            RepairAction::Reserve { resource, owner, service_key, service_revision } => {
                let key = reservations::key(*resource);
                TxnRequest {
                    compare: vec![
                        compare(&key, CompareTarget::Create(0)),
                        compare(service_key, CompareTarget::Mod(*service_revision)),
                    ],
                    success: vec![RequestOp::Put(PutRequest {
                        key: key.into_bytes(),
                        value: owner.encode(),
                        ..Default::default()
                    })],
                    failure: vec![],
                }
            }
        };
        let (resp, _) = store.txn(txn).await?;
        if !resp.succeeded {
            continue;
        }
        match action {
            RepairAction::Release { resource, .. } => {
                tracing::warn!(%resource, "released a reservation no service holds");
                outcome.released += 1;
            }
            RepairAction::Reserve { resource, owner, .. } => {
                tracing::warn!(%resource, service = %owner, "restored the missing reservation of a service");
                outcome.reserved += 1;
            }
        }
    }
    if let Some(m) = allocator.metrics() {
        m.repaired("released_leaked", outcome.released);
        m.repaired("reserved_missing", outcome.reserved);
        m.repaired("duplicate", outcome.duplicates);
        m.repaired("out_of_range", outcome.out_of_range);
    }
    Ok(outcome)
}

/// Runs passes whenever `store` leads, until `shutdown` resolves.
pub async fn run_repair(store: Store, allocator: std::sync::Arc<ServiceAllocator>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = store.wait_leadership(true) => {}
        }
        let passes = async {
            tokio::time::sleep(FIRST_PASS_AFTER).await;
            loop {
                match repair_once(&store, &allocator).await {
                    Ok(o) if o == RepairOutcome::default() => tracing::debug!("service reservations consistent"),
                    Ok(o) => tracing::info!(?o, "service reservation repair pass"),
                    Err(e) => tracing::debug!(error = %e.message, "service reservation repair pass failed"),
                }
                tokio::time::sleep(PASS_INTERVAL).await;
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = store.wait_leadership(false) => {}
            _ = passes => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, uid: &str, spec: Value, rev: i64) -> ServiceRecord {
        ServiceRecord {
            key: format!("/registry/core/services/{ns}/{name}"),
            object: json!({"metadata": {"namespace": ns, "name": name, "uid": uid}, "spec": spec}),
            mod_revision: rev,
            create_revision: rev,
        }
    }

    fn owner(ns: &str, name: &str, uid: &str) -> Option<Owner> {
        Some(Owner { namespace: ns.into(), name: name.into(), uid: uid.into() })
    }

    fn ip(s: &str) -> Resource {
        Resource::ClusterIp(s.parse().expect("ip"))
    }

    fn res(resource: Resource, owner: Option<Owner>, rev: i64) -> ReservationRecord {
        ReservationRecord { resource, owner, mod_revision: rev }
    }

    #[test]
    fn a_consistent_state_needs_nothing() {
        let services = [svc(
            "a",
            "web",
            "u1",
            json!({"type": "NodePort", "clusterIP": "10.96.0.5", "ports": [{"port": 80, "nodePort": 30001}]}),
            10,
        )];
        let found = [
            res(ip("10.96.0.5"), owner("a", "web", "u1"), 10),
            res(Resource::NodePort(30001), owner("a", "web", "u1"), 10),
        ];
        assert_eq!(plan_repair(&ServiceRanges::default(), &services, &found), RepairPlan::default());
    }

    #[test]
    fn leaked_reservations_are_released_with_the_owner_state_they_were_decided_on() {
        let services = [
            svc("a", "web", "u2", json!({"clusterIP": "10.96.0.6"}), 20),
            svc("a", "other", "u3", json!({"clusterIP": "10.96.0.8"}), 21),
        ];
        let found = [
            res(ip("10.96.0.5"), owner("a", "gone", "u0"), 3),
            res(ip("10.96.0.6"), owner("a", "web", "u2"), 20),
            res(ip("10.96.0.7"), owner("a", "web", "u1-old"), 4),
            res(ip("10.96.0.8"), owner("a", "other", "u3"), 21),
            res(ip("10.96.0.9"), owner("a", "other", "u3"), 5),
            res(Resource::NodePort(30002), None, 6),
        ];
        let plan = plan_repair(&ServiceRanges::default(), &services, &found);
        assert_eq!(
            plan.actions,
            vec![
                RepairAction::Release {
                    resource: ip("10.96.0.5"),
                    mod_revision: 3,
                    owner_key: Some("/registry/core/services/a/gone".into()),
                    owner_revision: 0
                },
                RepairAction::Release {
                    resource: ip("10.96.0.7"),
                    mod_revision: 4,
                    owner_key: Some("/registry/core/services/a/web".into()),
                    owner_revision: 20
                },
                RepairAction::Release {
                    resource: ip("10.96.0.9"),
                    mod_revision: 5,
                    owner_key: Some("/registry/core/services/a/other".into()),
                    owner_revision: 21
                },
                RepairAction::Release {
                    resource: Resource::NodePort(30002),
                    mod_revision: 6,
                    owner_key: None,
                    owner_revision: 0
                },
            ]
        );
    }

    #[test]
    fn missing_reservations_are_restored_for_the_oldest_holder_and_duplicates_reported() {
        let services = [
            svc("a", "new", "u2", json!({"clusterIP": "10.96.0.5"}), 30),
            svc("a", "old", "u1", json!({"clusterIP": "10.96.0.5"}), 10),
            svc(
                "b",
                "outside",
                "u3",
                json!({"type": "NodePort", "clusterIP": "192.168.0.1", "ports": [{"port": 80, "nodePort": 8080}]}),
                11,
            ),
            svc("b", "headless", "u4", json!({"clusterIP": "None"}), 12),
        ];
        let plan = plan_repair(&ServiceRanges::default(), &services, &[]);
        assert_eq!(plan.duplicates, vec![(ip("10.96.0.5"), vec!["a/old".to_string(), "a/new".to_string()])]);
        assert_eq!(
            plan.out_of_range,
            vec![(ip("192.168.0.1"), "b/outside".to_string()), (Resource::NodePort(8080), "b/outside".to_string())]
        );
        let reserved: Vec<(Resource, String, i64)> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                RepairAction::Reserve { resource, owner, service_revision, .. } => {
                    Some((*resource, owner.to_string(), *service_revision))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            reserved,
            vec![
                (ip("10.96.0.5"), "a/old".to_string(), 10),
                (ip("192.168.0.1"), "b/outside".to_string(), 11),
                (Resource::NodePort(8080), "b/outside".to_string(), 11),
            ]
        );
    }
}
