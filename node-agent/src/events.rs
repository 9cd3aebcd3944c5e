//! core/v1 Events about pods and their containers, as the kubelet records them (`kubectl describe pod`
//! lists them): `source.component=kubelet`, `source.host=<node>`, `reportingComponent=kubelet`,
//! `reportingInstance=<node>`, an `involvedObject` naming the pod and, for container events, the
//! container's `fieldPath` (`spec.containers{name}`). A repeated event (same object, field path,
//! type, reason and message) bumps the `count` and `lastTimestamp` of the first one instead of
//! creating another object, at most once per [`COUNT_UPDATE_INTERVAL`] (a probe failing every second
//! costs one write per interval, not one per failure).
//!
//! Recording never blocks a pod worker or a probe: events go through a bounded channel to one sender
//! task and are dropped (with a debug log) when the API cannot keep up. Events are best-effort, as
//! upstream. Owns no decisions about when to record; must not touch the runtime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;

/// The component name events carry (what `kubectl describe` shows under "From").
pub const COMPONENT: &str = "kubelet";
/// Events waiting to be sent before new ones are dropped.
const QUEUE: usize = 1024;
/// Distinct events remembered for counting repeats.
const REMEMBERED: usize = 4096;
/// The least time between two count updates of one event.
pub const COUNT_UPDATE_INTERVAL: Duration = Duration::from_secs(5);

/// `type` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// One event to record (before de-duplication).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub involved: ObjectReference,
    pub kind: EventType,
    pub reason: String,
    pub message: String,
}

/// The object reference of `pod`, or of its container `container` (with the container's field path).
pub fn pod_reference(pod: &Pod, container: Option<&str>) -> ObjectReference {
    let meta = &pod.metadata;
    let field_path = container.map(|name| {
        let init = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.name == name));
        if init {
            format!("spec.initContainers{{{name}}}")
        } else {
            format!("spec.containers{{{name}}}")
        }
    });
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        field_path,
        ..Default::default()
    }
}

/// Sends the node's Events. Cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<PendingEvent>,
}

impl EventRecorder {
    /// A recorder whose sender task runs until every clone is dropped.
    pub fn new(client: Client, node: String) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(send_events(client, node, rx));
        Self { tx }
    }

    /// Records an event about `pod`, or about its container `container`.
    pub fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.record_ref(pod_reference(pod, container), kind, reason, message);
    }

    /// Records an event about the object `involved` refers to.
    pub fn record_ref(&self, involved: ObjectReference, kind: EventType, reason: &str, message: impl Into<String>) {
        let event = PendingEvent { involved, kind, reason: reason.into(), message: message.into() };
        if let Err(e) = self.tx.try_send(event) {
            tracing::debug!(error = %e, "event dropped");
        }
    }
}

/// (namespace, uid, field path, type, reason, message): what makes two events the same.
type DedupKey = (String, String, String, EventType, String, String);

fn dedup_key(e: &PendingEvent) -> DedupKey {
    let r = &e.involved;
    (
        r.namespace.clone().unwrap_or_default(),
        r.uid.clone().unwrap_or_default(),
        r.field_path.clone().unwrap_or_default(),
        e.kind,
        e.reason.clone(),
        e.message.clone(),
    )
}

/// The Event object for the first occurrence of `e`.
pub fn event_object(e: PendingEvent, name: String, node: &str, now: Timestamp) -> Event {
    let namespace = e.involved.namespace.clone().unwrap_or_else(|| "default".into());
    Event {
        metadata: ObjectMeta { name: Some(name), namespace: Some(namespace), ..Default::default() },
        involved_object: e.involved,
        reason: Some(e.reason),
        message: Some(e.message),
        type_: Some(e.kind.as_str().into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource { component: Some(COMPONENT.into()), host: Some(node.into()) }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(node.into()),
        ..Default::default()
    }
}

/// One event already created, and its repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Repeat {
    namespace: String,
    name: String,
    /// Occurrences so far.
    count: i32,
    /// The count the API object has.
    sent: i32,
    /// When the object was last written.
    written: Instant,
    /// When the event last occurred.
    last: Timestamp,
}

/// A count update to send: `(namespace, event name, count, last occurrence)`.
type CountUpdate = (String, String, i32, Timestamp);

/// What an occurrence of an event needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Occurrence {
    /// A new event: create it.
    New,
    /// A repeat whose count update waits for [`Repeats::due`].
    Held,
    /// A repeat to send now.
    Update(CountUpdate),
}

/// The repeats of events already created, so a repeat bumps the first event's `count` instead of
/// creating another object, and an event repeating every second costs one API write per
/// [`COUNT_UPDATE_INTERVAL`] (the kubelet's event spam filter does the same job). Pure bookkeeping:
/// the caller passes the clock.
#[derive(Debug, Default)]
struct Repeats {
    seen: HashMap<DedupKey, Repeat>,
}

impl Repeats {
    /// Counts an occurrence of `key` at `at` (`now` on the monotonic clock).
    fn occurred(&mut self, key: &DedupKey, at: Timestamp, now: Instant) -> Occurrence {
        let Some(r) = self.seen.get_mut(key) else { return Occurrence::New };
        r.count += 1;
        r.last = at;
        if now.duration_since(r.written) < COUNT_UPDATE_INTERVAL {
            return Occurrence::Held;
        }
        r.sent = r.count;
        r.written = now;
        Occurrence::Update((r.namespace.clone(), r.name.clone(), r.count, at))
    }

    /// Records that `key`'s event was created as `name`.
    fn created(&mut self, key: DedupKey, name: String, at: Timestamp, now: Instant) {
        if self.seen.len() >= REMEMBERED {
            self.seen.clear();
        }
        let namespace = key.0.clone();
        self.seen.insert(key, Repeat { namespace, name, count: 1, sent: 1, written: now, last: at });
    }

