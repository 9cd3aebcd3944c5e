//! What a simulated node looks like to the API: its Node object, its status (conditions, capacity,
//! addresses, node info) and its Lease. Pure builders of object snapshots; must not do I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use crate::config::SimConfig;

/// The kubelet version every simulated node reports.
pub const KUBELET_VERSION: &str = "v1.33.0-gantry-sim";
/// Namespace of node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Lease duration the kubelet uses (`nodeLeaseDurationSeconds` default).
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// The fake loopback address of node number `index` (127.1.0.1, 127.1.0.2, ...).
pub fn host_ip(index: usize) -> String {
    let n = 0x7f01_0000u32.wrapping_add(1).wrapping_add(u32::try_from(index).unwrap_or(u32::MAX) & 0x00ff_ffff);
    std::net::Ipv4Addr::from(n).to_string()
}

/// Labels of a simulated node: the kubelet's well-known ones, `type=sim`, then the configured ones.
pub fn node_labels(config: &SimConfig, name: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("type".to_string(), "sim".to_string()),
    ]);
    labels.extend(config.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// The Node as registered (status included: upstream accepts status on Node create).
pub fn node(config: &SimConfig, index: usize, now: Timestamp) -> Node {
    let name = config.node_name(index);
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(node_labels(config, &name)),
            annotations: Some(BTreeMap::from([("sim.gantry.dev/simulated".to_string(), "true".to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(node_status(config, index, now, now)),
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    heartbeat: Timestamp,
    since: Timestamp,
) -> NodeCondition {
    NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(heartbeat)),
        last_transition_time: Some(Time(since)),
    }
}

/// The status a healthy kubelet posts: `heartbeat` is now, `ready_since` when Ready last became True.
pub fn node_status(config: &SimConfig, index: usize, heartbeat: Timestamp, ready_since: Timestamp) -> NodeStatus {
    let name = config.node_name(index);
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(config.cpu.clone())),
        ("memory".to_string(), Quantity(config.memory.clone())),
        ("pods".to_string(), Quantity(config.pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".to_string())),
    ]);
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                heartbeat,
                ready_since,
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                heartbeat,
                ready_since,
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                heartbeat,
                ready_since,
            ),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", heartbeat, ready_since),
        ]),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".to_string(), address: host_ip(index) },
            NodeAddress { type_: "Hostname".to_string(), address: name.clone() },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }) }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".to_string(),
            boot_id: format!("sim-boot-{name}"),
            container_runtime_version: "sim://1.0.0".to_string(),
            kernel_version: "6.0.0-sim".to_string(),
            kube_proxy_version: KUBELET_VERSION.to_string(),
            kubelet_version: KUBELET_VERSION.to_string(),
            machine_id: format!("sim-machine-{name}"),
            operating_system: "linux".to_string(),
            os_image: "Gantry simulated node".to_string(),
            system_uuid: format!("sim-uuid-{name}"),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// The spec fields a heartbeat writes into the node's Lease.
pub fn lease_spec(node: &str, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(node.to_string()),
        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
        renew_time: Some(MicroTime(now)),
        ..LeaseSpec::default()
    }
}

/// A new Lease for `node`, owned by the Node (uid known) so it goes when the Node goes, as upstream.
pub fn lease(node: &str, node_uid: Option<&str>, now: Timestamp) -> Lease {
    let owner = node_uid.map(|uid| OwnerReference {
        api_version: "v1".to_string(),
        kind: "Node".to_string(),
        name: node.to_string(),
        uid: uid.to_string(),
        ..OwnerReference::default()
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec { acquire_time: Some(MicroTime(now)), ..lease_spec(node, now) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ips_are_distinct_loopback_addresses() {
        assert_eq!(host_ip(0), "127.1.0.1");
        assert_eq!(host_ip(255), "127.1.1.0");
        assert_eq!(host_ip(999), "127.1.3.232");
        let ips: std::collections::HashSet<_> = (0..5000).map(host_ip).collect();
        assert_eq!(ips.len(), 5000);
    }

    #[test]
    fn node_has_capacity_labels_and_ready_condition() {
        let config = SimConfig {
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: 50,
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            ..SimConfig::default()
        };
        let now = Timestamp::UNIX_EPOCH;
        let n = node(&config, 3, now);
        let labels = n.metadata.labels.clone().unwrap_or_default();
        assert_eq!(n.metadata.name.as_deref(), Some("sim-node-3"));
        assert_eq!(labels.get("kubernetes.io/hostname").map(String::as_str), Some("sim-node-3"));
        assert_eq!(labels.get("type").map(String::as_str), Some("sim"));
        assert_eq!(labels.get("zone").map(String::as_str), Some("a"));
        let status = n.status.unwrap_or_default();
        let cap = status.capacity.unwrap_or_default();
        assert_eq!(cap.get("cpu"), Some(&Quantity("4".into())));
        assert_eq!(cap.get("memory"), Some(&Quantity("8Gi".into())));
        assert_eq!(cap.get("pods"), Some(&Quantity("50".into())));
        assert_eq!(status.allocatable.unwrap_or_default().get("pods"), Some(&Quantity("50".into())));
        let conditions = status.conditions.unwrap_or_default();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").map(|c| (c.status.as_str(), c.reason.as_deref()));
        assert_eq!(ready, Some(("True", Some("KubeletReady"))));
        for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert!(conditions.iter().any(|c| c.type_ == pressure && c.status == "False"), "{pressure}");
        }
        assert_eq!(status.node_info.map(|i| i.kubelet_version), Some(KUBELET_VERSION.to_string()));
    }

    #[test]
    fn lease_is_held_by_its_node() {
        let l = lease("n1", Some("u1"), Timestamp::UNIX_EPOCH);
        let spec = l.spec.unwrap_or_default();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(l.metadata.namespace.as_deref(), Some(LEASE_NAMESPACE));
        assert_eq!(l.metadata.owner_references.unwrap_or_default()[0].uid, "u1");
    }
}
