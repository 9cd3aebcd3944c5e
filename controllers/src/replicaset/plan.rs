//! What a ReplicaSet needs done, from the ReplicaSet and the pods of its namespace (upstream
//! `syncReplicaSet`/`manageReplicas`/`calculateStatus`).
//!
//! Pure: must not depend on the API client.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::pods::{controller_of, deletion_order, is_active, is_available, is_ready, selects, until_available};

/// Most pods created or deleted in one pass (upstream `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

#[derive(Debug, Default)]
pub struct ReplicaSetPlan {
    /// Orphans the selector picks: to be given a controller reference.
    pub adopt: Vec<Arc<Pod>>,
    /// Owned pods the selector no longer picks: to lose the controller reference.
    pub release: Vec<Arc<Pod>>,
    /// Pods to create from the template.
    pub create: usize,
    /// Pods to delete, in deletion order.
    pub delete: Vec<Arc<Pod>>,
    /// The status the ReplicaSet should report.
    pub status: ReplicaSetStatus,
    /// When a ready pod becomes available (minReadySeconds), to look again.
    pub requeue_after: Option<Duration>,
}

/// Plans `rs` against `pods` (those of its namespace). A ReplicaSet being deleted adopts nothing and
/// changes no replica count; its status is still reported.
pub fn plan(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Timestamp) -> ReplicaSetPlan {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let selector = spec.map(|s| &s.selector);
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut out = ReplicaSetPlan::default();
    let mut mine: Vec<Arc<Pod>> = Vec::new();
    for pod in pods {
        let picked = selects(selector, pod.metadata.labels.as_ref());
        match controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if picked {
                    mine.push(pod.clone());
                } else {
                    out.release.push(pod.clone());
                }
            }
            Some(_) => {}
            None if picked && !deleting && pod.metadata.deletion_timestamp.is_none() => {
                out.adopt.push(pod.clone());
                mine.push(pod.clone());
            }
            None => {}
        }
    }
    let mut active: Vec<Arc<Pod>> = mine.iter().filter(|p| is_active(p)).cloned().collect();
    let desired = usize::try_from(spec.and_then(|s| s.replicas).unwrap_or(1).max(0)).unwrap_or(0);
    if !deleting {
        if active.len() < desired {
            out.create = (desired - active.len()).min(BURST_REPLICAS);
        } else if active.len() > desired {
            active.sort_by(|a, b| deletion_order(a, b));
            out.delete = active.iter().take((active.len() - desired).min(BURST_REPLICAS)).cloned().collect();
        }
    }
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    out.status = status(rs, &active, min_ready, now);
    out.requeue_after = active.iter().filter_map(|p| until_available(p, min_ready, now)).min();
    out
}

fn status(rs: &ReplicaSet, active: &[Arc<Pod>], min_ready: i32, now: Timestamp) -> ReplicaSetStatus {
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let template_labels = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref());
    let template_labels = template_labels.and_then(|m| m.labels.as_ref());
    let fully_labeled = |p: &Pod| {
        template_labels.is_none_or(|want| {
            let have = p.metadata.labels.as_ref();
            want.iter().all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
        })
    };
    // Conditions other than ReplicaFailure are not ours; ReplicaFailure is set by the runtime on errors.
    let conditions: Vec<ReplicaSetCondition> =
        rs.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: Some(count(&fully_labeled)),
        ready_replicas: Some(count(&is_ready)),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}
