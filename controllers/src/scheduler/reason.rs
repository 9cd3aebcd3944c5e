//! Why one node cannot run a pod, rendered with the upstream kube-scheduler wording.
//!
//! Pure: must not depend on the store, HTTP or I/O.

use std::fmt;

/// One reason a filter rejected a node. `Display` gives the exact upstream string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The node's `Ready` condition is not `True` (upstream's historical `NodeNotReady` wording).
    NotReady,
    /// `spec.unschedulable` (cordoned) and the pod does not tolerate `node.kubernetes.io/unschedulable`.
    Unschedulable,
    /// A `NoSchedule`/`NoExecute` taint the pod does not tolerate (the first one, as upstream).
    UntoleratedTaint { key: String, value: String },
    /// `nodeSelector` or required node affinity does not match.
    NodeAffinity,
    /// A requested host port is already used on the node.
    HostPorts,
    /// The node already runs `status.allocatable.pods` pods.
    TooManyPods,
    /// CPU requests exceed what is left of `status.allocatable.cpu`.
    InsufficientCpu,
    /// Memory requests exceed what is left of `status.allocatable.memory`.
    InsufficientMemory,
    /// The pod's required anti-affinity matches a pod in the node's topology domain.
    PodAntiAffinity,
    /// A pod in the node's topology domain has required anti-affinity matching this pod.
    ExistingPodsAntiAffinity,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotReady => f.write_str("node(s) were not ready"),
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::UntoleratedTaint { key, value } => write!(f, "node(s) had untolerated taint {{{key}: {value}}}"),
            Reason::NodeAffinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Reason::HostPorts => f.write_str("node(s) didn't have free ports for the requested pod ports"),
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::InsufficientCpu => f.write_str("Insufficient cpu"),
            Reason::InsufficientMemory => f.write_str("Insufficient memory"),
            Reason::PodAntiAffinity => f.write_str("node(s) didn't match pod anti-affinity rules"),
            Reason::ExistingPodsAntiAffinity => f.write_str("node(s) didn't satisfy existing pods anti-affinity rules"),
        }
    }
}
