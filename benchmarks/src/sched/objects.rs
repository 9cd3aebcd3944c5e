//! The objects `sched-bench` writes, as JSON bodies: simulated Ready nodes with capacity, their Leases
//! in `kube-node-lease`, and small pods for the default scheduler.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Value};

/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Label put on every node the benchmark registers.
pub const NODE_LABEL: &str = "sched-bench.gantry.dev/simulated";

/// Capacity of each simulated node.
#[derive(Debug, Clone)]
pub struct NodeShape {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
}

/// A Ready node `name` with `shape` as capacity and allocatable.
pub fn node(name: &str, shape: &NodeShape) -> Value {
    let now = rfc3339(SystemTime::now(), false);
    let resources = json!({ "cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods.to_string() });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name, NODE_LABEL: "true" } },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "sched-bench simulated node", "lastHeartbeatTime": now, "lastTransitionTime": now
            }]
        }
    })
}

/// Whether a node object reports `Ready=True`.
pub fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The Lease of node `name`, renewed now.
pub fn lease(name: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": name, "namespace": LEASE_NAMESPACE },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": 40,
            "renewTime": rfc3339(SystemTime::now(), true)
        }
    })
}

/// A pod `name` with one container requesting `cpu`/`memory`, for the default scheduler.
pub fn pod(namespace: &str, name: &str, cpu: &str, memory: &str) -> Bytes {
    let value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace, "labels": { "app": "sched-bench" } },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "resources": { "requests": { "cpu": cpu, "memory": memory } }
            }]
        }
    });
    Bytes::from(value.to_string())
}

/// `t` as RFC 3339 UTC, with microseconds when `micro` (a `MicroTime`), else whole seconds.
pub fn rfc3339(t: SystemTime, micro: bool) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if micro {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z", since.subsec_micros())
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_micros(1_767_225_600_000_123); // 2026-01-01T00:00:00.000123Z
        assert_eq!(rfc3339(t, false), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(t, true), "2026-01-01T00:00:00.000123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400), false), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn nodes_are_ready_with_capacity() {
        let shape = NodeShape { cpu: "4".into(), memory: "8Gi".into(), pods: 110 };
        let n = node("n1", &shape);
        assert!(is_ready(&n));
        assert_eq!(n["status"]["allocatable"]["pods"], "110");
        assert_eq!(lease("n1")["spec"]["holderIdentity"], "n1");
    }
}
