//! CPU/memory arithmetic for placement: a pod's effective requests (containers, init containers, sidecars,
//! overhead) and a node's allocatable capacity.
//!
//! Pure: must not depend on the store, HTTP or I/O. Quantities the API server would have rejected count as 0.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity::{parse_milli_value, parse_value};

/// CPU used when a container requests none, for scoring only (upstream `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory used when a container requests none, for scoring only (upstream `DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of CPU (millicores) and memory (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
}

impl Resources {
    /// Component-wise sum, saturating.
    pub fn plus(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_add(other.milli_cpu),
            memory: self.memory.saturating_add(other.memory),
        }
    }

    /// Component-wise difference, saturating (removing a pod's requests from a node's sum).
    pub fn minus(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_sub(other.milli_cpu),
            memory: self.memory.saturating_sub(other.memory),
        }
    }

    /// Component-wise maximum.
    pub fn max(self, other: Resources) -> Resources {
        Resources { milli_cpu: self.milli_cpu.max(other.milli_cpu), memory: self.memory.max(other.memory) }
    }

    /// A pod's effective requests, as upstream `resourcehelper.PodRequests`: the sum over containers and
    /// restartable (sidecar) init containers, raised to each regular init container's request plus the
    /// sidecars started before it, plus `spec.overhead`. A missing request falls back to the limit, as
    /// API defaulting would have set it.
    pub fn pod_requests(pod: &Pod) -> Resources {
        pod_requests_with(pod, false)
    }

    /// Like [`Resources::pod_requests`], but a container without a CPU or memory request counts the
    /// upstream defaults (100m, 200Mi), so scoring never sees a free pod.
    pub fn pod_requests_non_zero(pod: &Pod) -> Resources {
        pod_requests_with(pod, true)
    }
}

/// A node's `status.allocatable`: `None` where the node does not report the resource, which Gantry treats
/// as unlimited (its node agent does not report allocatable yet; upstream would read a missing value as 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    pub milli_cpu: Option<i64>,
    pub memory: Option<i64>,
    pub pods: Option<i64>,
}

impl Allocatable {
    /// The node's reported allocatable CPU, memory and pod count.
    pub fn of(node: &Node) -> Allocatable {
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let get = |name: &str, milli: bool| allocatable.and_then(|a| a.get(name)).map(|q| quantity(q, milli));
        Allocatable { milli_cpu: get("cpu", true), memory: get("memory", false), pods: get("pods", false) }
    }
}

fn pod_requests_with(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = spec.containers.iter().fold(Resources::default(), |acc, c| acc.plus(container(c, non_zero)));
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for init in spec.init_containers.iter().flatten() {
        let request = container(init, non_zero);
        if init.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.plus(request);
            total = total.plus(request);
        } else {
            init_peak = init_peak.max(request.plus(sidecars));
        }
    }
    let mut requests = total.max(init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        requests = requests.plus(from_map(overhead));
    }
    requests
}

fn container(c: &Container, non_zero: bool) -> Resources {
    let resources = c.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let pick = |name: &str, milli: bool, default: i64| match requests
        .and_then(|r| r.get(name))
        .or_else(|| limits.and_then(|l| l.get(name)))
    {
        Some(q) => quantity(q, milli),
        None if non_zero => default,
        None => 0,
    };
    Resources {
        milli_cpu: pick("cpu", true, DEFAULT_MILLI_CPU_REQUEST),
        memory: pick("memory", false, DEFAULT_MEMORY_REQUEST),
    }
}

fn from_map(map: &BTreeMap<String, Quantity>) -> Resources {
    Resources {
        milli_cpu: map.get("cpu").map(|q| quantity(q, true)).unwrap_or_default(),
        memory: map.get("memory").map(|q| quantity(q, false)).unwrap_or_default(),
    }
}

fn quantity(q: &Quantity, milli: bool) -> i64 {
    let parsed = if milli { parse_milli_value(&q.0) } else { parse_value(&q.0) };
    parsed.unwrap_or_default()
}