    /// Forgets `key` (its object could not be updated: the next occurrence creates it anew).
    fn forget(&mut self, key: &DedupKey) {
        self.seen.remove(key);
    }

    /// Count updates held back long enough.
    fn due(&mut self, now: Instant) -> Vec<(DedupKey, CountUpdate)> {
        let mut out = Vec::new();
        for (key, r) in &mut self.seen {
            if r.count > r.sent && now.duration_since(r.written) >= COUNT_UPDATE_INTERVAL {
                r.sent = r.count;
                r.written = now;
                out.push((key.clone(), (r.namespace.clone(), r.name.clone(), r.count, r.last)));
            }
        }
        out
    }
}

fn namespaced(client: &Client, namespace: &str) -> Api<Event> {
    Api::namespaced(client.clone(), if namespace.is_empty() { "default" } else { namespace })
}

async fn send_events(client: Client, node: String, mut rx: mpsc::Receiver<PendingEvent>) {
    let mut repeats = Repeats::default();
    let mut flush = tokio::time::interval(COUNT_UPDATE_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let updates = tokio::select! {
            e = rx.recv() => {
                let Some(e) = e else { return };
                let key = dedup_key(&e);
                let at = Timestamp::now();
                match repeats.occurred(&key, at, Instant::now()) {
                    Occurrence::Held => Vec::new(),
                    Occurrence::Update(update) => vec![(key, update)],
                    Occurrence::New => {
                        let name = format!("{}.{:x}", e.involved.name.clone().unwrap_or_default(), at.as_nanosecond());
                        let object = event_object(e, name.clone(), &node, at);
                        match namespaced(&client, &key.0).create(&PostParams::default(), &object).await {
                            Ok(_) => repeats.created(key, name, at, Instant::now()),
                            Err(err) => tracing::debug!(event = %name, error = %err, "recording an event failed"),
                        }
                        Vec::new()
                    }
                }
            }
            _ = flush.tick() => repeats.due(Instant::now()),
        };
        for (key, (namespace, name, count, last)) in updates {
            let patch = json!({"count": count, "lastTimestamp": Time(last)});
            if let Err(err) =
                namespaced(&client, &namespace).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await
            {
                tracing::debug!(event = %name, error = %err, "updating a repeated event failed");
                repeats.forget(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "main"}]}
        }))
        .expect("pod")
    }

    #[test]
    fn container_events_name_the_container_field_path() {
        let p = pod();
        assert_eq!(pod_reference(&p, Some("main")).field_path.as_deref(), Some("spec.containers{main}"));
        assert_eq!(pod_reference(&p, Some("init")).field_path.as_deref(), Some("spec.initContainers{init}"));
        let r = pod_reference(&p, None);
        assert_eq!((r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()), (Some("Pod"), Some("web"), Some("u1")));
        assert_eq!(r.field_path, None);
    }

    #[test]
    fn events_carry_the_kubelet_source_and_node() {
        let e = PendingEvent {
            involved: pod_reference(&pod(), Some("main")),
            kind: EventType::Warning,
            reason: "Unhealthy".into(),
            message: "Liveness probe failed: no".into(),
        };
        let obj = event_object(e, "web.1".into(), "node-1", Timestamp::UNIX_EPOCH);
        let source = obj.source.expect("source");
        assert_eq!((source.component.as_deref(), source.host.as_deref()), (Some("kubelet"), Some("node-1")));
        assert_eq!(obj.reporting_component.as_deref(), Some("kubelet"));
        assert_eq!(obj.reporting_instance.as_deref(), Some("node-1"));
        assert_eq!(obj.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!((obj.type_.as_deref(), obj.count), (Some("Warning"), Some(1)));
    }

    #[test]
    fn repeats_update_the_count_at_most_once_per_interval() {
        let key: DedupKey =
            ("ns".into(), "u1".into(), String::new(), EventType::Warning, "Unhealthy".into(), "x".into());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let ts = Timestamp::UNIX_EPOCH;
        let mut r = Repeats::default();
        assert_eq!(r.occurred(&key, ts, at(0)), Occurrence::New, "a new event is created");
        r.created(key.clone(), "web.1".into(), ts, at(0));
        assert_eq!(r.occurred(&key, ts, at(1)), Occurrence::Held, "a repeat within the interval waits");
        assert_eq!(r.occurred(&key, ts, at(2)), Occurrence::Held);
        assert!(r.due(at(3)).is_empty(), "not due yet");
        let due = r.due(at(5));
        assert_eq!(due, vec![(key.clone(), ("ns".into(), "web.1".into(), 3, ts))], "held repeats are flushed");
        assert!(r.due(at(20)).is_empty(), "nothing new to send");
        assert_eq!(
            r.occurred(&key, ts, at(21)),
            Occurrence::Update(("ns".into(), "web.1".into(), 4, ts)),
            "a repeat after a quiet interval is sent at once"
        );
        r.forget(&key);
        assert_eq!(r.occurred(&key, ts, at(22)), Occurrence::New, "a forgotten event is created anew");
    }

    #[test]
    fn the_same_event_on_another_container_is_another_event() {
        let p = pod();
        let e = |c: &str, msg: &str| PendingEvent {
            involved: pod_reference(&p, Some(c)),
            kind: EventType::Warning,
            reason: "Unhealthy".into(),
            message: msg.into(),
        };
        assert_eq!(dedup_key(&e("main", "x")), dedup_key(&e("main", "x")));
        assert_ne!(dedup_key(&e("main", "x")), dedup_key(&e("init", "x")));
        assert_ne!(dedup_key(&e("main", "x")), dedup_key(&e("main", "y")));
    }
}
