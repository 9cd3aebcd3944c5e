//! What a DaemonSet needs done, from the DaemonSet, the nodes and the pods of its namespace (upstream
//! `manage`/`podsShouldBeOnNode`, `rollingUpdate` and `updateDaemonSetStatus`).
//!
//! Pure: must not depend on the API client.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::node_fit::{node_fit, target_node, NodeFit, TEMPLATE_GENERATION_LABEL};
use crate::history::REVISION_HASH_LABEL;
use crate::pods::{controller_of, is_available, is_ready, is_terminal, phase, selects, until_available};
use crate::scheduler::snapshot::node_name;

/// Most pods created or deleted in one pass (upstream `BurstReplicas`).
pub const BURST_REPLICAS: usize = 250;

#[derive(Debug, Default)]
pub struct DaemonSetPlan {
    /// Orphans the selector picks: to be given a controller reference.
    pub adopt: Vec<Arc<Pod>>,
    /// Owned pods the selector no longer picks: to lose the controller reference.
    pub release: Vec<Arc<Pod>>,
    /// Nodes to create a daemon pod for.
    pub create_on: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<Arc<Pod>>,
    /// Nodes whose failed daemon pod is deleted in this pass (their back-off grows).
    pub failed_on: Vec<String>,
    /// Nodes whose failed daemon pod waits for its back-off to end.
    pub backing_off: Vec<String>,
    pub status: DaemonSetStatus,
    /// When a ready pod becomes available (minReadySeconds), to look again.
    pub requeue_after: Option<Duration>,
}

/// Plans `ds` (whose current revision has `hash`) against `nodes` and `pods` (those of its namespace).
/// `in_backoff(node)` says whether a failed pod on `node` must wait before it is replaced. A DaemonSet
/// being deleted only reports status.
pub fn plan(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    hash: &str,
    now: Timestamp,
    in_backoff: impl Fn(&str) -> bool,
) -> DaemonSetPlan {
    let deleting = ds.metadata.deletion_timestamp.is_some();
    let mut out = DaemonSetPlan::default();
    let mine = claim(ds, pods, &mut out);
    let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for pod in &mine {
        // Finished pods already being deleted are the kubelet's or the pod GC's business.
        if is_terminal(pod) && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(pod) {
            by_node.entry(node.to_string()).or_default().push(pod.clone());
        }
    }
    let fits: Vec<(String, NodeFit)> = nodes.iter().map(|n| (node_name(n).to_string(), node_fit(ds, n))).collect();
    let desired = fits.iter().filter(|(_, f)| f.should_run).count();
    let limits = RolloutLimits::of(ds, desired);
    let min_ready = ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let updated = |p: &Pod| is_updated(p, hash, ds.metadata.generation);
    if !deleting {
        for (node, fit) in &fits {
            let on_node = by_node.get(node).map(Vec::as_slice).unwrap_or_default();
            manage_node(node, *fit, on_node, &limits, &updated, min_ready, now, &in_backoff, &mut out);
        }
        // Pods for nodes that are gone: nothing will ever run them.
        let known: BTreeSet<&str> = fits.iter().map(|(n, _)| n.as_str()).collect();
        for (node, on_node) in &by_node {
            if !known.contains(node.as_str()) {
                out.delete.extend(on_node.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).cloned());
            }
        }
        out.create_on.truncate(BURST_REPLICAS);
        out.delete.truncate(BURST_REPLICAS);
        // Upstream rolls only once the manage step's writes are observed, i.e. when it had nothing to do.
        if out.create_on.is_empty() && out.delete.is_empty() && limits.rolling {
            let mut to_roll = by_node.clone();
            for (node, fit) in &fits {
                if fit.should_run {
                    to_roll.entry(node.clone()).or_default();
                }
            }
            rolling_update(&to_roll, &limits, &updated, min_ready, now, &mut out);
        }
    }
    out.status = status(ds, &fits, &by_node, &updated, min_ready, now);
    out.requeue_after = mine.iter().filter_map(|p| until_available(p, min_ready, now)).min();
    out
}

