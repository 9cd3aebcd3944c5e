//! Container resources: Kubernetes quantities to cgroup settings (cpu shares and quota, memory limit)
//! the way the kubelet converts them, and the pod's QoS class. Pure.

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use gantry_cri_proto::runtime::LinuxContainerResources;

const CPU_PERIOD: i64 = 100_000;
const MIN_SHARES: i64 = 2;

/// A quantity as a number (`100m` = 0.1, `1Ki` = 1024, `1e3` = 1000); `None` if malformed.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let base: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(base * factor)
}

fn get<'a>(c: &'a Container, which: &str, resource: &str) -> Option<&'a Quantity> {
    let r = c.resources.as_ref()?;
    let map = if which == "limits" { r.limits.as_ref() } else { r.requests.as_ref() };
    map?.get(resource)
}

/// Millicores of a cpu quantity (rounded up, as the kubelet's `MilliValue`).
fn millis(q: &Quantity) -> Option<i64> {
    parse_quantity(&q.0).map(|v| (v * 1000.0).ceil() as i64)
}

fn bytes(q: &Quantity) -> Option<i64> {
    parse_quantity(&q.0).map(|v| v.ceil() as i64)
}

/// cgroup settings of a container: shares from the cpu request (limit if no request), quota from
/// the cpu limit, memory limit from the memory limit.
pub fn linux_resources(c: &Container) -> LinuxContainerResources {
    let cpu_request = get(c, "requests", "cpu").or_else(|| get(c, "limits", "cpu")).and_then(millis);
    let cpu_shares = cpu_request.map_or(MIN_SHARES, |m| (m * 1024 / 1000).max(MIN_SHARES));
    let cpu_quota = get(c, "limits", "cpu").and_then(millis).map_or(0, |m| (m * CPU_PERIOD / 1000).max(1000));
    LinuxContainerResources {
        cpu_period: if cpu_quota > 0 { CPU_PERIOD } else { 0 },
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: get(c, "limits", "memory").and_then(bytes).unwrap_or(0),
        ..Default::default()
    }
}

/// The pod's QoS class (`Guaranteed`, `Burstable` or `BestEffort`), by the upstream rules.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else { return "BestEffort" };
    let all: Vec<&Container> = spec.init_containers.iter().flatten().chain(&spec.containers).collect();
    let any_set = all
        .iter()
        .any(|c| ["cpu", "memory"].iter().any(|r| get(c, "requests", r).is_some() || get(c, "limits", r).is_some()));
    if !any_set {
        return "BestEffort";
    }
    let guaranteed = all.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| match (get(c, "limits", r), get(c, "requests", r)) {
            (Some(l), Some(q)) => parse_quantity(&l.0) == parse_quantity(&q.0),
            (Some(_), None) => true,
            _ => false,
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(requests: serde_json::Value, limits: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({
            "name": "c", "resources": {"requests": requests, "limits": limits}
        }))
        .expect("container")
    }

    #[test]
    fn quantities_parse() {
        let cases = [("100m", 0.1), ("2", 2.0), ("1Ki", 1024.0), ("64Mi", 67108864.0), ("1G", 1e9), ("1e3", 1000.0)];
        for (q, v) in cases {
            assert_eq!(parse_quantity(q), Some(v), "{q}");
        }
        assert_eq!(parse_quantity("ten"), None);
        assert_eq!(parse_quantity("1Xi"), None);
    }

    #[test]
    fn resources_become_shares_quota_and_memory_limit() {
        let c = container(serde_json::json!({"cpu": "250m"}), serde_json::json!({"cpu": "500m", "memory": "64Mi"}));
        let r = linux_resources(&c);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 64 * 1024 * 1024);
        let none = linux_resources(&container(serde_json::json!({}), serde_json::json!({})));
        assert_eq!((none.cpu_shares, none.cpu_quota, none.memory_limit_in_bytes), (2, 0, 0));
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        let pod = |c: Container| Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec { containers: vec![c], ..Default::default() }),
            ..Default::default()
        };
        let cases = [
            (serde_json::json!({}), serde_json::json!({}), "BestEffort"),
            (serde_json::json!({"cpu": "1"}), serde_json::json!({}), "Burstable"),
            (serde_json::json!({}), serde_json::json!({"cpu": "1", "memory": "1Gi"}), "Guaranteed"),
            (
                serde_json::json!({"cpu": "1000m", "memory": "1Gi"}),
                serde_json::json!({"cpu": "1", "memory": "1Gi"}),
                "Guaranteed",
            ),
            (serde_json::json!({"cpu": "500m"}), serde_json::json!({"cpu": "1", "memory": "1Gi"}), "Burstable"),
        ];
        for (requests, limits, expected) in cases {
            assert_eq!(qos_class(&pod(container(requests.clone(), limits.clone()))), expected, "{requests} {limits}");
        }
    }
}
