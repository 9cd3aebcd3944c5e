//! Which informer changes matter to the scheduler: whether a pod is ours to place, whether a pod update
//! could change its placement, and whether a node update could let parked pods fit (node heartbeats
//! must not wake every unschedulable pod).
//!
//! Pure: must not depend on the store, HTTP or I/O.

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};

use super::snapshot::{bound_node, is_terminal};

/// The scheduler name this scheduler serves (also the default for pods that name none).
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Whether `pod` waits for this scheduler: it names the default scheduler (or none), has no node, is
/// not being deleted, has not finished, and has no scheduling gates.
pub fn needs_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    let ours = spec.scheduler_name.as_deref().is_none_or(|name| name.is_empty() || name == DEFAULT_SCHEDULER);
    let gated = spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty());
    ours && !gated && bound_node(pod).is_none() && pod.metadata.deletion_timestamp.is_none() && !is_terminal(pod)
}

/// Whether an update of a waiting pod could change where it fits (its spec or labels), as opposed to
/// status writes such as the scheduler's own `PodScheduled` condition.
pub fn pod_update_matters(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec || old.metadata.labels != new.metadata.labels
}

/// Whether a bound pod stopped using its node (deleted or finished): parked pods may fit now.
pub fn frees_resources(old: Option<&Pod>, new: Option<&Pod>) -> bool {
    let counted = |p: Option<&Pod>| p.is_some_and(|p| bound_node(p).is_some() && !is_terminal(p));
    counted(old) && !counted(new)
}

/// Whether a node update could make a pod fit that did not before: schedulability, taints, labels,
/// allocatable, or readiness changed. Heartbeat-only updates do not count.
pub fn node_update_matters(old: &Node, new: &Node) -> bool {
    let spec = |n: &Node| n.spec.as_ref().map(|s| (s.unschedulable, s.taints.clone()));
    let allocatable = |n: &Node| n.status.as_ref().and_then(|s| s.allocatable.clone());
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    spec(old) != spec(new)
        || old.metadata.labels != new.metadata.labels
        || allocatable(old) != allocatable(new)
        || ready(old) != ready(new)
}

/// The pod's `PodScheduled` condition, if any.
pub fn scheduled_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
}

/// Whether the pod already reports `PodScheduled=False/Unschedulable` with `message` (no need to write
/// it again).
pub fn reports_unschedulable(pod: &Pod, message: &str) -> bool {
    scheduled_condition(pod).is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some("Unschedulable") && c.message.as_deref() == Some(message)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::scheduler::tests::{bound, merge, node, pod};

    fn with(mut base: Value, patch: Value) -> Value {
        merge(&mut base, patch);
        base
    }

    #[test]
    fn only_pending_default_scheduler_pods_are_ours() {
        let cases = [
            ("plain", json!({}), true),
            ("named default", json!({ "spec": { "schedulerName": "default-scheduler" } }), true),
            ("other scheduler", json!({ "spec": { "schedulerName": "custom" } }), false),
            ("bound", json!({ "spec": { "nodeName": "n" } }), false),
            ("deleting", json!({ "metadata": { "deletionTimestamp": "2026-01-01T00:00:00Z" } }), false),
            ("failed", json!({ "status": { "phase": "Failed" } }), false),
            ("gated", json!({ "spec": { "schedulingGates": [{ "name": "g" }] } }), false),
        ];
        for (name, patch, expected) in cases {
            assert_eq!(needs_scheduling(&pod("p", "1", "1Gi", patch)), expected, "{name}");
        }
    }

    #[test]
    fn status_writes_do_not_matter_but_spec_and_labels_do() {
        let old = pod("p", "1", "1Gi", json!({}));
        let status = pod(
            "p",
            "1",
            "1Gi",
            json!({ "status": { "conditions": [{ "type": "PodScheduled", "status": "False" }] } }),
        );
        assert!(!pod_update_matters(&old, &status));
        assert!(pod_update_matters(&old, &pod("p", "2", "1Gi", json!({}))));
        assert!(pod_update_matters(&old, &pod("p", "1", "1Gi", json!({ "metadata": { "labels": { "a": "b" } } }))));
    }

    #[test]
    fn resources_are_freed_by_deleting_or_finishing_a_bound_pod() {
        let running = bound(pod("p", "1", "1Gi", json!({})), "n");
        let done = bound(pod("p", "1", "1Gi", json!({ "status": { "phase": "Succeeded" } })), "n");
        let pending = pod("p", "1", "1Gi", json!({}));
        assert!(frees_resources(Some(&running), None));
        assert!(frees_resources(Some(&running), Some(&done)));
        assert!(!frees_resources(Some(&running), Some(&running)));
        assert!(!frees_resources(Some(&pending), None));
        assert!(!frees_resources(None, Some(&running)));
    }

    #[test]
    fn heartbeats_do_not_matter_but_capacity_taints_and_readiness_do() {
        let base = json!({ "status": { "conditions": [{ "type": "Ready", "status": "True",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z" }] } });
        let old = node("n", base.clone());
        let beat = node(
            "n",
            json!({ "status": { "conditions": [{ "type": "Ready", "status": "True",
            "lastHeartbeatTime": "2026-01-01T00:00:10Z" }] } }),
        );
        assert!(!node_update_matters(&old, &beat));
        let not_ready = node("n", json!({ "status": { "conditions": [{ "type": "Ready", "status": "False" }] } }));
        assert!(node_update_matters(&old, &not_ready));
        assert!(node_update_matters(
            &old,
            &node("n", with(base.clone(), json!({ "spec": { "unschedulable": true } })))
        ));
        assert!(node_update_matters(
            &old,
            &node("n", with(base.clone(), json!({ "status": { "allocatable": { "cpu": "8" } } })))
        ));
        assert!(node_update_matters(
            &old,
            &node("n", with(base, json!({ "metadata": { "labels": { "zone": "a" } } })))
        ));
    }

    #[test]
    fn an_identical_unschedulable_condition_is_not_rewritten() {
        let p = pod(
            "p",
            "1",
            "1Gi",
            json!({ "status": { "conditions": [{ "type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu." }] } }),
        );
        assert!(reports_unschedulable(&p, "0/1 nodes are available: 1 Insufficient cpu."));
        assert!(!reports_unschedulable(&p, "0/2 nodes are available: 2 Insufficient cpu."));
        assert!(!reports_unschedulable(&pod("p", "1", "1Gi", json!({})), "x"));
    }
}