/// Upstream `ClaimPods`: owned pods the selector picks, plus orphans it picks (adopted).
fn claim(ds: &DaemonSet, pods: &[Arc<Pod>], out: &mut DaemonSetPlan) -> Vec<Arc<Pod>> {
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    let selector = ds.spec.as_ref().map(|s| &s.selector);
    let deleting = ds.metadata.deletion_timestamp.is_some();
    let mut mine = Vec::new();
    for pod in pods {
        let picked = selects(selector, pod.metadata.labels.as_ref());
        match controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if picked {
                    mine.push(pod.clone());
                } else {
                    out.release.push(pod.clone());
                }
            }
            Some(_) => {}
            None if picked && !deleting && pod.metadata.deletion_timestamp.is_none() => {
                out.adopt.push(pod.clone());
                mine.push(pod.clone());
            }
            None => {}
        }
    }
    mine
}

/// Upstream `IsPodUpdated`: made from the current revision (hash) or at the current template generation.
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let label = |k: &str| pod.metadata.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str);
    let hash_matches = !hash.is_empty() && label(REVISION_HASH_LABEL) == Some(hash);
    let generation_matches =
        generation.is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(g.to_string().as_str()));
    hash_matches || generation_matches
}

/// The update strategy's limits, scaled to the number of nodes that should run the pod.
#[derive(Debug, Clone, Copy)]
struct RolloutLimits {
    rolling: bool,
    max_surge: usize,
    max_unavailable: usize,
}

impl RolloutLimits {
    fn of(ds: &DaemonSet, desired: usize) -> Self {
        let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        let rolling = strategy.and_then(|s| s.type_.as_deref()).is_none_or(|t| t == "RollingUpdate");
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        let max_surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), desired, 0);
        let mut max_unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), desired, 1);
        // Upstream: with both zero nothing could ever roll, so one may be unavailable.
        if desired > 0 && max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        Self { rolling, max_surge, max_unavailable }
    }
}

/// An int-or-percent scaled to `total`, percentages rounded up (upstream `GetScaledValueFromIntOrPercent`).
fn scaled(value: Option<&IntOrString>, total: usize, default: usize) -> usize {
    match value {
        None => default,
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<usize>().ok()) {
            Some(percent) => (percent * total).div_ceil(100),
            None => s.parse().unwrap_or(default),
        },
    }
}

/// Upstream `podByCreationTimestampAndPhase`: bound pods first, then oldest, then by name.
fn oldest_first(a: &Arc<Pod>, b: &Arc<Pod>) -> std::cmp::Ordering {
    let bound = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    bound(b)
        .cmp(&bound(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Upstream `podsShouldBeOnNode` for one node.
#[allow(clippy::too_many_arguments)]
fn manage_node(
    node: &str,
    fit: NodeFit,
    on_node: &[Arc<Pod>],
    limits: &RolloutLimits,
    updated: &dyn Fn(&Pod) -> bool,
    min_ready: i32,
    now: Timestamp,
    in_backoff: &dyn Fn(&str) -> bool,
    out: &mut DaemonSetPlan,
) {
    if fit.should_run && on_node.is_empty() {
        out.create_on.push(node.to_string());
        return;
    }
    if !fit.should_continue_running {
        out.delete.extend(on_node.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).cloned());
        return;
    }
    let mut running = Vec::new();
    for pod in on_node {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if phase(pod) == "Failed" {
            // A pod failing over and over (say, a host port taken) is replaced with back-off.
            if in_backoff(node) {
                out.backing_off.push(node.to_string());
            } else {
                out.delete.push(pod.clone());
                out.failed_on.push(node.to_string());
            }
            continue;
        }
        running.push(pod.clone());
    }
    running.sort_by(oldest_first);
    if !(limits.rolling && limits.max_surge > 0) {
        out.delete.extend(running.iter().skip(1).cloned());
        return;
    }
    // With surge, an old and a new pod may overlap until the new one is available.
    let (mut oldest_new, mut oldest_old) = (None, None);
    for pod in running {
        let slot = if updated(&pod) { &mut oldest_new } else { &mut oldest_old };
        if slot.is_none() {
            *slot = Some(pod);
        } else {
            out.delete.push(pod);
        }
    }
    if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
        if !is_ready(&old) || is_available(&new, min_ready, now) {
            out.delete.push(old);
        }
    }
}

/// The node's current (updated) and old pod, ignoring terminating ones; `None` when there are two of a
/// kind, which the manage step resolves first (upstream `findUpdatedPodsOnNode`).
type NodePods = (Option<Arc<Pod>>, Option<Arc<Pod>>);

fn updated_and_old(on_node: &[Arc<Pod>], updated: &dyn Fn(&Pod) -> bool) -> Option<NodePods> {
    let (mut new, mut old) = (None, None);
    for pod in on_node.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let slot = if updated(pod) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod.clone());
    }
    Some((new, old))
}

