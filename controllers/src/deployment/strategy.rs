//! A Deployment's rollout bounds: `maxSurge` and `maxUnavailable` resolved against `spec.replicas`
//! (upstream `ResolveFenceposts`: surge rounds up, unavailable rounds down, and both zero means one
//! may be unavailable so a rollout can still progress). Pure.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `spec.replicas` (defaulted to 1 as the API does).
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Whether the strategy is `RollingUpdate` (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    let kind = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref());
    kind.is_none_or(|t| t == "RollingUpdate")
}

/// `value` scaled against `total`: an integer as is, `N%` of `total` rounded up or down. Malformed
/// values (which validation rejects) count as 0.
pub fn scaled_value(value: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match value {
        None => 0,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else { return 0 };
            let product = percent * i64::from(total);
            let scaled = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
            i32::try_from(scaled).unwrap_or(i32::MAX)
        }
    }
}

/// `(maxSurge, maxUnavailable)` of `d`'s rolling update against `desired`, defaulting both to 25%.
pub fn fenceposts(d: &Deployment, desired: i32) -> (i32, i32) {
    let quarter = IntOrString::String("25%".into());
    let rolling = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let surge = rolling.map_or(Some(&quarter), |r| r.max_surge.as_ref());
    let unavailable = rolling.map_or(Some(&quarter), |r| r.max_unavailable.as_ref());
    let surge = scaled_value(surge, desired, true).max(0);
    let mut unavailable = scaled_value(unavailable, desired, false).max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// Pods allowed above `spec.replicas` during a rollout (0 for `Recreate`).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d, desired(d)).0
}

/// Pods allowed below `spec.replicas` during a rollout, at most `spec.replicas` (0 for `Recreate`).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let want = desired(d);
    if !is_rolling(d) || want == 0 {
        return 0;
    }
    fenceposts(d, want).1.min(want)
}

/// `spec.progressDeadlineSeconds`, unless unset or "never" (`i32::MAX`).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).filter(|s| *s != i32::MAX)
}
