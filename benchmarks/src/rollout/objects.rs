//! The Deployment `rollout-bench` creates and the patch that rolls it, plus upstream's resolution of
//! `maxSurge`/`maxUnavailable` (an absolute number or a percentage of the replicas) into pod counts.
//! Pure.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde_json::{json, Value};

/// Name of the benchmark's Deployment.
pub const DEPLOYMENT: &str = "rollout-bench";
/// Label of its pods (and its selector).
pub const APP_LABEL: &str = "rollout-bench";
/// Environment variable whose value the rolling update changes.
pub const REVISION_ENV: &str = "ROLLOUT_BENCH_REVISION";

/// `maxSurge`/`maxUnavailable`: a pod count or a percentage of the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(u32),
    Percent(u32),
}

impl FromStr for IntOrPercent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |e: std::num::ParseIntError| format!("{s:?} is neither a count nor a percentage: {e}");
        match s.strip_suffix('%') {
            Some(p) => p.trim().parse().map(IntOrPercent::Percent).map_err(bad),
            None => s.trim().parse().map(IntOrPercent::Int).map_err(bad),
        }
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl IntOrPercent {
    /// The JSON form of an `IntOrString` field.
    fn to_json(self) -> Value {
        match self {
            Self::Int(n) => json!(n),
            Self::Percent(_) => json!(self.to_string()),
        }
    }

    /// Upstream `GetScaledValueFromIntOrPercent`.
    fn scaled(self, total: u32, round_up: bool) -> u32 {
        match self {
            Self::Int(n) => n,
            Self::Percent(p) => {
                let product = u64::from(p) * u64::from(total);
                let value = if round_up { product.div_ceil(100) } else { product / 100 };
                u32::try_from(value).unwrap_or(u32::MAX)
            }
        }
    }
}

/// A rolling update's bounds in pods: at most `replicas + surge` pods, at least
/// `replicas - unavailable` available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RollingBounds {
    pub surge: u32,
    pub unavailable: u32,
}

impl RollingBounds {
    /// Upstream `ResolveFenceposts`: surge rounds up, unavailable rounds down, and when both come
    /// out 0 one pod may be unavailable (else the rollout could not proceed).
    pub fn resolve(replicas: u32, surge: IntOrPercent, unavailable: IntOrPercent) -> Self {
        let surge = surge.scaled(replicas, true);
        let unavailable = unavailable.scaled(replicas, false);
        if surge == 0 && unavailable == 0 {
            return Self { surge, unavailable: 1 };
        }
        Self { surge, unavailable }
    }

    pub fn max_pods(&self, replicas: u32) -> u32 {
        replicas.saturating_add(self.surge)
    }

    pub fn min_available(&self, replicas: u32) -> u32 {
        replicas.saturating_sub(self.unavailable)
    }
}

/// What the Deployment's pods ask for.
#[derive(Debug, Clone)]
pub struct PodShape {
    pub cpu: String,
    pub memory: String,
}

fn container(shape: &PodShape, revision: u32) -> Value {
    json!({
        "name": "app",
        "image": "registry.k8s.io/pause:3.10",
        "env": [{ "name": REVISION_ENV, "value": revision.to_string() }],
        "resources": { "requests": { "cpu": shape.cpu, "memory": shape.memory } }
    })
}

/// The Deployment: `replicas` pods of one container, RollingUpdate with the given bounds.
pub fn deployment(
    namespace: &str,
    replicas: u32,
    surge: IntOrPercent,
    unavailable: IntOrPercent,
    shape: &PodShape,
) -> Bytes {
    let value = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": DEPLOYMENT, "namespace": namespace, "labels": { "app": APP_LABEL } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": APP_LABEL } },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": surge.to_json(), "maxUnavailable": unavailable.to_json() }
            },
            "template": {
                "metadata": { "labels": { "app": APP_LABEL } },
                "spec": { "containers": [container(shape, 1)] }
            }
        }
    });
    Bytes::from(value.to_string())
}

/// A JSON merge patch that changes the pod template (the container's revision variable), which
/// starts a rolling update.
pub fn template_patch(shape: &PodShape, revision: u32) -> Bytes {
    let value = json!({ "spec": { "template": { "spec": { "containers": [container(shape, revision)] } } } });
    Bytes::from(value.to_string())
}

pub fn deployment_path(namespace: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/deployments/{DEPLOYMENT}")
}

pub fn deployments_path(namespace: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/deployments")
}

pub fn pods_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_round_like_upstream() {
        let pct = IntOrPercent::Percent;
        assert_eq!(RollingBounds::resolve(1000, pct(25), pct(25)), RollingBounds { surge: 250, unavailable: 250 });
        // 25% of 10 is 2.5: surge rounds up, unavailable down.
        assert_eq!(RollingBounds::resolve(10, pct(25), pct(25)), RollingBounds { surge: 3, unavailable: 2 });
        assert_eq!(RollingBounds::resolve(3, pct(10), pct(10)), RollingBounds { surge: 1, unavailable: 0 });
        assert_eq!(
            RollingBounds::resolve(3, IntOrPercent::Int(0), IntOrPercent::Int(0)),
            RollingBounds { surge: 0, unavailable: 1 }
        );
        let b = RollingBounds::resolve(1000, IntOrPercent::Int(5), pct(0));
        assert_eq!((b.max_pods(1000), b.min_available(1000)), (1005, 1000));
    }

    #[test]
    fn int_or_percent_parses_and_serializes_as_the_api_wants() {
        assert_eq!("25%".parse(), Ok(IntOrPercent::Percent(25)));
        assert_eq!("7".parse(), Ok(IntOrPercent::Int(7)));
        assert!("x%".parse::<IntOrPercent>().is_err());
        assert!("-1".parse::<IntOrPercent>().is_err());
        assert_eq!(IntOrPercent::Percent(25).to_json(), json!("25%"));
        assert_eq!(IntOrPercent::Int(7).to_json(), json!(7));
    }

    #[test]
    fn the_patch_changes_only_the_template_revision() {
        let shape = PodShape { cpu: "10m".into(), memory: "16Mi".into() };
        let d: Value = serde_json::from_slice(&deployment("ns", 5, IntOrPercent::Int(1), IntOrPercent::Int(0), &shape))
            .expect("json");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"], json!({"maxSurge": 1, "maxUnavailable": 0}));
        let before = &d["spec"]["template"]["spec"]["containers"][0];
        let patch: Value = serde_json::from_slice(&template_patch(&shape, 2)).expect("json");
        let after = &patch["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(before["env"][0]["value"], "1");
        assert_eq!(after["env"][0]["value"], "2");
        assert_eq!(before["resources"], after["resources"]);
        assert_eq!(before["image"], after["image"]);
    }
}