/// Upstream `rollingUpdate`: replaces old pods, at most `maxUnavailable` nodes without an available pod
/// at a time, or with `maxSurge` by starting the new pod beside the old one first.
fn rolling_update(
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    limits: &RolloutLimits,
    updated: &dyn Fn(&Pod) -> bool,
    min_ready: i32,
    now: Timestamp,
    out: &mut DaemonSetPlan,
) {
    let available = |p: &Pod| is_available(p, min_ready, now);
    if limits.max_surge == 0 {
        let mut unavailable = 0;
        let mut replace_now = Vec::new();
        let mut candidates = Vec::new();
        for on_node in by_node.values() {
            match updated_and_old(on_node, updated) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => unavailable += usize::from(!available(&new)),
                Some((None, Some(old))) if !available(&old) => replace_now.push(old),
                Some((None, Some(_))) if unavailable >= limits.max_unavailable => {}
                Some((None, Some(old))) => candidates.push(old),
            }
        }
        let room = limits.max_unavailable.saturating_sub(unavailable).min(candidates.len());
        out.delete.extend(replace_now);
        out.delete.extend(candidates.into_iter().take(room));
        return;
    }
    let mut surging = 0;
    let mut create_now = Vec::new();
    let mut candidates = Vec::new();
    for (node, on_node) in by_node {
        match updated_and_old(on_node, updated) {
            None => surging += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) if !available(&old) => create_now.push(node.clone()),
            Some((None, Some(_))) if surging >= limits.max_surge => {}
            Some((None, Some(_))) => candidates.push(node.clone()),
            Some((Some(new), Some(_))) if !available(&new) => surging += 1,
            Some((Some(_), Some(old))) => out.delete.push(old),
        }
    }
    let room = limits.max_surge.saturating_sub(surging).min(candidates.len());
    out.create_on.extend(create_now);
    out.create_on.extend(candidates.into_iter().take(room));
}

/// Upstream `updateDaemonSetStatus`: per node that should run the pod, its oldest pod counts.
fn status(
    ds: &DaemonSet,
    fits: &[(String, NodeFit)],
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    updated: &dyn Fn(&Pod) -> bool,
    min_ready: i32,
    now: Timestamp,
) -> DaemonSetStatus {
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut up_to_date) = (0, 0, 0, 0, 0, 0);
    for (node, fit) in fits {
        let mut on_node = by_node.get(node).cloned().unwrap_or_default();
        on_node.sort_by(oldest_first);
        match (fit.should_run, on_node.first()) {
            (true, None) => desired += 1,
            (true, Some(pod)) => {
                desired += 1;
                current += 1;
                if is_ready(pod) {
                    ready += 1;
                    available += i32::from(is_available(pod, min_ready, now));
                }
                up_to_date += i32::from(updated(pod));
            }
            (false, Some(_)) => misscheduled += 1,
            (false, None) => {}
        }
    }
    let previous = ds.status.as_ref();
    DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_misscheduled: misscheduled,
        number_ready: ready,
        number_available: Some(available),
        number_unavailable: Some(desired - available),
        updated_number_scheduled: Some(up_to_date),
        observed_generation: ds.metadata.generation,
        collision_count: previous.and_then(|s| s.collision_count),
        conditions: previous.and_then(|s| s.conditions.clone()),
    }
}
