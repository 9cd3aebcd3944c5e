//! One workload's ControllerRevisions: what a revision stores (the pod template as a strategic-merge patch
//! that replaces `spec.template`, which is what `kubectl rollout undo` applies), how revisions are named and
//! hashed, which revision holds the current template and which old ones are pruned.
//!
//! Pure: must not depend on the API client.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{json, Value};

use crate::pods::controller_of;

/// The label pods (and revisions) carry to say which revision they were made from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Upstream `rand.SafeEncodeString`'s alphabet: no vowels (no words) and no look-alike characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// 32-bit FNV-1a, the hash upstream names revisions and pod-template hashes with.
pub fn fnv32a(data: &[u8]) -> u32 {
    fnv32a_continue(FNV_OFFSET, data)
}

fn fnv32a_continue(mut hash: u32, data: &[u8]) -> u32 {
    for b in data {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Upstream `rand.SafeEncodeString`: every character mapped into [`ALPHANUMS`].
pub fn safe_encode(s: &str) -> String {
    s.bytes().map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()])).collect()
}

/// The hash of a pod template (upstream `controller.ComputeHash`): FNV-1a of the template, then of the
/// collision count (little-endian) when there is one, so a collision is resolved by bumping the count.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serialising a typed template is deterministic (struct field order, sorted maps).
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut hash = fnv32a(&bytes);
    if let Some(count) = collision_count {
        hash = fnv32a_continue(hash, &count.to_le_bytes());
    }
    safe_encode(&hash.to_string())
}

/// The hash of a revision's data (upstream `history.HashControllerRevision`): FNV-1a of the data, then of
/// the decimal collision count when there is one.
pub fn data_hash(data: &Value, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(data).unwrap_or_default();
    let mut hash = fnv32a(&bytes);
    if let Some(count) = collision_count {
        hash = fnv32a_continue(hash, count.to_string().as_bytes());
    }
    safe_encode(&hash.to_string())
}

/// `<parent>-<hash>`, the parent name cut so the whole fits a name (upstream `ControllerRevisionName`).
pub fn revision_name(parent: &str, hash: &str) -> String {
    let prefix: String = parent.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// What a revision stores: `{"spec": {"template": <template, "$patch": "replace">}}`.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut t {
        map.insert("$patch".into(), Value::String("replace".into()));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision holds, if its data is a template patch.
pub fn revision_template(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = revision.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Value::Object(map) = &mut t {
        map.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The revisions controlled by the object with `owner_uid`, oldest first (by revision number, then name).
pub fn owned_revisions(revisions: &[Arc<ControllerRevision>], owner_uid: &str) -> Vec<Arc<ControllerRevision>> {
    let mut owned: Vec<_> =
        revisions.iter().filter(|r| controller_of(&r.metadata).is_some_and(|o| o.uid == owner_uid)).cloned().collect();
    owned.sort_by(|a, b| a.revision.cmp(&b.revision).then_with(|| a.metadata.name.cmp(&b.metadata.name)));
    owned
}

/// The number a new (or renumbered) revision gets: one past the newest.
pub fn next_revision(owned_sorted: &[Arc<ControllerRevision>]) -> i64 {
    owned_sorted.last().map_or(1, |r| r.revision + 1)
}

/// Which revision holds a workload's current template, and what it takes to get there.
#[derive(Debug, Clone)]
pub enum RevisionPlan {
    /// The newest revision already holds it.
    Current(Arc<ControllerRevision>),
    /// An older revision holds it (a rollback or a revert): it becomes the newest by being renumbered.
    Renumber { revision: Arc<ControllerRevision>, to: i64 },
    /// No revision holds it: create this one.
    Create(Box<ControllerRevision>),
}

/// Upstream `FindEqualRevisions` + `constructHistory`/`getStatefulSetRevisions`: the newest revision whose
/// data equals `data`, renumbered when it is not the newest overall; `new(revision_number)` builds the
/// revision to create when none holds it.
pub fn plan_revision(
    owned_sorted: &[Arc<ControllerRevision>],
    data: &Value,
    new: impl FnOnce(i64) -> ControllerRevision,
) -> RevisionPlan {
    let next = next_revision(owned_sorted);
    let equal = owned_sorted.iter().rev().find(|r| r.data.as_ref().map(|d| &d.0) == Some(data));
    match equal {
        Some(r) if owned_sorted.last().is_some_and(|last| Arc::ptr_eq(last, r)) => RevisionPlan::Current(r.clone()),
        Some(r) => RevisionPlan::Renumber { revision: r.clone(), to: next },
        None => RevisionPlan::Create(Box::new(new(next))),
    }
}

/// Old revisions beyond `limit` that nothing uses (`in_use`: a live pod was made from it, or it is the
/// current or update revision), oldest first (upstream `cleanupHistory`/`truncateHistory`).
pub fn history_to_prune(
    owned_sorted: &[Arc<ControllerRevision>],
    limit: usize,
    in_use: impl Fn(&ControllerRevision) -> bool,
) -> Vec<Arc<ControllerRevision>> {
    let unused: Vec<_> = owned_sorted.iter().filter(|r| !in_use(r)).cloned().collect();
    let excess = unused.len().saturating_sub(limit);
    unused.into_iter().take(excess).collect()
}
