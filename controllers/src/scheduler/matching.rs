//! Selector matching used by placement: node selector terms (node affinity, `nodeSelector`) against a node,
//! and pod affinity terms (label selector plus namespaces) against a pod.
//!
//! Pure: must not depend on the store, HTTP or I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::snapshot::{node_label, node_name};

/// A requirement against an optional label value: `In`, `NotIn`, `Exists`, `DoesNotExist`, and `Gt`/`Lt`
/// comparing integers (the label must exist and both sides must parse).
fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let contains = |v: &str| values.iter().any(|x| x == v);
    match req.operator.as_str() {
        "In" => value.is_some_and(contains),
        "NotIn" => !value.is_some_and(contains),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(actual), [bound]) = (value, values) else {
                return false;
            };
            match (actual.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(a), Ok(b)) if req.operator == "Gt" => a > b,
                (Ok(a), Ok(b)) => a < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// One node selector term: all `matchExpressions` (labels) and `matchFields` (only `metadata.name`) hold.
/// A term with neither matches nothing, as upstream.
pub fn node_selector_term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions.iter().all(|req| requirement_matches(req, node_label(node, &req.key)))
        && fields.iter().all(|req| req.key == "metadata.name" && requirement_matches(req, Some(node_name(node))))
}

/// `spec.nodeSelector` (every label equal) and required node affinity (any of the terms) both match.
pub fn node_matches_pod_selectors(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok =
        spec.node_selector.iter().flatten().all(|(key, value)| node_label(node, key) == Some(value.as_str()));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    let affinity_ok = required
        .is_none_or(|selector| selector.node_selector_terms.iter().any(|t| node_selector_term_matches(t, node)));
    selector_ok && affinity_ok
}

/// A label selector against a label set: `matchLabels` equal and `matchExpressions` hold (`In`, `NotIn`,
/// `Exists`, `DoesNotExist`). The empty selector matches everything.
pub fn label_selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|req| {
        let value = labels.get(&req.key);
        let contains = |v: &String| req.values.iter().flatten().any(|x| x == v);
        match req.operator.as_str() {
            "In" => value.is_some_and(contains),
            "NotIn" => !value.is_some_and(contains),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// A pod's namespace (`default` when unset).
pub fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// Whether `candidate` is selected by `term`, a term of `owner`'s (anti-)affinity: its namespace is listed
/// (the owner's namespace when neither `namespaces` nor `namespaceSelector` is set, every namespace for an
/// empty `namespaceSelector`; a non-empty `namespaceSelector` adds nothing, as namespace labels are not in the
/// snapshot) and its labels match `labelSelector` (a missing selector matches no pod).
pub fn affinity_term_matches(term: &PodAffinityTerm, owner: &Pod, candidate: &Pod) -> bool {
    let Some(selector) = term.label_selector.as_ref() else {
        return false;
    };
    let namespace = pod_namespace(candidate);
    let listed = term.namespaces.as_deref().unwrap_or_default();
    let namespace_ok = match term.namespace_selector.as_ref() {
        Some(ns)
            if ns.match_labels.iter().flatten().next().is_none()
                && ns.match_expressions.iter().flatten().next().is_none() =>
        {
            true
        }
        Some(_) => listed.iter().any(|n| n == namespace),
        None if listed.is_empty() => namespace == pod_namespace(owner),
        None => listed.iter().any(|n| n == namespace),
    };
    let empty = BTreeMap::new();
    namespace_ok && label_selector_matches(selector, candidate.metadata.labels.as_ref().unwrap_or(&empty))
}
