//! The annotations through which a Deployment and its ReplicaSets record rollout history and sizing
//! (upstream `deployment/util`): the revision (which `kubectl rollout history/undo` read), the revision
//! history of a re-used ReplicaSet, and the Deployment size each ReplicaSet was last scaled for (which
//! proportional scaling reads). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Longest `revision-history` value kept (upstream's default `--deployment-controller-...` limit).
const REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations that are not copied to its ReplicaSets.
fn skipped(key: &str) -> bool {
    matches!(key, LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO)
}

/// The revision an object records (0 when absent or malformed).
pub fn revision(annotations: Option<&BTreeMap<String, String>>) -> i64 {
    annotations.and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).unwrap_or(0)
}

pub fn rs_revision(rs: &ReplicaSet) -> i64 {
    revision(rs.metadata.annotations.as_ref())
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The Deployment size `rs` was last scaled for.
pub fn desired_replicas(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS)
}

/// The Deployment's size plus surge when `rs` was last scaled.
pub fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS)
}

fn set(annotations: &mut BTreeMap<String, String>, key: &str, value: String) -> bool {
    if annotations.get(key) == Some(&value) {
        return false;
    }
    annotations.insert(key.to_string(), value);
    true
}

/// Records the Deployment size `rs` is scaled for; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let changed = set(a, DESIRED_REPLICAS, desired.to_string());
    set(a, MAX_REPLICAS, max.to_string()) || changed
}

/// Stamps the new ReplicaSet with the Deployment's annotations and `new_revision` (upstream
/// `SetNewReplicaSetAnnotations`): a re-used ReplicaSet with a lower revision moves to the new one and
/// remembers the old in `revision-history`; a ReplicaSet about to be created also gets the sizing
/// annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if !skipped(k) {
            changed |= set(a, k, v.clone());
        }
    }
    let old = a.get(REVISION).cloned().unwrap_or_default();
    let old_revision = match old.parse::<i64>() {
        Ok(r) => r,
        Err(_) if old.is_empty() => 0,
        // Upstream leaves a ReplicaSet with an unparsable revision alone.
        Err(_) => return changed,
    };
    if old_revision < new_revision {
        a.insert(REVISION.to_string(), new_revision.to_string());
        changed = true;
        if !old.is_empty() {
            let history = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            let mut entries: Vec<&str> = history.split(',').filter(|s| !s.is_empty()).collect();
            entries.push(&old);
            while entries.len() > 1 && entries.join(",").len() > REVISION_HISTORY_CHARS {
                entries.remove(0);
            }
            let joined = entries.join(",");
            a.insert(REVISION_HISTORY.to_string(), joined);
        }
    }
    if !exists {
        let desired = super::strategy::desired(d);
        changed |= set_replicas_annotations(rs, desired, max);
    }
    changed
}
