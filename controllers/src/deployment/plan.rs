//! What one sync of a Deployment should write (upstream `syncDeployment`), as a pure function of the
//! Deployment, the ReplicaSets it controls and its pods: the new ReplicaSet to create, replica counts
//! and annotations to set on existing ones, old ones to delete, the Deployment's revision annotation
//! and status, and when to look again. Must not depend on the API client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;

use super::annotations::REVISION;
use super::pass::Pass;
use super::sets::{spec_replicas, status_replicas};
use super::status::{self, new_condition, set_condition, PAUSED, PROGRESSING, RESUMED, TIMED_OUT};
use super::strategy::{is_rolling, progress_deadline};
use crate::pods::{controller_of, is_terminal};

/// A write to an existing ReplicaSet: its full desired replica count and annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetUpdate {
    pub name: String,
    pub resource_version: Option<String>,
    pub from: i32,
    pub replicas: i32,
    pub min_ready_seconds: Option<i32>,
    pub annotations: BTreeMap<String, String>,
}

impl ReplicaSetUpdate {
    /// The `ScalingReplicaSet` event message, if the count changes.
    pub fn scaling_message(&self) -> Option<String> {
        let op = match self.replicas.cmp(&self.from) {
            std::cmp::Ordering::Greater => "up",
            std::cmp::Ordering::Less => "down",
            std::cmp::Ordering::Equal => return None,
        };
        Some(format!("Scaled {op} replica set {} from {} to {}", self.name, self.from, self.replicas))
    }
}

#[derive(Debug, Default)]
pub struct DeploymentPlan {
    /// The new ReplicaSet to create (name set, no creation timestamp).
    pub create: Option<ReplicaSet>,
    /// Writes to existing ReplicaSets, scale-downs first.
    pub updates: Vec<ReplicaSetUpdate>,
    /// Old ReplicaSets beyond the history limit: (name, uid).
    pub delete: Vec<(String, String)>,
    /// The Deployment's new `deployment.kubernetes.io/revision`, if it changes.
    pub revision: Option<String>,
    /// The status to write, if it changes.
    pub status: Option<DeploymentStatus>,
    /// A warning about the Deployment itself: (reason, message).
    pub warning: Option<(&'static str, String)>,
    /// When to look again (progress deadline).
    pub requeue_after: Option<Duration>,
}

impl DeploymentPlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_none()
            && self.updates.is_empty()
            && self.delete.is_empty()
            && self.revision.is_none()
            && self.status.is_none()
    }
}

fn selects_everything(s: &LabelSelector) -> bool {
    s.match_labels.as_ref().is_none_or(BTreeMap::is_empty) && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// Plans a sync of `d`, which controls `owned`; `pods` are the pods of its namespace (only `Recreate`
/// reads them, to wait until old pods are gone).
pub fn plan(d: &Deployment, owned: &[ReplicaSet], pods: &[Arc<Pod>], now: Timestamp) -> DeploymentPlan {
    let Some(spec) = d.spec.as_ref() else { return DeploymentPlan::default() };
    if selects_everything(&spec.selector) {
        let mut out = DeploymentPlan {
            warning: Some((
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            )),
            ..Default::default()
        };
        let mut s = d.status.clone().unwrap_or_default();
        if s.observed_generation < d.metadata.generation {
            s.observed_generation = d.metadata.generation;
            out.status = Some(s);
        }
        return out;
    }
    let mut pass = Pass::new(d, owned, now);
    let rollout_status = if d.metadata.deletion_timestamp.is_some() {
        pass.sync_revision(false);
        false
    } else {
        check_paused_conditions(&mut pass);
        let paused = spec.paused == Some(true);
        pass.sync_revision(false);
        if paused || pass.is_scaling_event() {
            sync_scale(&mut pass);
            false
        } else if is_rolling(d) {
            rollout_rolling(&mut pass);
            true
        } else {
            rollout_recreate(&mut pass, pods);
            true
        }
    };
    finish(pass, d, rollout_status)
}

/// Marks a paused Deployment's progress as unknown (so a pause never times out) and a resumed one's.
fn check_paused_conditions(pass: &mut Pass) {
    if progress_deadline(&pass.d).is_none() {
        return;
    }
    let paused = pass.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    let status = pass.d.status.get_or_insert_with(Default::default);
    let reason = status::condition(status, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT) {
        return;
    }
    let paused_recorded = reason.as_deref() == Some(PAUSED);
    if paused && !paused_recorded {
        set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused".into(), pass.now));
    } else if !paused && paused_recorded {
        set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed".into(), pass.now));
    }
}

/// Scaling without rollout progress (paused, or `spec.replicas` changed): upstream `sync`.
fn sync_scale(pass: &mut Pass) {
    pass.sync_revision(false);
    pass.scale_replicas();
    if pass.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
        pass.cleanup();
    }
}

