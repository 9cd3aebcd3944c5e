//! The taints the node lifecycle controller owns, derived from a node's conditions and
//! `spec.unschedulable` (upstream `doNoExecuteTaintingPass` and `doNoScheduleTaintingPass`, the latter
//! being what `TaintNodesByCondition` does).
//!
//! Pure: must not depend on the API client. Taints other than these are never touched.

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

pub const NO_EXECUTE: &str = "NoExecute";
pub const NO_SCHEDULE: &str = "NoSchedule";

/// Every taint key this module manages.
const MANAGED: [&str; 7] =
    [NOT_READY, UNREACHABLE, UNSCHEDULABLE, MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE, NETWORK_UNAVAILABLE];

/// Conditions that, when `True`, make a node unschedulable through a `NoSchedule` taint.
const PRESSURE: [(&str, &str); 4] = [
    ("MemoryPressure", MEMORY_PRESSURE),
    ("DiskPressure", DISK_PRESSURE),
    ("PIDPressure", PID_PRESSURE),
    ("NetworkUnavailable", NETWORK_UNAVAILABLE),
];

fn condition_status<'a>(node: &'a Node, kind: &str) -> Option<&'a str> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == kind).map(|c| c.status.as_str())
}

fn is_managed(taint: &Taint) -> bool {
    MANAGED.contains(&taint.key.as_str()) && (taint.effect == NO_EXECUTE || taint.effect == NO_SCHEDULE)
}

/// The managed `(key, effect)` pairs the node should carry.
pub fn wanted(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match condition_status(node, "Ready") {
        Some("False") => out.extend([(NOT_READY, NO_EXECUTE), (NOT_READY, NO_SCHEDULE)]),
        Some("Unknown") => out.extend([(UNREACHABLE, NO_EXECUTE), (UNREACHABLE, NO_SCHEDULE)]),
        _ => {}
    }
    for (condition, key) in PRESSURE {
        if condition_status(node, condition) == Some("True") {
            out.push((key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        out.push((UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

/// The node's full taint list after the managed taints are brought in line with its state, or `None`
/// when nothing changes. Taints already present keep their `timeAdded`; new `NoExecute` ones get `now`,
/// which is when the taint manager's `tolerationSeconds` start counting.
pub fn reconcile(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let current: &[Taint] = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let wanted = wanted(node);
    let keep = |t: &Taint| !is_managed(t) || wanted.iter().any(|(k, e)| t.key == *k && t.effect == *e);
    let mut next: Vec<Taint> = current.iter().filter(|t| keep(t)).cloned().collect();
    for (key, effect) in &wanted {
        if !next.iter().any(|t| t.key == *key && t.effect == *effect) {
            next.push(Taint {
                key: (*key).to_string(),
                effect: (*effect).to_string(),
                value: None,
                time_added: (*effect == NO_EXECUTE).then_some(Time(now)),
            });
        }
    }
    (next != current).then_some(next)
}
