//! Facts about a Deployment's ReplicaSets that the rollout decides from: sizes, counts, orderings,
//! which one runs the current template. Pure.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::annotations::rs_revision;
use super::hash::equal_ignore_hash;

/// `spec.replicas` of `rs` (the API defaults it to 1).
pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn set_spec_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// Pods the ReplicaSet reports (`status.replicas`).
pub fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// Available replicas that will still be there once the ReplicaSet controller has caught up with
/// `spec.replicas`: at most the spec. Right after a scale-down the status still counts the pods being
/// removed (until that controller's next pass), and counting them would let the rollout scale old
/// ReplicaSets down twice for the same availability.
pub fn available_within_spec(rs: &ReplicaSet) -> i32 {
    available(rs).min(spec_replicas(rs))
}

pub fn ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// Whether `rs` is meant to run pods (`spec.replicas > 0`).
pub fn is_active(rs: &ReplicaSet) -> bool {
    spec_replicas(rs) > 0
}

/// Sum of `spec.replicas`.
pub fn total_spec<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(spec_replicas).sum()
}

/// Oldest first, ties by name (upstream `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a).cmp(&created(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Lowest revision first, ties oldest first (upstream `ReplicaSetsByRevision`).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_revision(a).cmp(&rs_revision(b)).then_with(|| by_creation(a, b))
}

/// Largest first, ties newest first (upstream `ReplicaSetsBySizeNewer`).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b).cmp(&spec_replicas(a)).then_with(|| by_creation(b, a))
}

/// Largest first, ties oldest first (upstream `ReplicaSetsBySizeOlder`).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b).cmp(&spec_replicas(a)).then_with(|| by_creation(a, b))
}

/// The index of the ReplicaSet running `d`'s template: the oldest if several do (upstream
/// `FindNewReplicaSet`).
pub fn find_new(d: &Deployment, sets: &[ReplicaSet]) -> Option<usize> {
    let template = d.spec.as_ref().map(|s| &s.template)?;
    let mut matching: Vec<usize> = (0..sets.len())
        .filter(|&i| {
            sets[i].spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, template))
        })
        .collect();
    matching.sort_by(|&a, &b| by_creation(&sets[a], &sets[b]));
    matching.first().copied()
}
