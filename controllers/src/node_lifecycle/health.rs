//! Whether a node's kubelet is still alive, from its heartbeat Lease and its `Ready` condition, and the
//! conditions the controller writes when it is not (upstream `tryUpdateNodeHealth`).
//!
//! Pure: must not depend on the API client.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Reason of conditions the controller sets to `Unknown` after heartbeats stopped.
pub const REASON_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
/// Reason of conditions the controller sets to `Unknown` when the kubelet never posted any.
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
pub const MESSAGE_STOPPED: &str = "Kubelet stopped posting node status.";
pub const MESSAGE_NEVER_POSTED: &str = "Kubelet never posted node status.";

/// Conditions upstream always reports as `Unknown` for a silent node, even when the kubelet never set them.
const REPORTED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller concludes about a node's health at one instant.
#[derive(Debug, Default, PartialEq)]
pub struct Health {
    /// The conditions to write (every one not yet `Unknown` made so), when the node went silent.
    pub conditions: Option<Vec<NodeCondition>>,
    /// Whether `Ready` was `True` before this update (the moment to record `NodeNotReady`).
    pub was_ready: bool,
    /// When to look again if nothing changes: the moment the last heartbeat expires.
    pub recheck_after: Option<Duration>,
}

/// The node's `Ready` condition.
pub fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// The `Ready` condition's status (`None` when the node has none yet).
pub fn ready_status(node: &Node) -> Option<&str> {
    ready_condition(node).map(|c| c.status.as_str())
}

/// The last sign of life: the later of the Lease's `renewTime` and the `Ready` condition's
/// `lastHeartbeatTime`; without either, when the node was created (the grace period a new node gets
/// before its kubelet must have reported).
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renewed = lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
    let posted = ready_condition(node).and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0);
    renewed.max(posted).or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The node's health at `now` with heartbeats allowed to be `grace` old.
pub fn assess(node: &Node, lease: Option<&Lease>, now: Timestamp, grace: Duration) -> Health {
    let was_ready = ready_status(node) == Some("True");
    let Some(beat) = last_heartbeat(node, lease) else {
        return Health { was_ready, ..Health::default() };
    };
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    let expires = beat.checked_add(grace).unwrap_or(Timestamp::MAX);
    if expires > now {
        let left = Duration::try_from(expires.duration_since(now)).unwrap_or_default();
        return Health { conditions: None, was_ready, recheck_after: Some(left) };
    }
    Health { conditions: unknown_conditions(node, now), was_ready, recheck_after: None }
}

/// Every condition made `Unknown` (the reported ones added if missing), or `None` when all already are.
fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let never_posted = ready_condition(node).is_none();
    let (reason, message) = if never_posted {
        (REASON_NEVER_UPDATED, MESSAGE_NEVER_POSTED)
    } else {
        (REASON_STATUS_UNKNOWN, MESSAGE_STOPPED)
    };
    let mut changed = false;
    for kind in REPORTED_CONDITIONS {
        if !conditions.iter().any(|c| c.type_ == kind) {
            conditions.push(NodeCondition {
                type_: kind.to_string(),
                status: "Unknown".to_string(),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                last_transition_time: Some(Time(now)),
            });
            changed = true;
        }
    }
    for c in conditions.iter_mut().filter(|c| c.status != "Unknown") {
        c.status = "Unknown".to_string();
        c.reason = Some(reason.to_string());
        c.message = Some(message.to_string());
        c.last_transition_time = Some(Time(now));
        changed = true;
    }
    changed.then_some(conditions)
}
