//! State shared by the node heartbeat loops and the pod workers: the fixed set of simulated nodes,
//! which of them are alive, the pod cache, pod IPs and the write budget. No decisions, no API calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{Notify, Semaphore};

use crate::config::SimConfig;
use crate::work_queue::WorkQueue;

/// Concurrent API writes across all nodes and pods: enough to turn a burst of pods Running within
/// seconds, few enough not to swamp a small control plane.
pub const MAX_CONCURRENT_WRITES: usize = 64;

/// A pod by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

/// One simulated node.
pub struct NodeState {
    pub index: usize,
    pub name: String,
    pub host_ip: String,
    /// False while heartbeats are stopped (a dead node).
    pub alive: AtomicBool,
    /// Set when the node must post its status (and re-register if gone) at the next wake-up.
    pub status_due: AtomicBool,
    /// Wakes the node's heartbeat loop early.
    pub kick: Notify,
    /// When Ready last became True, for the condition's lastTransitionTime.
    pub ready_since: Mutex<Timestamp>,
    /// The Node's uid once known, for the Lease's owner reference.
    pub uid: Mutex<Option<String>>,
}

impl NodeState {
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain data that stay consistent if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Shared {
    pub client: kube::Client,
    pub config: SimConfig,
    pub nodes: HashMap<String, Arc<NodeState>>,
    pub writes: Semaphore,
    /// Pods bound to simulated nodes, as last seen (managed fields dropped).
    pub pods: Mutex<HashMap<PodKey, Arc<Pod>>>,
    pub queue: WorkQueue<PodKey>,
    /// Addresses handed out, by pod uid, so a retried start reuses the same one.
    pub pod_ips: Mutex<HashMap<String, String>>,
    next_ip: AtomicU32,
}

impl Shared {
    pub fn new(client: kube::Client, config: SimConfig) -> Self {
        let now = Timestamp::now();
        let nodes = (0..config.nodes)
            .map(|index| {
                let name = config.node_name(index);
                let node = NodeState {
                    index,
                    name: name.clone(),
                    host_ip: crate::node_object::host_ip(index),
                    alive: AtomicBool::new(true),
                    status_due: AtomicBool::new(false),
                    kick: Notify::new(),
                    ready_since: Mutex::new(crate::pod_plan::whole_second(now)),
                    uid: Mutex::new(None),
                };
                (name, Arc::new(node))
            })
            .collect();
        Self {
            client,
            config,
            nodes,
            writes: Semaphore::new(MAX_CONCURRENT_WRITES),
            pods: Mutex::new(HashMap::new()),
            queue: WorkQueue::new(),
            pod_ips: Mutex::new(HashMap::new()),
            next_ip: AtomicU32::new(0),
        }
    }

    /// The simulated node a pod is bound to, if any.
    pub fn node_of(&self, pod: &Pod) -> Option<&Arc<NodeState>> {
        pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).and_then(|n| self.nodes.get(n))
    }

    /// The pod's address: the one it was given before, or the next free one in 10.0.0.0/8.
    pub fn pod_ip(&self, uid: &str) -> String {
        let mut ips = lock(&self.pod_ips);
        if let Some(ip) = ips.get(uid) {
            return ip.clone();
        }
        let ip = next_pod_ip(&self.next_ip);
        ips.insert(uid.to_string(), ip.clone());
        ip
    }
}

/// Addresses 10.0.0.1 upwards, skipping .0 and .255 host parts; wraps after ~16M pods.
fn next_pod_ip(counter: &AtomicU32) -> String {
    loop {
        let n = counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let last = n & 0xff;
        if last != 0 && last != 0xff {
            return std::net::Ipv4Addr::from(0x0a00_0000 | n).to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ips_are_unique_and_skip_network_and_broadcast_octets() {
        let counter = AtomicU32::new(0);
        let ips: Vec<String> = (0..1000).map(|_| next_pod_ip(&counter)).collect();
        assert_eq!(ips[0], "10.0.0.1");
        assert_eq!(ips[253], "10.0.0.254");
        assert_eq!(ips[254], "10.0.1.1");
        let unique: std::collections::HashSet<_> = ips.iter().collect();
        assert_eq!(unique.len(), ips.len());
    }
}
