//! The placement entry point: filter every node, score the feasible ones, pick the best.
//!
//! Pure: must not depend on the store, HTTP or I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::filters::filter_node;
use super::scoring::score_nodes;
use super::snapshot::{node_name, ClusterSnapshot};
use super::unschedulable::Unschedulable;

/// The name of the node `pod` should run on, or why no node can take it. Among feasible nodes the highest
/// [`score_nodes`](super::scoring::score_nodes) wins; ties go to the lexicographically smallest node name
/// (upstream picks randomly among ties; this is deterministic).
pub fn schedule(pod: &Pod, snapshot: &ClusterSnapshot) -> Result<String, Unschedulable> {
    let pods_by_node = snapshot.pods_by_node();
    let mut node_reasons = BTreeMap::new();
    let mut feasible = Vec::new();
    for node in &snapshot.nodes {
        let reasons = filter_node(pod, node, snapshot, &pods_by_node);
        if reasons.is_empty() {
            feasible.push(node);
        } else {
            node_reasons.insert(node_name(node).to_string(), reasons);
        }
    }
    let scores = score_nodes(pod, &feasible, snapshot, &pods_by_node);
    feasible
        .iter()
        .zip(scores)
        .max_by(|(a, score_a), (b, score_b)| score_a.cmp(score_b).then_with(|| node_name(b).cmp(node_name(a))))
        .map(|(node, _)| node_name(node).to_string())
        .ok_or(Unschedulable { total_nodes: snapshot.nodes.len(), node_reasons })
}
