//! One object as the cache holds it: its JSON bytes (with `resourceVersion`), serialized once, and the
//! small projection selectors read; and one change event with its watch line ready to send.
//!
//! Pure; must not depend on the store or HTTP.

use bytes::Bytes;
use serde_json::Value;

use crate::api::resources::ResourceDef;
use crate::api::selector::selectable_projection;
use crate::api::status::ApiError;
use crate::api::storage::set_resource_version;

/// An object at one revision.
#[derive(Debug)]
pub struct CachedObject {
    /// Store key (`/registry/core/pods/default/web-1`).
    pub key: String,
    /// The object's `resourceVersion`.
    pub revision: i64,
    /// The object serialized as JSON, `resourceVersion` included.
    pub json: Bytes,
    /// Name, namespace, labels and selectable fields: enough for label and field selectors.
    pub selectable: Value,
}

impl CachedObject {
    /// Builds the cached form of `object` stored under `key` at `revision`.
    pub fn new(def: &ResourceDef, key: String, revision: i64, mut object: Value) -> Result<Self, ApiError> {
        set_resource_version(&mut object, revision);
        let selectable = selectable_projection(def.group, def.resource, &object);
        let json = serde_json::to_vec(&object)
            .map_err(|e| ApiError::internal(format!("serializing {key} at revision {revision}: {e}")))?;
        Ok(Self { key, revision, json: Bytes::from(json), selectable })
    }

    /// Decodes a stored value (which carries no `resourceVersion`).
    pub fn from_stored(def: &ResourceDef, key: &[u8], revision: i64, stored: &[u8]) -> Result<Self, ApiError> {
        let key = String::from_utf8_lossy(key).into_owned();
        let object: Value = serde_json::from_slice(stored)
            .map_err(|e| ApiError::internal(format!("stored {} at {key} is not JSON: {e}", def.kind)))?;
        Self::new(def, key, revision, object)
    }

    /// The same object re-stamped with another revision (a deletion's).
    pub fn at_revision(&self, def: &ResourceDef, revision: i64) -> Result<Self, ApiError> {
        Self::new(def, self.key.clone(), revision, self.value()?)
    }

    /// The full object, parsed.
    pub fn value(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.json)
            .map_err(|e| ApiError::internal(format!("cached object {} does not parse: {e}", self.key)))
    }
}

/// The type of a watch event, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// A change to one object.
#[derive(Debug)]
pub struct CachedEvent {
    pub revision: i64,
    /// The type for a watcher without selectors.
    pub event_type: EventType,
    /// The new state; for a deletion, the last state stamped with the deletion's revision.
    pub object: std::sync::Arc<CachedObject>,
    /// The state before this change, if the object existed.
    pub prev: Option<std::sync::Arc<CachedObject>>,
    /// `{"type":...,"object":...}\n` for a watcher without selectors.
    pub line: Bytes,
}

impl CachedEvent {
    pub fn new(
        revision: i64,
        event_type: EventType,
        object: std::sync::Arc<CachedObject>,
        prev: Option<std::sync::Arc<CachedObject>>,
    ) -> Self {
        let line = watch_line(event_type.as_str(), &object.json);
        Self { revision, event_type, object, prev, line }
    }

    /// The event a watcher whose selectors are `matches` sees, if any: objects moving into the
    /// selection are ADDED, moving out are DELETED.
    pub fn for_selection(&self, matches: impl Fn(&Value) -> bool) -> Option<(EventType, &Bytes)> {
        let now = matches(&self.object.selectable);
        let before = self.prev.as_ref().is_some_and(|p| matches(&p.selectable));
        let seen = match self.event_type {
            EventType::Deleted => now.then_some(EventType::Deleted),
            EventType::Added | EventType::Modified => match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            },
        };
        seen.map(|t| (t, &self.line))
    }
}

/// One watch event line around already-serialized object JSON.
pub fn watch_line(event_type: &str, object_json: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object_json.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(event_type.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object_json);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pods() -> &'static ResourceDef {
        crate::api::resources::find("", "v1", "pods").expect("pods")
    }

    fn pod(name: &str, app: &str) -> CachedObject {
        let obj = json!({"kind":"Pod","apiVersion":"v1","metadata":{"name":name,"namespace":"default",
            "labels":{"app":app}},"spec":{"nodeName":"n1","containers":[{"name":"c","image":"busybox"}]}});
        CachedObject::new(pods(), format!("/registry/core/pods/default/{name}"), 7, obj).expect("cached")
    }

    #[test]
    fn objects_keep_their_json_with_resource_version_and_a_selectable_projection() {
        let p = pod("web", "a");
        let v: Value = serde_json::from_slice(&p.json).expect("json");
        assert_eq!(v["metadata"]["resourceVersion"], "7");
        assert_eq!(v["spec"]["containers"][0]["image"], "busybox");
        assert_eq!(p.selectable["metadata"]["labels"]["app"], "a");
        assert_eq!(p.selectable["spec"]["nodeName"], "n1");
        assert!(p.selectable["spec"].get("containers").is_none(), "only selectable fields are projected");
        let restamped = p.at_revision(pods(), 9).expect("restamp");
        assert_eq!(restamped.value().expect("value")["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn lines_wrap_the_serialized_object() {
        let line = watch_line("ADDED", br#"{"a":1}"#);
        let v: Value = serde_json::from_slice(&line).expect("line is JSON");
        assert_eq!(v, json!({"type":"ADDED","object":{"a":1}}));
        assert!(line.ends_with(b"\n"));
    }

    #[test]
    fn selections_turn_moves_into_added_and_deleted() {
        let is_a = |v: &Value| v["metadata"]["labels"]["app"] == "a";
        let into = CachedEvent::new(8, EventType::Modified, Arc::new(pod("web", "a")), Some(Arc::new(pod("web", "b"))));
        assert_eq!(into.for_selection(is_a).map(|e| e.0), Some(EventType::Added));
        let out = CachedEvent::new(8, EventType::Modified, Arc::new(pod("web", "b")), Some(Arc::new(pod("web", "a"))));
        assert_eq!(out.for_selection(is_a).map(|e| e.0), Some(EventType::Deleted));
        let stay = CachedEvent::new(8, EventType::Modified, Arc::new(pod("web", "a")), Some(Arc::new(pod("web", "a"))));
        assert_eq!(stay.for_selection(is_a).map(|e| e.0), Some(EventType::Modified));
        let elsewhere = CachedEvent::new(8, EventType::Added, Arc::new(pod("web", "b")), None);
        assert_eq!(elsewhere.for_selection(is_a), None);
        let gone = CachedEvent::new(9, EventType::Deleted, Arc::new(pod("web", "a")), Some(Arc::new(pod("web", "a"))));
        assert_eq!(gone.for_selection(is_a).map(|e| e.0), Some(EventType::Deleted));
    }
}
