//! The "no node fits" outcome of scheduling, with per-node reasons and the upstream `FailedScheduling`
//! message (`0/3 nodes are available: 1 node(s) had untolerated taint {k: }, 2 Insufficient cpu.`).
//!
//! Pure: must not depend on the store, HTTP or I/O.

use std::collections::BTreeMap;

use super::reason::Reason;

/// No node can run the pod. `Display` renders the upstream message: for each distinct reason the number
/// of nodes that gave it, as `"<count> <reason>"` strings sorted byte-wise and joined with `", "`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Unschedulable {
    /// How many nodes the snapshot held.
    pub total_nodes: usize,
    /// Node name -> the reasons its first failing filter gave.
    pub node_reasons: BTreeMap<String, Vec<Reason>>,
}

impl Unschedulable {
    /// The upstream `FitError` message.
    pub fn message(&self) -> String {
        if self.total_nodes == 0 {
            return "no nodes available to schedule pods".to_string();
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for reason in self.node_reasons.values().flatten() {
            *counts.entry(reason.to_string()).or_default() += 1;
        }
        let mut histogram: Vec<String> = counts.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
        histogram.sort();
        let mut message = format!("0/{} nodes are available:", self.total_nodes);
        if !histogram.is_empty() {
            message.push(' ');
            message.push_str(&histogram.join(", "));
            message.push('.');
        }
        message
    }
}
