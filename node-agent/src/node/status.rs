//! The Node object and its status as pure functions of the machine, the configuration and the
//! runtime's health. Owns condition semantics (transition times kept while a condition holds) and the
//! "did anything change" test that decides whether a status update is sent. No I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::machine::MachineInfo;

/// The kubelet version the agent reports.
pub const AGENT_VERSION: &str = "v1.33.0-gantry";

/// Everything a node status is computed from.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub ip: String,
    pub port: u16,
    pub pod_cidr: Option<String>,
    pub machine: MachineInfo,
    pub reserved_cpu_millis: u64,
    pub reserved_memory_bytes: u64,
    pub max_pods: u32,
    /// `runtime://version` from CRI `Version`, or empty while the runtime never answered.
    pub runtime_version: String,
    /// `None` when the runtime is ready, else why not.
    pub runtime_not_ready: Option<String>,
    /// Memory, disk and pid pressure, as last read.
    pub pressure: super::pressure::Pressure,
}

/// The Node to create at registration.
pub fn node_object(facts: &NodeFacts, now: Timestamp) -> Node {
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), facts.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), facts.machine.architecture.clone()),
    ]);
    Node {
        metadata: ObjectMeta { name: Some(facts.name.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec {
            pod_cidr: facts.pod_cidr.clone(),
            pod_cidrs: facts.pod_cidr.clone().map(|c| vec![c]),
            ..Default::default()
        }),
        status: Some(node_status(facts, None, now)),
    }
}

/// The status to report now; transition times are carried over from `old` while a condition holds.
pub fn node_status(facts: &NodeFacts, old: Option<&NodeStatus>, now: Timestamp) -> NodeStatus {
    let cpu_millis = facts.machine.cpus * 1000;
    let memory = facts.machine.memory_bytes;
    let capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity(facts.machine.cpus.to_string())),
        ("memory".to_string(), Quantity(format!("{}Ki", memory / 1024))),
        ("pods".to_string(), Quantity(facts.max_pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("0".to_string())),
    ]);
    let alloc_cpu = cpu_millis.saturating_sub(facts.reserved_cpu_millis);
    let alloc_mem = memory.saturating_sub(facts.reserved_memory_bytes);
    let allocatable = BTreeMap::from([
        ("cpu".to_string(), Quantity(format!("{alloc_cpu}m"))),
        ("memory".to_string(), Quantity(format!("{}Ki", alloc_mem / 1024))),
        ("pods".to_string(), Quantity(facts.max_pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("0".to_string())),
    ]);
    let ready = match &facts.runtime_not_ready {
        None => condition("Ready", "True", "KubeletReady", "gantry node agent is posting ready status"),
        Some(why) => condition("Ready", "False", "KubeletNotReady", &format!("container runtime not ready: {why}")),
    };
    let conditions = vec![
        match facts.pressure.memory {
            false => condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "node has sufficient memory available",
            ),
            true => condition(
                "MemoryPressure",
                "True",
                "KubeletHasInsufficientMemory",
                "node has insufficient memory available",
            ),
        },
        match facts.pressure.disk {
            false => condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "node has no disk pressure"),
            true => condition("DiskPressure", "True", "KubeletHasDiskPressure", "node has disk pressure"),
        },
        match facts.pressure.pid {
            false => condition("PIDPressure", "False", "KubeletHasSufficientPID", "node has sufficient PID available"),
            true => {
                condition("PIDPressure", "True", "KubeletHasInsufficientPID", "node has insufficient PID available")
            }
        },
        ready,
    ];
    let old_conditions = old.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let conditions = conditions
        .into_iter()
        .map(|mut c| {
            let since = old_conditions
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
                .and_then(|o| o.last_transition_time.clone());
            c.last_transition_time = Some(since.unwrap_or(Time(now)));
            c.last_heartbeat_time = Some(Time(now));
            c
        })
        .collect();
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: facts.ip.clone() },
            NodeAddress { type_: "Hostname".into(), address: facts.name.clone() },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(facts.port) }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: facts.machine.architecture.clone(),
            boot_id: String::new(),
            container_runtime_version: facts.runtime_version.clone(),
            kernel_version: facts.machine.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: AGENT_VERSION.to_string(),
            machine_id: facts.machine.machine_id.clone(),
            operating_system: "linux".to_string(),
            os_image: facts.machine.os_image.clone(),
            system_uuid: String::new(),
            swap: None,
        }),
        ..Default::default()
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: None,
        last_transition_time: None,
    }
}