fn rollout_rolling(pass: &mut Pass) {
    pass.sync_revision(true);
    if pass.reconcile_new() || pass.reconcile_old() {
        return;
    }
    if status::complete(&pass.d, &pass.d.status.clone().unwrap_or_default()) {
        pass.cleanup();
    }
}

/// Scale every old ReplicaSet to zero, wait until their pods are gone, then scale the new one up.
fn rollout_recreate(pass: &mut Pass, pods: &[Arc<Pod>]) {
    pass.sync_revision(false);
    let mut scaled_down = false;
    for i in pass.active_old() {
        scaled_down |= pass.scale_to(i, 0);
    }
    if scaled_down || old_pods_running(pass, pods) {
        return;
    }
    pass.sync_revision(true);
    if let Some(new) = pass.new {
        let want = pass.desired();
        pass.scale_to(new, want);
    }
    if status::complete(&pass.d, &pass.d.status.clone().unwrap_or_default()) {
        pass.cleanup();
    }
}

/// Whether an old ReplicaSet still reports replicas or still has a pod that is not finished (a
/// terminating pod still runs).
fn old_pods_running(pass: &Pass, pods: &[Arc<Pod>]) -> bool {
    let old = pass.old();
    if old.iter().any(|&i| status_replicas(&pass.sets[i]) > 0) {
        return true;
    }
    let old_uids: Vec<&str> = old.iter().filter_map(|&i| pass.sets[i].metadata.uid.as_deref()).collect();
    pods.iter()
        .any(|p| controller_of(&p.metadata).is_some_and(|o| old_uids.contains(&o.uid.as_str())) && !is_terminal(p))
}

/// Reads the writes off the pass.
fn finish(pass: Pass, d: &Deployment, rollout_status: bool) -> DeploymentPlan {
    let mut out = DeploymentPlan::default();
    let (sets, new) = pass.refs();
    let status = if rollout_status {
        status::rollout(&pass.d, &sets, new, pass.now)
    } else {
        status::calculate(&pass.d, &sets, new, pass.now)
    };
    if rollout_status {
        out.requeue_after = status::recheck_after(&pass.d, &status, pass.now);
    }
    if !status::same(d.status.as_ref(), &status) {
        out.status = Some(status);
    }
    let revision = |obj: &Deployment| obj.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned();
    if revision(&pass.d) != revision(d) {
        out.revision = revision(&pass.d);
    }
    for (i, rs) in pass.sets.iter().enumerate() {
        if pass.create && Some(i) == pass.new {
            let mut rs = rs.clone();
            rs.metadata.creation_timestamp = None;
            out.create = Some(rs);
            continue;
        }
        let Some(before) = pass.original.get(i) else { continue };
        if rs == before {
            continue;
        }
        out.updates.push(ReplicaSetUpdate {
            name: rs.metadata.name.clone().unwrap_or_default(),
            resource_version: rs.metadata.resource_version.clone(),
            from: spec_replicas(before),
            replicas: spec_replicas(rs),
            min_ready_seconds: rs.spec.as_ref().and_then(|s| s.min_ready_seconds),
            annotations: rs.metadata.annotations.clone().unwrap_or_default(),
        });
    }
    out.updates.sort_by_key(|u| u.replicas > u.from);
    for &i in &pass.delete {
        let rs = &pass.sets[i];
        out.delete.push((rs.metadata.name.clone().unwrap_or_default(), rs.metadata.uid.clone().unwrap_or_default()));
    }
    out
}
