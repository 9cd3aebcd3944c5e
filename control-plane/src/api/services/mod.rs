//! Services' virtual IPs and node ports: the ranges they come from, allocation through the store
//! (atomically with the Service write), the update strategy around it, the repair pass, and the
//! Services every cluster has (`kubernetes` with its endpoints, `kube-dns`).
//!
//! Must not depend on hyper, TLS or the node agent.

pub mod allocation;
pub mod allocator;
pub mod api_endpoints;
pub mod fields;
pub mod metrics;
pub mod ranges;
pub mod repair;
pub mod reservations;
pub mod strategy;
pub mod system_services;

#[cfg(test)]
mod tests;

pub use allocator::ServiceAllocator;
pub use ranges::{ClusterIpRange, NodePortRange, ServiceRanges};

/// Whether `def` is core/v1 Services.
pub fn is_services(def: &super::resources::ResourceDef) -> bool {
    def.group.is_empty() && def.resource == "services"
}
