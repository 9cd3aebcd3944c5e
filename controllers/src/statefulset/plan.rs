//! What a StatefulSet needs done, from the set, its current and update revisions and the pods and claims
//! of its namespace (upstream `updateStatefulSet`, `processReplica`, `processCondemned`, the rolling
//! update loop and `completeRollingUpdate`).
//!
//! Pure: must not depend on the API client.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;

use super::identity::{claim_name, deletes_claims_on_scale_down, new_pod, ordinal_of};
use crate::history::REVISION_HASH_LABEL;
use crate::pods::{controller_of, is_available, is_ready, phase, selects, until_available};

/// The revisions a pass works with: `current` (what pods below the partition keep) and `update` (the
/// template pods roll to), by name, with their templates.
#[derive(Debug, Clone, Copy)]
pub struct Revisions<'a> {
    pub current: &'a str,
    pub current_template: &'a PodTemplateSpec,
    pub update: &'a str,
    pub update_template: &'a PodTemplateSpec,
}

#[derive(Debug, Default)]
pub struct StatefulSetPlan {
    /// Orphans the selector picks: to be given a controller reference.
    pub adopt: Vec<Arc<Pod>>,
    /// Owned pods the selector no longer picks: to lose the controller reference.
    pub release: Vec<Arc<Pod>>,
    /// Pods to create (after their claims), with their ordinals, in order.
    pub create: Vec<(i32, Pod)>,
    /// Pods to delete: failed or finished ones (recreated next pass), condemned ones, rolled ones.
    pub delete: Vec<Arc<Pod>>,
    /// Which of `delete` are failed or finished pods being recreated (for the Event).
    pub recreate: Vec<String>,
    /// Claims of ordinals scaled away, under `whenScaled: Delete`.
    pub delete_claims: Vec<String>,
    pub status: StatefulSetStatus,
    /// When a ready pod becomes available (minReadySeconds), to look again.
    pub requeue_after: Option<Duration>,
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref().and_then(|l| l.get(REVISION_HASH_LABEL)).map(String::as_str)
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

fn healthy(pod: &Pod) -> bool {
    running_and_ready(pod) && !terminating(pod)
}

/// A replica slot: the pod there, or one this pass creates.
enum Slot {
    Existing(Arc<Pod>),
    Planned { revision: String },
}

impl Slot {
    fn healthy(&self) -> bool {
        matches!(self, Slot::Existing(p) if healthy(p))
    }
}

/// Plans `set` with `revisions` against `pods` and `claims` (those of its namespace). A set being deleted
/// only reports status.
pub fn plan(
    set: &StatefulSet,
    revisions: Revisions<'_>,
    pods: &[Arc<Pod>],
    claims: &[Arc<PersistentVolumeClaim>],
    now: Timestamp,
) -> StatefulSetPlan {
    let mut out = StatefulSetPlan::default();
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let spec = set.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
    let start = spec.and_then(|s| s.ordinals.as_ref()).and_then(|o| o.start).unwrap_or(0).max(0);
    let end = start.saturating_add(replicas);
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let monotonic = spec.and_then(|s| s.pod_management_policy.as_deref()) != Some("Parallel");
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    let rolling = strategy.and_then(|s| s.type_.as_deref()).is_none_or(|t| t == "RollingUpdate");
    let partition = strategy.and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.partition);

