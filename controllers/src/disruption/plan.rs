//! A PodDisruptionBudget's status from its pods and their controllers (upstream disruption
//! controller's `trySync`): how many pods are expected, how many are healthy, how many must stay
//! healthy, and so how many may be disrupted now.
//!
//! Pure: must not depend on the API client.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::pods::{controller_of, is_ready, selects};

/// How long an eviction the API admitted keeps its pod out of the healthy count while the pod is not
/// yet deleted (upstream `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

pub const CONDITION: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

/// The workloads whose `spec.replicas` give the expected pod count, from one namespace.
#[derive(Debug, Default, Clone, Copy)]
pub struct Workloads<'a> {
    pub replica_sets: &'a [Arc<ReplicaSet>],
    pub deployments: &'a [Arc<Deployment>],
    pub stateful_sets: &'a [Arc<StatefulSet>],
}

/// An Event to record about the budget: (warning?, reason, message).
pub type PlannedEvent = (bool, &'static str, String);

#[derive(Debug, Default)]
pub struct DisruptionPlan {
    pub status: PodDisruptionBudgetStatus,
    /// When the next admitted eviction expires from `disruptedPods`.
    pub recheck_after: Option<Duration>,
    pub events: Vec<PlannedEvent>,
}

/// Why the expected count cannot be known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("found no controller ref for pod {0:?}")]
    NoControllerRef(String),
    #[error("found no controllers for pod {0:?}")]
    NoController(String),
    #[error("invalid value {0:?} for a PodDisruptionBudget: must be an integer or a percentage")]
    BadValue(String),
}

impl ScaleError {
    fn event_reason(&self) -> &'static str {
        match self {
            Self::NoControllerRef(_) => "NoControllerRef",
            Self::NoController(_) => "NoControllers",
            Self::BadValue(_) => "CalculateExpectedPodCountFailed",
        }
    }
}

/// The pods of `pods` (one namespace) the budget's selector picks; a missing selector picks none and
/// an empty one all (policy/v1).
pub fn selected_pods(pdb: &PodDisruptionBudget, pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
    pods.iter().filter(|p| selects(selector, p.metadata.labels.as_ref())).cloned().collect()
}

/// `value` of `total` (an integer, or a percentage rounded up), as `intstr.GetScaledValueFromIntOrPercent`.
pub fn scaled_value(value: &IntOrString, total: i32) -> Result<i32, ScaleError> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let pct: i64 =
                s.strip_suffix('%').and_then(|p| p.parse().ok()).ok_or_else(|| ScaleError::BadValue(s.clone()))?;
            let scaled = (pct * i64::from(total) + 99).div_euclid(100);
            Ok(i32::try_from(scaled).unwrap_or(i32::MAX))
        }
    }
}

/// The sum of `spec.replicas` of the controllers of `pods`, each counted once. A ReplicaSet owned by a
/// Deployment counts with the Deployment's replicas, as upstream.
pub fn expected_scale(pods: &[Arc<Pod>], workloads: Workloads<'_>) -> Result<i32, ScaleError> {
    let mut seen = HashSet::new();
    let mut total: i32 = 0;
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let owner = controller_of(&pod.metadata).ok_or_else(|| ScaleError::NoControllerRef(name.clone()))?;
        let (uid, replicas) = match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = workloads
                    .replica_sets
                    .iter()
                    .find(|r| r.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                    .ok_or_else(|| ScaleError::NoController(name.clone()))?;
                let deployment = controller_of(&rs.metadata).filter(|o| o.kind == "Deployment").and_then(|o| {
                    workloads.deployments.iter().find(|d| d.metadata.uid.as_deref() == Some(o.uid.as_str()))
                });
                match deployment {
                    Some(d) => (
                        d.metadata.uid.clone().unwrap_or_default(),
                        d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ),
                    None => (owner.uid.clone(), rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
                }
            }
            "StatefulSet" => {
                let sts = workloads
                    .stateful_sets
                    .iter()
                    .find(|s| s.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                    .ok_or_else(|| ScaleError::NoController(name.clone()))?;
                (owner.uid.clone(), sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))
            }
            _ => return Err(ScaleError::NoController(name)),
        };
        if seen.insert(uid) {
            total = total.saturating_add(replicas);
        }
    }
    Ok(total)
}

/// (expected pods, desired healthy) from the budget's `minAvailable` or `maxUnavailable`.
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    workloads: Workloads<'_>,
) -> Result<(i32, i32), ScaleError> {
    let spec = pdb.spec.as_ref();
    let count = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    if let Some(max_unavailable) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let expected = expected_scale(pods, workloads)?;
        let unavailable = scaled_value(max_unavailable, expected)?;
        return Ok((expected, (expected - unavailable).max(0)));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(n)) => Ok((count, *n)),
        Some(pct @ IntOrString::String(_)) => {
            let expected = expected_scale(pods, workloads)?;
            Ok((expected, scaled_value(pct, expected)?))
        }
        None => Ok((count, 0)),
    }
}

fn elapsed_deadline(since: Timestamp) -> Timestamp {
    since
        .checked_add(SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// Plans the status of `pdb` from `pods` (its namespace's) and `workloads` at `now`.
pub fn plan(pdb: &PodDisruptionBudget, pods: &[Arc<Pod>], workloads: Workloads<'_>, now: Timestamp) -> DisruptionPlan {
    let mut out = DisruptionPlan::default();
    let old = pdb.status.clone().unwrap_or_default();
    let generation = pdb.metadata.generation;
    let pods = selected_pods(pdb, pods);
    if pods.is_empty() {
        out.events.push((false, "NoPods", "No matching pods found".to_string()));
    }
    let (expected, desired) = match expected_and_desired(pdb, &pods, workloads) {
        Ok(v) => v,
        Err(e) => {
            // Fail safe: no disruptions while the budget cannot be computed.
            out.events.push((true, e.event_reason(), e.to_string()));
            let mut status = old.clone();
            status.disruptions_allowed = 0;
            status.conditions = Some(set_condition(
                old.conditions.as_deref(),
                "False",
                SYNC_FAILED,
                &e.to_string(),
                status.observed_generation,
                now,
            ));
            out.status = status;
            return out;
        }
    };
    // Admitted evictions whose pod is not deleted yet, until they time out.
    let mut disrupted = BTreeMap::new();
    let old_disrupted = old.disrupted_pods.clone().unwrap_or_default();
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(since) = old_disrupted.get(&name) else { continue };
        let deadline = elapsed_deadline(since.0);
        if deadline <= now {
            continue;
        }
        let left = Duration::try_from(deadline.duration_since(now)).unwrap_or_default();
        out.recheck_after = Some(out.recheck_after.map_or(left, |d| d.min(left)));
        disrupted.insert(name, since.clone());
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .filter(|p| is_ready(p))
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };
    let (status, reason) = if allowed > 0 { ("True", SUFFICIENT_PODS) } else { ("False", INSUFFICIENT_PODS) };
    out.status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(set_condition(old.conditions.as_deref(), status, reason, "", generation, now)),
    };
    out
}

/// The conditions with `DisruptionAllowed` set; its transition time moves only when its status does.
fn set_condition(
    old: Option<&[Condition]>,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut conditions: Vec<Condition> = old.map(<[Condition]>::to_vec).unwrap_or_default();
    let previous = conditions.iter().find(|c| c.type_ == CONDITION);
    let since = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    conditions.retain(|c| c.type_ != CONDITION);
    conditions.push(Condition {
        type_: CONDITION.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: since,
    });
    conditions
}
