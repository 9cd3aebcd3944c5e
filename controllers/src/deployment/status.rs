//! A Deployment's status from its ReplicaSets (upstream `calculateStatus`, `syncRolloutStatus`): counts,
//! the `Available` condition, and the `Progressing` condition whose reasons `kubectl rollout status`
//! reads (`NewReplicaSetAvailable` done, `ProgressDeadlineExceeded` failed). Pure: `now` is a parameter.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::sets::{available, ready, status_replicas, total_spec};
use super::strategy::{desired, max_unavailable, progress_deadline};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == type_)
}

pub fn new_condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets `c` unless a condition of its type already has its status and reason; keeps the transition
/// time when only the reason changes (upstream `SetDeploymentCondition`).
pub fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(current) = condition(status, &c.type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &c.type_.clone());
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

/// Counts and the `Available` condition; other conditions carried over from `d` (upstream
/// `calculateStatus`).
pub fn calculate(d: &Deployment, sets: &[&ReplicaSet], new: Option<&ReplicaSet>, now: Timestamp) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let available_count: i32 = sets.iter().map(|rs| available(rs)).sum();
    let total = total_spec(sets.iter().copied());
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sets.iter().map(|rs| status_replicas(rs)).sum()),
        updated_replicas: Some(new.map_or(0, status_replicas)),
        ready_replicas: Some(sets.iter().map(|rs| ready(rs)).sum()),
        available_replicas: Some(available_count),
        unavailable_replicas: Some((total - available_count).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    let c = if available_count >= desired(d) - max_unavailable(d) {
        new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.".into(), now)
    } else {
        new_condition(AVAILABLE, "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.".into(), now)
    };
    set_condition(&mut status, c);
    status
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Every replica updated and available, nothing old left, and the current spec observed.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = desired(d);
    n(s.updated_replicas) == want
        && n(s.replicas) == want
        && n(s.available_replicas) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `new` shows progress over `d`'s recorded status (more updated, ready or available
/// replicas, or fewer old ones).
pub fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Whether the `Progressing` condition of `s` has not been refreshed within the progress deadline.
pub fn timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else { return false };
    let Some(c) = condition(s, PROGRESSING) else { return false };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c.last_update_time.as_ref().is_some_and(|t| t.0 + SignedDuration::from_secs(i64::from(deadline)) < now),
    }
}

/// The status of a rollout pass: `calculate` plus the `Progressing` estimate and replica failures
/// (upstream `syncRolloutStatus`).
pub fn rollout(d: &Deployment, sets: &[&ReplicaSet], new: Option<&ReplicaSet>, now: Timestamp) -> DeploymentStatus {
    let mut s = calculate(d, sets, new, now);
    let has_deadline = progress_deadline(d).is_some();
    if !has_deadline {
        remove_condition(&mut s, PROGRESSING);
    }
    let old = d.status.clone().unwrap_or_default();
    let current = condition(&old, PROGRESSING).cloned();
    let done = n(s.replicas) == n(s.updated_replicas)
        && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    let subject = |what: &str| match new {
        Some(rs) => format!("ReplicaSet {:?} {what}.", rs.metadata.name.as_deref().unwrap_or_default()),
        None => format!("Deployment {:?} {what}.", d.metadata.name.as_deref().unwrap_or_default()),
    };
    if has_deadline && !done {
        if complete(d, &s) {
            let c = new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, subject("has successfully progressed"), now);
            set_condition(&mut s, c);
        } else if progressing(d, &s) {
            let mut c = new_condition(PROGRESSING, "True", RS_UPDATED, subject("is progressing"), now);
            // Progress refreshes the update time (the deadline counts from it), not the transition time.
            if let Some(cur) = &current {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut s, PROGRESSING);
            }
            set_condition(&mut s, c);
        } else if timed_out(d, &s, now) {
            let c = new_condition(PROGRESSING, "False", TIMED_OUT, subject("has timed out progressing"), now);
            set_condition(&mut s, c);
        }
    }
    match replica_failure(sets, new) {
        Some(c) => set_condition(&mut s, c),
        None => remove_condition(&mut s, REPLICA_FAILURE),
    }
    s
}

/// The first `ReplicaFailure=True` condition of the new ReplicaSet, else of any other.
fn replica_failure(sets: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    new.into_iter().chain(sets.iter().copied()).find_map(|rs| {
        let c = rs
            .status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")?;
        Some(DeploymentCondition {
            type_: REPLICA_FAILURE.into(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time.clone(),
        })
    })
}

/// When to look again for a progress deadline that may pass without any change to trigger a pass
/// (upstream `requeueStuckDeployment`).
pub fn recheck_after(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let c = condition(s, PROGRESSING)?;
    if complete(d, s) || c.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let at = c.last_update_time.as_ref()?.0 + SignedDuration::from_secs(i64::from(deadline));
    let left = Duration::try_from(at.duration_since(now)).unwrap_or_default();
    Some(left.max(Duration::from_secs(1)))
}

/// Status equality with absent counts read as zero.
pub fn same(a: Option<&DeploymentStatus>, b: &DeploymentStatus) -> bool {
    let fill = |s: &DeploymentStatus| {
        let mut s = s.clone();
        for f in [
            &mut s.replicas,
            &mut s.updated_replicas,
            &mut s.ready_replicas,
            &mut s.available_replicas,
            &mut s.unavailable_replicas,
        ] {
            f.get_or_insert(0);
        }
        if s.conditions.as_ref().is_some_and(Vec::is_empty) {
            s.conditions = None;
        }
        s
    };
    a.map(fill) == Some(fill(b))
}