    let mine = claim(set, pods, &mut out);
    let mut slots: Vec<Option<Slot>> = (start..end).map(|_| None).collect();
    let mut condemned: Vec<(i32, Arc<Pod>)> = Vec::new();
    for pod in &mine {
        let Some(ordinal) = ordinal_of(set_name, pod.metadata.name.as_deref().unwrap_or_default()) else { continue };
        if (start..end).contains(&ordinal) {
            if let Some(slot) = usize::try_from(ordinal - start).ok().and_then(|i| slots.get_mut(i)) {
                *slot = Some(Slot::Existing(pod.clone()));
            }
        } else {
            condemned.push((ordinal, pod.clone()));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    out.status = status(set, revisions, &mine, min_ready, now);
    out.requeue_after = mine.iter().filter_map(|p| until_available(p, min_ready, now)).min();
    if set.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let first_unhealthy = slots
        .iter()
        .find_map(|s| match s {
            Some(Slot::Existing(p)) if !healthy(p) => Some(p.clone()),
            Some(Slot::Existing(_)) => None,
            _ => None,
        })
        .or_else(|| condemned.iter().rev().find(|(_, p)| !healthy(p)).map(|(_, p)| p.clone()));
    let current_replicas = set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0);
    // Upstream `newVersionedStatefulSetPod`: below the partition (or the current count) pods stay current.
    let revision_for = |ordinal: i32| {
        let stays_current = rolling
            && match partition {
                None => ordinal < current_replicas,
                Some(p) => ordinal < p,
            };
        if stays_current {
            (revisions.current, revisions.current_template)
        } else {
            (revisions.update, revisions.update_template)
        }
    };

    // Living replicas, in ordinal order; in OrderedReady mode the first one not Running+Ready blocks.
    let mut blocked = false;
    for (i, slot) in slots.iter_mut().enumerate() {
        let ordinal = start + i32::try_from(i).unwrap_or(i32::MAX);
        match slot {
            None => {
                let (revision, template) = revision_for(ordinal);
                out.create.push((ordinal, new_pod(set, template, revision, ordinal)));
                *slot = Some(Slot::Planned { revision: revision.to_string() });
                if monotonic {
                    blocked = true;
                }
            }
            Some(Slot::Existing(pod)) if matches!(phase(pod), "Failed" | "Succeeded") && !terminating(pod) => {
                // Recreated once the API has let go of the name.
                out.recreate.push(pod.metadata.name.clone().unwrap_or_default());
                out.delete.push(pod.clone());
                if monotonic {
                    blocked = true;
                }
            }
            Some(Slot::Existing(pod)) => {
                if monotonic && (terminating(pod) || !running_and_ready(pod) || !is_available(pod, min_ready, now)) {
                    blocked = true;
                }
            }
            Some(Slot::Planned { .. }) => {}
        }
        if blocked {
            break;
        }
    }
    if blocked {
        return out;
    }

    // Condemned pods (scale-down), highest ordinal first; in OrderedReady mode one at a time, and only
    // once every other pod is healthy (the first unhealthy one may go).
    for (_, pod) in &condemned {
        if terminating(pod) {
            if monotonic {
                return out;
            }
            continue;
        }
        let is_first_unhealthy = first_unhealthy.as_ref().is_some_and(|u| Arc::ptr_eq(u, pod));
        if monotonic && !is_first_unhealthy && (!running_and_ready(pod) || !is_available(pod, min_ready, now)) {
            return out;
        }
        out.delete.push(pod.clone());
        if monotonic {
            return out;
        }
    }
    if deletes_claims_on_scale_down(set) && condemned.is_empty() {
        out.delete_claims = scaled_away_claims(set, claims, &mine, start, end);
    }
    if !rolling {
        return out;
    }

    // Rolling update: from the highest ordinal down to the partition, one pod at a time, each waiting
    // for the one above to be healthy again.
    let update_min = usize::try_from(partition.unwrap_or(0).max(0)).unwrap_or(0);
    for slot in slots.iter().skip(update_min).rev().flatten() {
        match slot {
            Slot::Existing(pod) if revision_of(pod) != Some(revisions.update) && !terminating(pod) => {
                out.delete.push(pod.clone());
                return out;
            }
            Slot::Planned { revision } if revision != revisions.update => return out,
            s if !s.healthy() => return out,
            _ => {}
        }
    }
    out
}

/// Claims made from the set's templates for ordinals outside `start..end` whose pod is gone.
fn scaled_away_claims(
    set: &StatefulSet,
    claims: &[Arc<PersistentVolumeClaim>],
    mine: &[Arc<Pod>],
    start: i32,
    end: i32,
) -> Vec<String> {
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let templates: Vec<String> = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|t| t.metadata.name.clone())
        .collect();
    let live: Vec<i32> =
        mine.iter().filter_map(|p| ordinal_of(set_name, p.metadata.name.as_deref().unwrap_or_default())).collect();
    let mut doomed = Vec::new();
    for claim in claims {
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        if claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        for t in &templates {
            let Some(rest) = name.strip_prefix(t.as_str()).and_then(|r| r.strip_prefix('-')) else { continue };
            let Some(ordinal) = ordinal_of(set_name, rest) else { continue };
            if !(start..end).contains(&ordinal) && !live.contains(&ordinal) && claim_name(t, set, ordinal) == name {
                doomed.push(name.to_string());
            }
        }
    }
    doomed
}

/// Upstream `ClaimPods` for a set: owned pods the selector picks, plus orphans it picks (adopted).
fn claim(set: &StatefulSet, pods: &[Arc<Pod>], out: &mut StatefulSetPlan) -> Vec<Arc<Pod>> {
    let uid = set.metadata.uid.as_deref().unwrap_or_default();
    let selector = set.spec.as_ref().map(|s| &s.selector);
    let deleting = set.metadata.deletion_timestamp.is_some();
    let mut mine = Vec::new();
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
            None if picked && !deleting && !terminating(pod) => {
                out.adopt.push(pod.clone());
                mine.push(pod.clone());
            }
            None => {}
        }
    }
    mine
}

/// Upstream `computeReplicaStatus` + `completeRollingUpdate`, from the observed pods.
fn status(
    set: &StatefulSet,
    revisions: Revisions<'_>,
    mine: &[Arc<Pod>],
    min_ready: i32,
    now: Timestamp,
) -> StatefulSetStatus {
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(mine.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let live = |p: &Pod| !terminating(p);
    let replicas = count(&|_| true);
    let ready = count(&running_and_ready);
    let available = count(&|p| running_and_ready(p) && is_available(p, min_ready, now));
    let mut current = count(&|p| live(p) && revision_of(p) == Some(revisions.current));
    let updated = count(&|p| live(p) && revision_of(p) == Some(revisions.update));
    let mut current_revision = revisions.current.to_string();
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    if rolling && updated == replicas && ready == replicas {
        current_revision = revisions.update.to_string();
        current = updated;
    }
    let previous = set.status.as_ref();
    StatefulSetStatus {
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        current_replicas: Some(current),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(revisions.update.to_string()),
        observed_generation: set.metadata.generation,
        collision_count: previous.and_then(|s| s.collision_count),
        conditions: previous.and_then(|s| s.conditions.clone()),
    }
}
