//! The shape of the generated protobuf schema table (`schema.rs`) and lookups into it.
//!
//! Pure data: no wire decoding and no Kubernetes JSON rules live here.

use super::schema::{KINDS, MESSAGES};

/// What a field holds on the wire and how it maps to JSON. Message references are indices into [`MESSAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Int32,
    Int64,
    Bool,
    Bytes,
    Double,
    Message(usize),
    /// A Go struct embedded with `json:",inline"`: its fields are merged into the parent object.
    Inline(usize),
    MapStr,
    MapBytes,
    MapMessage(usize),
}

/// One field of a message.
#[derive(Debug)]
pub struct FieldSchema {
    pub tag: u32,
    /// The upstream JSON key (`volumeID`, `podIPs`); empty for [`FieldType::Inline`].
    pub json: &'static str,
    pub ty: FieldType,
    pub repeated: bool,
}

/// One message, named by its dotted module path (`api.core.v1.Pod`); fields are sorted by tag.
#[derive(Debug)]
pub struct MessageSchema {
    pub name: &'static str,
    pub fields: &'static [FieldSchema],
}

impl MessageSchema {
    pub fn field(&self, tag: u32) -> Option<&'static FieldSchema> {
        self.fields.binary_search_by_key(&tag, |f| f.tag).ok().map(|i| &self.fields[i])
    }
}

/// A top-level kind that a request body may carry.
#[derive(Debug)]
pub struct KindSchema {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub message: usize,
}

/// The message at `index`; indices come from the generated table, so a miss means a corrupt table.
pub fn message(index: usize) -> Option<&'static MessageSchema> {
    MESSAGES.get(index)
}

/// The message with this dotted name.
pub fn message_named(name: &str) -> Option<&'static MessageSchema> {
    MESSAGES.binary_search_by(|m| m.name.cmp(name)).ok().map(|i| &MESSAGES[i])
}

/// The message for a top-level (apiVersion, kind).
pub fn kind_message(api_version: &str, kind: &str) -> Option<&'static MessageSchema> {
    KINDS
        .binary_search_by(|k| (k.api_version, k.kind).cmp(&(api_version, kind)))
        .ok()
        .and_then(|i| message(KINDS[i].message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_consistent() {
        assert!(MESSAGES.windows(2).all(|w| w[0].name < w[1].name), "messages must be sorted by name");
        assert!(KINDS.windows(2).all(|w| (w[0].api_version, w[0].kind) < (w[1].api_version, w[1].kind)));
        for m in MESSAGES {
            assert!(m.fields.windows(2).all(|w| w[0].tag < w[1].tag), "{} fields must be sorted", m.name);
            for f in m.fields {
                if let FieldType::Message(i) | FieldType::Inline(i) | FieldType::MapMessage(i) = f.ty {
                    assert!(message(i).is_some(), "{}.{} points outside the table", m.name, f.json);
                }
            }
        }
    }

    #[test]
    fn finds_kinds_and_json_names() {
        let pod = kind_message("v1", "Pod").expect("pod is served");
        assert_eq!(pod.name, "api.core.v1.Pod");
        let status = message_named("api.core.v1.PodStatus").expect("pod status exists");
        let names: Vec<&str> = status.fields.iter().map(|f| f.json).collect();
        assert!(names.contains(&"podIPs") && names.contains(&"hostIP"), "{names:?}");
        let ebs = message_named("api.core.v1.AWSElasticBlockStoreVolumeSource")
            .or_else(|| message_named("api.core.v1.AwsElasticBlockStoreVolumeSource"))
            .expect("ebs source exists");
        assert_eq!(ebs.field(1).map(|f| f.json), Some("volumeID"));
        assert!(kind_message("apps/v1", "Deployment").is_some());
        assert!(kind_message("v1", "NoSuchKind").is_none());
    }
}
