//! The taint manager's decision (upstream `NoExecuteTaintManager`): which pods on a node with
//! `NoExecute` taints must go now, and when the next one's toleration runs out.
//!
//! A pod that does not tolerate some `NoExecute` taint goes at once. A pod tolerating all of them stays
//! for the smallest `tolerationSeconds` among the tolerations used, counted from the taint's
//! `timeAdded`; tolerations without `tolerationSeconds` tolerate forever. Pods get upstream's
//! `DefaultTolerationSeconds` admission tolerations (not-ready and unreachable for 300 s) unless they
//! tolerate those taints themselves, because this API does not add them at admission.
//!
//! Pure: must not depend on the API client.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::taints::{NOT_READY, NO_EXECUTE, UNREACHABLE};
use crate::pods::is_terminal;
use crate::scheduler::taints::tolerates;

/// `tolerationSeconds` of the tolerations upstream's `DefaultTolerationSeconds` admission adds.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The pods to delete now and when to look again.
#[derive(Debug, Default)]
pub struct EvictionPlan {
    pub evict: Vec<Arc<Pod>>,
    /// Until the earliest toleration of a remaining pod runs out.
    pub recheck_after: Option<Duration>,
}

/// The pod's tolerations plus the admission defaults it does not override.
pub fn effective_tolerations(pod: &Pod) -> Vec<Toleration> {
    let mut out: Vec<Toleration> = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    for key in [NOT_READY, UNREACHABLE] {
        let probe = Taint { key: key.to_string(), effect: NO_EXECUTE.to_string(), value: None, time_added: None };
        if !out.iter().any(|t| tolerates(t, &probe)) {
            out.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some(NO_EXECUTE.to_string()),
                toleration_seconds: Some(DEFAULT_TOLERATION_SECONDS),
                value: None,
            });
        }
    }
    out
}

/// When `pod` must leave a node with `taints` (`NoExecute` ones are considered): `Some(deadline)`,
/// where a deadline at or before the taint's addition means at once; `None` if it may stay forever.
/// `added` is when a taint without `timeAdded` was first seen.
pub fn eviction_deadline(pod: &Pod, taints: &[Taint], added: impl Fn(&Taint) -> Timestamp) -> Option<Timestamp> {
    let tolerations = effective_tolerations(pod);
    let mut deadline: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        let since = taint.time_added.as_ref().map(|t| t.0).unwrap_or_else(|| added(taint));
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let at = if used.is_empty() {
            Some(Timestamp::MIN)
        } else {
            // The smallest limit wins; a non-positive one means at once, as upstream.
            used.iter()
                .filter_map(|t| t.toleration_seconds)
                .min()
                .map(|secs| since.checked_add(SignedDuration::from_secs(secs.max(0))).unwrap_or(Timestamp::MAX))
        };
        deadline = match (deadline, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    deadline
}

/// Plans evictions of `pods` (those bound to the node) from a node with `taints` at `now`. Pods
/// already being deleted or finished are left alone.
pub fn plan(pods: &[Arc<Pod>], taints: &[Taint], now: Timestamp, added: impl Fn(&Taint) -> Timestamp) -> EvictionPlan {
    let mut out = EvictionPlan::default();
    if !taints.iter().any(|t| t.effect == NO_EXECUTE) {
        return out;
    }
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() || is_terminal(pod) {
            continue;
        }
        let Some(deadline) = eviction_deadline(pod, taints, &added) else { continue };
        if deadline <= now {
            out.evict.push(pod.clone());
        } else {
            let left = Duration::try_from(deadline.duration_since(now)).unwrap_or_default();
            out.recheck_after = Some(out.recheck_after.map_or(left, |d| d.min(left)));
        }
    }
    out
}