/// Whether `new` differs from `old` in anything but heartbeat times (what makes an update worth sending).
pub fn changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s
    };
    strip(old) != strip(new)
}

/// Whether the node's Ready condition is True.
pub fn is_ready(status: &NodeStatus) -> bool {
    status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::SignedDuration;

    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "node-1".into(),
            ip: "10.0.0.5".into(),
            port: 10250,
            pod_cidr: None,
            machine: MachineInfo {
                cpus: 2,
                memory_bytes: 4 * 1024 * 1024 * 1024,
                kernel_version: "6.1.0".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                architecture: "amd64".into(),
                machine_id: "m".into(),
                hostname: "h".into(),
            },
            reserved_cpu_millis: 500,
            reserved_memory_bytes: 1024 * 1024 * 1024,
            max_pods: 110,
            runtime_version: "containerd://1.6.20".into(),
            runtime_not_ready: None,
            pressure: Default::default(),
        }
    }

    fn get<'a>(status: &'a NodeStatus, type_: &str) -> &'a NodeCondition {
        status.conditions.iter().flatten().find(|c| c.type_ == type_).expect("condition")
    }

    #[test]
    fn registration_carries_labels_capacity_allocatable_and_info() {
        let node = node_object(&facts(), Timestamp::UNIX_EPOCH);
        let labels = node.metadata.labels.expect("labels");
        assert_eq!(labels["kubernetes.io/hostname"], "node-1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        let status = node.status.expect("status");
        let capacity = status.capacity.as_ref().expect("capacity");
        assert_eq!(capacity["cpu"].0, "2");
        assert_eq!(capacity["memory"].0, "4194304Ki");
        assert_eq!(capacity["pods"].0, "110");
        let allocatable = status.allocatable.as_ref().expect("allocatable");
        assert_eq!(allocatable["cpu"].0, "1500m");
        assert_eq!(allocatable["memory"].0, "3145728Ki");
        let info = status.node_info.as_ref().expect("info");
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        assert_eq!(info.kubelet_version, AGENT_VERSION);
        assert!(is_ready(&status));
        for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(get(&status, pressure).status, "False");
        }
        let addresses = status.addresses.expect("addresses");
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, "10.0.0.5");
    }

    #[test]
    fn pressure_shows_as_its_condition_with_the_kubelet_reason() {
        let mut f = facts();
        f.pressure = super::super::pressure::Pressure { memory: true, disk: false, pid: true };
        let status = node_status(&f, None, Timestamp::UNIX_EPOCH);
        let memory = get(&status, "MemoryPressure");
        assert_eq!((memory.status.as_str(), memory.reason.as_deref()), ("True", Some("KubeletHasInsufficientMemory")));
        assert_eq!(get(&status, "DiskPressure").status, "False");
        assert_eq!(get(&status, "PIDPressure").reason.as_deref(), Some("KubeletHasInsufficientPID"));
        assert!(is_ready(&status), "pressure alone does not make the node unready");
    }

    #[test]
    fn an_unready_runtime_makes_the_node_not_ready_with_the_reason() {
        let mut f = facts();
        f.runtime_not_ready = Some("connecting to the runtime: refused".into());
        let status = node_status(&f, None, Timestamp::UNIX_EPOCH);
        let ready = get(&status, "Ready");
        assert_eq!(ready.status, "False");
        assert!(ready.message.as_deref().unwrap_or_default().contains("refused"));
    }

    #[test]
    fn transition_times_hold_while_a_condition_holds_and_heartbeats_do_not_count_as_change() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + SignedDuration::from_secs(60);
        let first = node_status(&facts(), None, t0);
        let second = node_status(&facts(), Some(&first), t1);
        assert_eq!(get(&second, "Ready").last_transition_time, Some(Time(t0)));
        assert_eq!(get(&second, "Ready").last_heartbeat_time, Some(Time(t1)));
        assert!(!changed(&first, &second));
        let mut f = facts();
        f.runtime_not_ready = Some("down".into());
        let third = node_status(&f, Some(&second), t1);
        assert_eq!(get(&third, "Ready").last_transition_time, Some(Time(t1)));
        assert!(changed(&second, &third));
    }
}
