//! The placement entry point: filter nodes, score the feasible ones, pick the best.
//!
//! Like upstream, large clusters are not searched exhaustively: filtering stops once
//! [`feasible_nodes_to_find`] nodes fit (upstream's adaptive `percentageOfNodesToScore`), and the search
//! starts where the previous one stopped, so every node gets its turn. An unschedulable pod has been
//! checked against every node, so its message counts them all.
//!
//! Pure: must not depend on the store, HTTP or I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::filters::filter_node;
use super::pod_info::PodInfo;
use super::scoring::score_nodes;
use super::snapshot::{node_name, ClusterSnapshot, NodeInfo};
use super::unschedulable::Unschedulable;

/// Below this many nodes every node is checked (upstream `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// Percentage of nodes scored in a small large cluster (upstream `DefaultPercentageOfNodesToScore` base).
const BASE_PERCENTAGE: usize = 50;
/// The adaptive percentage never drops below this (upstream `minFeasibleNodesPercentageToFind`).
const MIN_PERCENTAGE: usize = 5;

/// Where a search starts and whether it may stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SearchWindow {
    /// Index (in node-name order) of the first node checked; wraps around.
    pub start: usize,
    /// Check every node instead of stopping at [`feasible_nodes_to_find`].
    pub exhaustive: bool,
}

/// A successful placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The chosen node.
    pub node: String,
    /// How many nodes were checked: the next search should start this far after this one.
    pub checked: usize,
}

/// How many feasible nodes are enough to stop filtering, for a cluster of `total` nodes: all below 100,
/// else `50 - total/125` percent (at least 5 %), but never fewer than 100.
pub fn feasible_nodes_to_find(total: usize) -> usize {
    if total < MIN_FEASIBLE_NODES_TO_FIND {
        return total;
    }
    let percentage = BASE_PERCENTAGE.saturating_sub(total / 125).max(MIN_PERCENTAGE);
    (total * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The name of the node `pod` should run on, or why no node can take it, checking every node. Among
/// feasible nodes the highest [`score_nodes`] wins; ties go to the lexicographically smallest node name
/// (upstream picks randomly among ties; this is deterministic).
pub fn schedule(pod: &Pod, snapshot: &ClusterSnapshot) -> Result<String, Unschedulable> {
    schedule_in(pod, snapshot, SearchWindow { start: 0, exhaustive: true }).map(|p| p.node)
}

/// Like [`schedule`], searching `window`.
pub fn schedule_in(pod: &Pod, snapshot: &ClusterSnapshot, window: SearchWindow) -> Result<Placement, Unschedulable> {
    let info = PodInfo::new(pod, snapshot);
    let total = snapshot.node_count();
    let enough = if window.exhaustive { total } else { feasible_nodes_to_find(total) };
    let start = if total == 0 { 0 } else { window.start % total };
    let nodes = snapshot.nodes();
    let ordered = nodes.clone().skip(start).chain(nodes.take(start));
    let mut node_reasons = BTreeMap::new();
    let mut feasible: Vec<(&Node, &NodeInfo)> = Vec::new();
    let mut checked = 0;
    for (node, node_info) in ordered {
        if feasible.len() >= enough {
            break;
        }
        checked += 1;
        let reasons = filter_node(&info, node, node_info);
        if reasons.is_empty() {
            feasible.push((node, node_info));
        } else {
            node_reasons.insert(node_name(node).to_string(), reasons);
        }
    }
    let best = match feasible.as_slice() {
        [] => None,
        [only] => Some(only.0),
        _ => {
            let scores = score_nodes(&info, &feasible);
            feasible
                .iter()
                .zip(scores)
                .max_by(|((a, _), score_a), ((b, _), score_b)| {
                    score_a.cmp(score_b).then_with(|| node_name(b).cmp(node_name(a)))
                })
                .map(|((node, _), _)| *node)
        }
    };
    best.map(|node| Placement { node: node_name(node).to_string(), checked })
        .ok_or(Unschedulable { total_nodes: total, node_reasons })
}
