//! Events about objects, as upstream controllers record them (`core/v1` Events, which `kubectl describe`
//! lists): `reason`, `message`, `type`, `involvedObject`, `source.component`, and a `count` that grows
//! when the same event repeats instead of a new object per occurrence.
//!
//! Recording never blocks a reconcile: events go through a bounded channel to one sender task, and are
//! dropped (with a debug log) when the API cannot keep up. Events are best-effort, as upstream.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;

/// Events waiting to be sent before new ones are dropped.
const QUEUE: usize = 4096;
/// Distinct repeated events remembered for counting.
const REMEMBERED: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

#[derive(Debug)]
struct Pending {
    involved: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
}

/// Sends Events on behalf of one component (`source.component`). Cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    tx: Option<mpsc::Sender<Pending>>,
}

impl EventRecorder {
    /// A recorder whose sender task runs until every clone is dropped.
    pub fn new(client: Client, component: &'static str) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(send_events(client, component, rx));
        Self { tx: Some(tx) }
    }

    /// A recorder that drops everything (unit tests).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Records an event about `obj`.
    pub fn record<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.record_ref(reference(obj), kind, reason, message);
    }

    /// Records an event about the object `involved` refers to.
    pub fn record_ref(&self, involved: ObjectReference, kind: EventType, reason: &str, message: impl Into<String>) {
        let Some(tx) = &self.tx else { return };
        let pending = Pending { involved, kind, reason: reason.to_string(), message: message.into() };
        if let Err(e) = tx.try_send(pending) {
            tracing::debug!(error = %e, "event dropped");
        }
    }
}

/// A reference to `obj` for `involvedObject`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

type DedupKey = (String, String, EventType, String, String);

async fn send_events(client: Client, component: &'static str, mut rx: mpsc::Receiver<Pending>) {
    // (namespace, involved uid, type, reason, message) -> (event name, count)
    let mut seen: HashMap<DedupKey, (String, i32)> = HashMap::new();
    let host = Arc::<str>::from(std::env::var("HOSTNAME").unwrap_or_default());
    while let Some(p) = rx.recv().await {
        let namespace = p.involved.namespace.clone().unwrap_or_else(|| "default".to_string());
        let key = (
            namespace.clone(),
            p.involved.uid.clone().unwrap_or_default(),
            p.kind,
            p.reason.clone(),
            p.message.clone(),
        );
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let now = Timestamp::now();
        if let Some((name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": Time(now)});
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => continue,
                Err(e) => tracing::debug!(event = %name, error = %e, "updating a repeated event failed; creating anew"),
            }
        }
        let involved_name = p.involved.name.clone().unwrap_or_default();
        let name = format!("{involved_name}.{:x}", now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: p.involved,
            reason: Some(p.reason),
            message: Some(p.message),
            type_: Some(p.kind.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource { component: Some(component.to_string()), host: None }),
            reporting_component: Some(component.to_string()),
            reporting_instance: Some(if host.is_empty() {
                component.to_string()
            } else {
                format!("{component}-{host}")
            }),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if seen.len() >= REMEMBERED {
                    seen.clear();
                }
                seen.insert(key, (name, 1));
            }
            Err(e) => tracing::debug!(event = %name, error = %e, "recording an event failed"),
        }
    }
}
