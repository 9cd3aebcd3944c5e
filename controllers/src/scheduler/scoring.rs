//! Scoring of the feasible nodes: each criterion gives 0..=100 per node (normalised across the feasible
//! nodes where upstream normalises), and a node's score is the weighted sum. Weights follow the upstream
//! default profile where the plugin exists:
//!
//! | criterion | weight | upstream plugin |
//! |---|---|---|
//! | least allocated CPU/memory (mean free fraction after placing the pod) | 1 | `NodeResourcesFit` (LeastAllocated) |
//! | balanced CPU vs memory utilisation | 1 | `NodeResourcesBalancedAllocation` |
//! | preferred node affinity (sum of matching term weights, scaled to the max) | 2 | `NodeAffinity` |
//! | preferred pod anti-affinity (minus weights of matching pods in the domain, min-max scaled) | 2 | `InterPodAffinity` |
//! | spreading: fewer pods of the same controller (owner uid) on the node | 2 | `PodTopologySpread` defaults |
//! | fewer untolerated `PreferNoSchedule` taints | 3 | `TaintToleration` |
//!
//! Requests use the non-zero defaults (100m CPU, 200Mi memory per container without requests).
//! Pure: must not depend on the store, HTTP or I/O.

use k8s_openapi::api::core::v1::{Node, Pod};

use super::matching::{node_selector_term_matches, pod_namespace};
use super::pod_info::{controller_uid, PodInfo};
use super::resources::Allocatable;
use super::snapshot::{topology_value, NodeInfo};
use super::taints::{first_untolerated, node_taints, pod_tolerations};

/// The best score of one criterion.
pub const MAX_NODE_SCORE: i64 = 100;
/// Weight of the least-allocated criterion.
pub const LEAST_ALLOCATED_WEIGHT: i64 = 1;
/// Weight of the balanced-allocation criterion.
pub const BALANCED_ALLOCATION_WEIGHT: i64 = 1;
/// Weight of preferred node affinity.
pub const NODE_AFFINITY_WEIGHT: i64 = 2;
/// Weight of preferred pod anti-affinity.
pub const POD_ANTI_AFFINITY_WEIGHT: i64 = 2;
/// Weight of spreading a controller's pods.
pub const SPREAD_WEIGHT: i64 = 2;
/// Weight of avoiding `PreferNoSchedule` taints.
pub const TAINT_TOLERATION_WEIGHT: i64 = 3;

/// The total score of each of `feasible` (a node and what runs on it), in the same order.
pub fn score_nodes(pod: &PodInfo<'_>, feasible: &[(&Node, &NodeInfo)]) -> Vec<i64> {
    let affinity = scale_to_max(feasible.iter().map(|(n, _)| preferred_node_affinity(pod.pod, n)).collect());
    let anti = min_max(feasible.iter().map(|(n, _)| preferred_anti_affinity(pod, n)).collect());
    let spread = reverse_scale(feasible.iter().map(|(_, info)| same_controller(pod, info)).collect());
    let taints = reverse_scale(feasible.iter().map(|(n, _)| prefer_no_schedule_taints(pod.pod, n)).collect());
    feasible
        .iter()
        .enumerate()
        .map(|(i, (_, info))| {
            let requested = info.non_zero_requested.plus(pod.non_zero_requests);
            let (least, balanced) = allocation_scores(info.allocatable, requested);
            LEAST_ALLOCATED_WEIGHT * least
                + BALANCED_ALLOCATION_WEIGHT * balanced
                + NODE_AFFINITY_WEIGHT * affinity[i]
                + POD_ANTI_AFFINITY_WEIGHT * anti[i]
                + SPREAD_WEIGHT * spread[i]
                + TAINT_TOLERATION_WEIGHT * taints[i]
        })
        .collect()
}

/// `(least allocated, balanced allocation)` for the node's requests including the pod. An unreported or
/// zero capacity counts as fully used.
fn allocation_scores(allocatable: Allocatable, requested: super::resources::Resources) -> (i64, i64) {
    let free = |cap: Option<i64>, used: i64| match cap {
        Some(cap) if cap > 0 && used <= cap => (cap - used) * MAX_NODE_SCORE / cap,
        _ => 0,
    };
    let fraction = |cap: Option<i64>, used: i64| match cap {
        Some(cap) if cap > 0 => (used as f64 / cap as f64).min(1.0),
        _ => 1.0,
    };
    let least = (free(allocatable.milli_cpu, requested.milli_cpu) + free(allocatable.memory, requested.memory)) / 2;
    let deviation =
        (fraction(allocatable.milli_cpu, requested.milli_cpu) - fraction(allocatable.memory, requested.memory)).abs()
            / 2.0;
    let balanced = ((1.0 - deviation) * MAX_NODE_SCORE as f64) as i64;
    (least, balanced)
}

fn preferred_node_affinity(pod: &Pod, node: &Node) -> i64 {
    let terms = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default();
    terms.iter().filter(|t| node_selector_term_matches(&t.preference, node)).map(|t| i64::from(t.weight)).sum()
}

/// Minus the weighted count of running pods the pod's preferred anti-affinity terms select in the
/// node's domains (counted once per placement by [`PodInfo::new`]).
fn preferred_anti_affinity(pod: &PodInfo<'_>, node: &Node) -> i64 {
    let penalty: i64 = pod
        .preferred_anti
        .iter()
        .map(|(weight, key, counts)| {
            let matching = topology_value(node, key).and_then(|value| counts.get(value)).copied().unwrap_or(0);
            weight.saturating_mul(matching)
        })
        .sum();
    -penalty
}

/// Pods of the same controller (and namespace) already on the node.
fn same_controller(pod: &PodInfo<'_>, info: &NodeInfo) -> i64 {
    let Some(uid) = pod.controller_uid else {
        return 0;
    };
    let namespace = pod_namespace(pod.pod);
    let count = info.pods.values().filter(|p| controller_uid(p) == Some(uid) && pod_namespace(p) == namespace).count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn prefer_no_schedule_taints(pod: &Pod, node: &Node) -> i64 {
    let tolerations = pod_tolerations(pod);
    let count = node_taints(node)
        .iter()
        .filter(|t| first_untolerated(std::slice::from_ref(*t), tolerations, &["PreferNoSchedule"]).is_some())
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// `raw * 100 / max` (all 0 when the max is 0).
fn scale_to_max(raw: Vec<i64>) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.into_iter().map(|r| if max > 0 { r * MAX_NODE_SCORE / max } else { 0 }).collect()
}

/// `(raw - min) * 100 / (max - min)` (all 0 when every value is equal).
fn min_max(raw: Vec<i64>) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    let min = raw.iter().copied().min().unwrap_or(0);
    raw.into_iter().map(|r| if max > min { (r - min) * MAX_NODE_SCORE / (max - min) } else { 0 }).collect()
}

/// `(max - raw) * 100 / max`: fewer is better (all 100 when the max is 0).
fn reverse_scale(raw: Vec<i64>) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.into_iter().map(|r| if max > 0 { (max - r) * MAX_NODE_SCORE / max } else { MAX_NODE_SCORE }).collect()
}
