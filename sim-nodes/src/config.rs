//! The simulator's settings. Plain data: no I/O, no defaults hidden elsewhere.

use std::collections::BTreeMap;
use std::time::Duration;

/// How many nodes to simulate and what they look like.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes, named `<name_prefix>0` .. `<name_prefix>{nodes-1}`.
    pub nodes: usize,
    pub name_prefix: String,
    /// Capacity (and allocatable) CPU as a Kubernetes quantity.
    pub cpu: String,
    /// Capacity (and allocatable) memory as a Kubernetes quantity.
    pub memory: String,
    /// Pod capacity.
    pub pods: u32,
    /// Extra node labels, on top of `kubernetes.io/hostname`, `kubernetes.io/os` and `type=sim`.
    pub labels: BTreeMap<String, String>,
    /// How often each node renews its Lease in `kube-node-lease`.
    pub lease_interval: Duration,
    /// How often each node refreshes its Node status (condition heartbeats).
    pub status_interval: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 1,
            name_prefix: "sim-node-".to_string(),
            cpu: "8".to_string(),
            memory: "32Gi".to_string(),
            pods: 110,
            labels: BTreeMap::new(),
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(60),
        }
    }
}

impl SimConfig {
    /// The name of node number `index`.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}{index}", self.name_prefix)
    }
}
