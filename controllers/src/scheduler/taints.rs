//! Taint/toleration matching with upstream `Toleration.ToleratesTaint` semantics.
//!
//! Pure: must not depend on the store, HTTP or I/O.

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

/// Whether `toleration` tolerates `taint`: same effect (or any when empty), same key (or any when empty,
/// which only `Exists` may use), and `Exists` or an equal value for `Equal` (the default operator).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        _ => false,
    }
}

/// The pod's tolerations.
pub fn pod_tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
}

/// The node's taints.
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default()
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn first_untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration], effects: &[&str]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|taint| effects.contains(&taint.effect.as_str()))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// Whether the pod tolerates the taint a cordoned node implicitly has.
pub fn tolerates_unschedulable(pod: &Pod) -> bool {
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".to_string(),
        effect: "NoSchedule".to_string(),
        value: None,
        time_added: None,
    };
    pod_tolerations(pod).iter().any(|t| tolerates(t, &taint))
}
