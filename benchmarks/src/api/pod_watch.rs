//! A pod watch shared by the pod benchmarks (`sched-bench`, `podstart-bench`): one namespace's pods
//! followed with a plain `?watch=1` stream, each event decoded into the few fields the benchmarks
//! look at (name, node, phase, `Ready` condition) and handed to a callback with the instant it
//! arrived. The stream is reopened from the last seen resourceVersion when the server ends it.
//!
//! Owns only the watch and the decoding; what an event means for a benchmark is the caller's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::client::{ClientError, Connector, WatchStream};

/// Pause before reopening a watch that could not be opened.
const REOPEN_DELAY: Duration = Duration::from_millis(200);

/// The watch event types of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodEventKind {
    Added,
    Modified,
    Deleted,
    Bookmark,
}

/// One pod as a watch event showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub kind: PodEventKind,
    pub name: String,
    pub resource_version: String,
    /// `spec.nodeName`, when bound.
    pub node_name: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// Whether the `Ready` condition is `True`.
    pub ready: bool,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl PodEvent {
    /// Whether the pod is bound to a node.
    pub fn is_bound(&self) -> bool {
        self.node_name.as_deref().is_some_and(|n| !n.is_empty())
    }

    /// Whether the pod runs and is ready: phase `Running`, `Ready=True`, not being deleted.
    pub fn is_running_and_ready(&self) -> bool {
        self.kind != PodEventKind::Deleted && !self.deleting && self.ready && self.phase.as_deref() == Some("Running")
    }
}

/// What one line of a watch stream held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchLine {
    Pod(PodEvent),
    /// An `ERROR` event (such as 410 Gone for an expired resourceVersion): reopen from now.
    Error(String),
    /// Blank or not a pod event.
    Ignored,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: RawPod,
}

#[derive(Deserialize, Default)]
struct RawPod {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    spec: RawSpec,
    #[serde(default)]
    status: RawStatus,
}

#[derive(Deserialize, Default)]
struct RawMeta {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
    #[serde(default, rename = "deletionTimestamp")]
    deletion_timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawSpec {
    #[serde(default, rename = "nodeName")]
    node_name: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawStatus {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    conditions: Vec<RawCondition>,
}

#[derive(Deserialize, Default)]
struct RawCondition {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
}

/// Decodes one line of a pod watch.
pub fn decode(line: &[u8]) -> WatchLine {
    if line.iter().all(u8::is_ascii_whitespace) {
        return WatchLine::Ignored;
    }
    let Ok(event) = serde_json::from_slice::<RawEvent>(line) else { return WatchLine::Ignored };
    let kind = match event.kind.as_str() {
        "ADDED" => PodEventKind::Added,
        "MODIFIED" => PodEventKind::Modified,
        "DELETED" => PodEventKind::Deleted,
        "BOOKMARK" => PodEventKind::Bookmark,
        "ERROR" => return WatchLine::Error(String::from_utf8_lossy(line).into_owned()),
        _ => return WatchLine::Ignored,
    };
    let pod = event.object;
    let ready = pod.status.conditions.iter().any(|c| c.kind == "Ready" && c.status == "True");
    WatchLine::Pod(PodEvent {
        kind,
        name: pod.metadata.name,
        resource_version: pod.metadata.resource_version,
        node_name: pod.spec.node_name,
        phase: pod.status.phase,
        ready,
        deleting: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// Follows the pods of `namespace` from `resource_version` until the future is dropped, calling
/// `on_event` with every pod event and the instant its line was read.
pub async fn follow(
    connector: Arc<Connector>,
    namespace: String,
    mut resource_version: String,
    mut on_event: impl FnMut(PodEvent, Instant) + Send,
) {
    loop {
        let path = format!("/api/v1/namespaces/{namespace}/pods?watch=1&resourceVersion={resource_version}");
        let mut stream = match WatchStream::open(&connector, 0, &path).await {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("warning: opening the pod watch failed: {e}");
                tokio::time::sleep(REOPEN_DELAY).await;
                continue;
            }
        };
        while let Ok(Some(line)) = stream.next_line().await {
            let at = Instant::now();
            match decode(&line) {
                WatchLine::Pod(event) => {
                    if !event.resource_version.is_empty() {
                        resource_version.clone_from(&event.resource_version);
                    }
                    if event.kind != PodEventKind::Bookmark {
                        on_event(event, at);
                    }
                }
                WatchLine::Error(_) => {
                    // Expired resourceVersion: resume from now (changes in between are seen later as
                    // MODIFIED events of the same pods, or missed).
                    resource_version.clear();
                    break;
                }
                WatchLine::Ignored => {}
            }
        }
    }
}

/// The resourceVersion of the namespace's pod list, to start a watch from.
pub async fn list_resource_version(connector: &Arc<Connector>, namespace: &str) -> Result<String, ClientError> {
    let list = connector.connection(0).get_json(&format!("/api/v1/namespaces/{namespace}/pods?limit=1")).await?;
    Ok(list["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_line(kind: &str, node: Option<&str>, phase: &str, ready: &str, deleting: bool) -> Vec<u8> {
        let mut object = serde_json::json!({
            "metadata": { "name": "p1", "resourceVersion": "42" },
            "spec": { "containers": [] },
            "status": { "phase": phase, "conditions": [
                { "type": "PodScheduled", "status": "True" },
                { "type": "Ready", "status": ready }
            ] }
        });
        if let Some(node) = node {
            object["spec"]["nodeName"] = node.into();
        }
        if deleting {
            object["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        serde_json::json!({ "type": kind, "object": object }).to_string().into_bytes()
    }

    fn event(line: &[u8]) -> PodEvent {
        match decode(line) {
            WatchLine::Pod(e) => e,
            other => panic!("not a pod event: {other:?}"),
        }
    }

    #[test]
    fn running_and_ready_needs_phase_condition_and_no_deletion() {
        let e = event(&pod_line("MODIFIED", Some("n1"), "Running", "True", false));
        assert_eq!((e.kind, e.name.as_str(), e.resource_version.as_str()), (PodEventKind::Modified, "p1", "42"));
        assert!(e.is_bound() && e.is_running_and_ready());
        assert!(!event(&pod_line("MODIFIED", Some("n1"), "Pending", "True", false)).is_running_and_ready());
        assert!(!event(&pod_line("MODIFIED", Some("n1"), "Running", "False", false)).is_running_and_ready());
        assert!(!event(&pod_line("MODIFIED", Some("n1"), "Running", "True", true)).is_running_and_ready());
        assert!(!event(&pod_line("DELETED", Some("n1"), "Running", "True", false)).is_running_and_ready());
    }

    #[test]
    fn binding_is_a_non_empty_node_name() {
        assert!(!event(&pod_line("ADDED", None, "Pending", "False", false)).is_bound());
        assert!(!event(&pod_line("ADDED", Some(""), "Pending", "False", false)).is_bound());
        assert!(event(&pod_line("ADDED", Some("n"), "Pending", "False", false)).is_bound());
    }

    #[test]
    fn errors_and_noise_are_told_apart() {
        let error = br#"{"type":"ERROR","object":{"kind":"Status","code":410}}"#;
        assert!(matches!(decode(error), WatchLine::Error(text) if text.contains("410")));
        assert_eq!(decode(b"  "), WatchLine::Ignored);
        assert_eq!(decode(b"not json"), WatchLine::Ignored);
        assert_eq!(decode(br#"{"type":"SOMETHING","object":{}}"#), WatchLine::Ignored);
        let bookmark = br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"7"}}}"#;
        assert_eq!(event(bookmark).kind, PodEventKind::Bookmark);
    }
}
