//! A watch that outlives its stream: events of one collection are handed to a callback with the
//! instant they were read, and when the server ends the stream the watch is reopened from the last
//! resourceVersion seen (or from the current state after an `ERROR` event such as 410 Gone, which
//! replays every object as ADDED). Knows nothing about the objects beyond their resourceVersion.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::client::{ClientError, Connector, WatchStream};

/// Delay before reopening a watch that could not be opened.
const REOPEN_DELAY: Duration = Duration::from_millis(200);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// An object that carries a `metadata.resourceVersion`.
pub trait Versioned {
    fn resource_version(&self) -> Option<&str>;
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: serde_json::Value,
}

/// One parsed line of a watch stream.
#[derive(Debug, PartialEq)]
enum Line<T> {
    Event(EventKind, T),
    /// The server ended the watch with an error (usually an expired resourceVersion).
    Error,
    /// A bookmark or anything this module does not understand: only its version matters.
    Other(Option<String>),
}

fn parse_line<T: DeserializeOwned>(line: &[u8]) -> Line<T> {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(line) else { return Line::Other(None) };
    let kind = match envelope.kind.as_str() {
        "ADDED" => EventKind::Added,
        "MODIFIED" => EventKind::Modified,
        "DELETED" => EventKind::Deleted,
        "ERROR" => return Line::Error,
        _ => {
            let rv = envelope.object["metadata"]["resourceVersion"].as_str().map(str::to_string);
            return Line::Other(rv);
        }
    };
    match serde_json::from_value(envelope.object) {
        Ok(object) => Line::Event(kind, object),
        Err(_) => Line::Other(None),
    }
}

/// A watch of one collection that reopens itself; see the module docs.
#[derive(Debug)]
pub struct Follower {
    connector: Arc<Connector>,
    index: usize,
    watch_path: String,
    resource_version: String,
    stream: Option<WatchStream>,
}

impl Follower {
    /// Opens `watch_path` (a `...?watch=1` URL of a collection, without `resourceVersion`) on server
    /// `index` from `resource_version`; when this returns the server has registered the watch.
    pub async fn open(
        connector: Arc<Connector>,
        index: usize,
        watch_path: String,
        resource_version: String,
    ) -> Result<Self, ClientError> {
        let mut follower = Self { connector, index, watch_path, resource_version, stream: None };
        follower.stream = Some(WatchStream::open(&follower.connector, index, &follower.path()).await?);
        Ok(follower)
    }

    fn path(&self) -> String {
        format!("{}&resourceVersion={}", self.watch_path, self.resource_version)
    }

    /// Calls `on_event` for each event, with the instant its line was read, until the future is
    /// dropped.
    pub async fn run<T, F>(mut self, mut on_event: F)
    where
        T: DeserializeOwned + Versioned,
        F: FnMut(EventKind, T, Instant),
    {
        loop {
            let mut stream = match self.stream.take() {
                Some(stream) => stream,
                None => match WatchStream::open(&self.connector, self.index, &self.path()).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        eprintln!("warning: opening the watch {} failed: {e}", self.watch_path);
                        tokio::time::sleep(REOPEN_DELAY).await;
                        continue;
                    }
                },
            };
            while let Ok(Some(line)) = stream.next_line().await {
                let at = Instant::now();
                match parse_line::<T>(&line) {
                    Line::Event(kind, object) => {
                        if let Some(rv) = object.resource_version().filter(|rv| !rv.is_empty()) {
                            self.resource_version = rv.to_string();
                        }
                        on_event(kind, object, at);
                    }
                    Line::Error => {
                        self.resource_version.clear();
                        break;
                    }
                    Line::Other(rv) => {
                        if let Some(rv) = rv.filter(|rv| !rv.is_empty()) {
                            self.resource_version = rv;
                        }
                    }
                }
            }
        }
    }
}

/// Follows `watch_path` on server `index` from `resource_version` (opening it inside the future),
/// calling `on_event` for each event, until the future is dropped.
pub async fn follow<T, F>(
    connector: Arc<Connector>,
    index: usize,
    watch_path: String,
    resource_version: String,
    on_event: F,
) where
    T: DeserializeOwned + Versioned,
    F: FnMut(EventKind, T, Instant),
{
    let follower = Follower { connector, index, watch_path, resource_version, stream: None };
    follower.run(on_event).await;
}

/// The resourceVersion of the collection at `collection_path` (e.g. `/api/v1/namespaces/x/pods`), to
/// start a watch from.
pub async fn list_resource_version(connector: &Arc<Connector>, collection_path: &str) -> Result<String, ClientError> {
    let list = connector.connection(0).get_json(&format!("{collection_path}?limit=1")).await?;
    Ok(list["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Obj {
        metadata: Meta,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Meta {
        #[serde(rename = "resourceVersion")]
        resource_version: String,
    }

    impl Versioned for Obj {
        fn resource_version(&self) -> Option<&str> {
            Some(&self.metadata.resource_version)
        }
    }

    fn obj(rv: &str) -> Obj {
        Obj { metadata: Meta { resource_version: rv.into() } }
    }

    #[test]
    fn lines_are_events_errors_or_bookmarks() {
        let line = |s: &str| parse_line::<Obj>(s.as_bytes());
        assert_eq!(
            line(r#"{"type":"ADDED","object":{"metadata":{"resourceVersion":"5"}}}"#),
            Line::Event(EventKind::Added, obj("5"))
        );
        assert_eq!(
            line(r#"{"type":"DELETED","object":{"metadata":{"resourceVersion":"9"}}}"#),
            Line::Event(EventKind::Deleted, obj("9"))
        );
        assert_eq!(line(r#"{"type":"ERROR","object":{"kind":"Status","code":410}}"#), Line::Error);
        assert_eq!(
            line(r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"12"}}}"#),
            Line::Other(Some("12".into()))
        );
        assert_eq!(line("not json"), Line::Other(None));
    }
}
