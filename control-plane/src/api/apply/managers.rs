//! The `metadata.managedFields` list as data: decoding the stored entries, identifying managers the
//! way upstream does, capping the number of `Update` entries, and writing the list back in upstream
//! order.
//!
//! Owns only the bookkeeping of entries. Must not compute which fields a write touches (that is
//! `walk`) and must not depend on the store or on the HTTP layer.

use serde_json::{json, Map, Value};

use super::error::ApplyError;
use super::field_set::FieldSet;

/// Upstream keeps at most this many `Update` entries; older ones are folded into a bucket.
const MAX_UPDATE_MANAGERS: usize = 10;
/// The manager name of the bucket holding folded old updates.
const OLD_UPDATES_MANAGER: &str = "ancient-changes";

pub const OPERATION_APPLY: &str = "Apply";
pub const OPERATION_UPDATE: &str = "Update";

/// Who wrote some fields, how, and which fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    /// RFC 3339 time of the last change this manager made.
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl ManagerEntry {
    /// Whether both entries are the same manager for upstream: same name, operation and subresource,
    /// and for updaters the same apiVersion (an applier keeps one entry across versions).
    pub fn same_identity(&self, other: &ManagerEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == OPERATION_APPLY || self.api_version == other.api_version)
    }

    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(time) = &self.time {
            entry["time"] = json!(time);
        }
        if let Some(subresource) = &self.subresource {
            entry["subresource"] = json!(subresource);
        }
        entry
    }

    fn from_json(entry: &Value) -> Result<ManagerEntry, ApplyError> {
        let invalid = |why: &str| ApplyError::InvalidManagedFields(format!("entry {entry}: {why}"));
        let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
        if text("fieldsType").is_some_and(|t| t != "FieldsV1") {
            return Err(invalid("fieldsType is not FieldsV1"));
        }
        let fields = match entry.get("fieldsV1") {
            Some(fields) => FieldSet::from_fields_v1(fields)?,
            None => FieldSet::new(),
        };
        Ok(ManagerEntry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation").ok_or_else(|| invalid("no operation"))?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }
}

/// The decoded `managedFields` of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedFields {
    pub entries: Vec<ManagerEntry>,
}

impl ManagedFields {
    /// The entries stored in `object.metadata.managedFields`; none when absent. Entries of the same
    /// manager are merged.
    pub fn decode(object: &Value) -> Result<ManagedFields, ApplyError> {
        let Some(list) = object.pointer("/metadata/managedFields") else {
            return Ok(ManagedFields::default());
        };
        let Value::Array(items) = list else {
            return Err(ApplyError::InvalidManagedFields("metadata.managedFields is not a list".into()));
        };
        let mut out = ManagedFields::default();
        for item in items {
            out.upsert(ManagerEntry::from_json(item)?);
        }
        Ok(out)
    }

    /// Like [`ManagedFields::decode`], but ownership that cannot be decoded is dropped, as upstream
    /// does, so a corrupt entry can never block writes.
    pub fn decode_or_empty(object: &Value) -> ManagedFields {
        ManagedFields::decode(object).unwrap_or_default()
    }

    /// Adds `entry`, merging it into an existing entry of the same manager.
    pub fn upsert(&mut self, entry: ManagerEntry) {
        match self.entries.iter_mut().find(|e| e.same_identity(&entry)) {
            Some(existing) => {
                existing.fields = existing.fields.union(&entry.fields);
                if entry.time > existing.time {
                    existing.time = entry.time;
                }
            }
            None => self.entries.push(entry),
        }
    }

    /// The entry of the same manager as `like`.
    pub fn find(&self, like: &ManagerEntry) -> Option<&ManagerEntry> {
        self.entries.iter().find(|e| e.same_identity(like))
    }

    /// Replaces (or adds) the entry of `entry`'s manager.
    pub fn set(&mut self, entry: ManagerEntry) {
        self.entries.retain(|e| !e.same_identity(&entry));
        self.entries.push(entry);
    }

    /// Drops managers that own nothing.
    pub fn drop_empty(&mut self) {
        self.entries.retain(|e| !e.fields.is_empty());
    }

    /// Union of the fields of every manager.
    pub fn all_fields(&self) -> FieldSet {
        self.entries.iter().fold(FieldSet::new(), |acc, e| acc.union(&e.fields))
    }

    /// Folds the oldest `Update` entries into one `ancient-changes` entry per apiVersion until at most
    /// [`MAX_UPDATE_MANAGERS`] remain.
    pub fn cap_updates(&mut self) {
        let mut updaters: Vec<usize> =
            (0..self.entries.len()).filter(|&i| self.entries[i].operation == OPERATION_UPDATE).collect();
        if updaters.len() <= MAX_UPDATE_MANAGERS {
            return;
        }
        updaters.sort_by(|&a, &b| {
            let (a, b) = (&self.entries[a], &self.entries[b]);
            (&a.time, &a.manager).cmp(&(&b.time, &b.manager))
        });
        let mut remaining = updaters.len();
        let mut folded = vec![false; self.entries.len()];
        let mut buckets: Vec<ManagerEntry> = Vec::new();
        for index in updaters {
            if remaining <= MAX_UPDATE_MANAGERS {
                break;
            }
            let entry = &self.entries[index];
            folded[index] = true;
            match buckets.iter_mut().find(|b| b.api_version == entry.api_version) {
                Some(bucket) => {
                    bucket.fields = bucket.fields.union(&entry.fields);
                    bucket.time.clone_from(&entry.time);
                    remaining -= 1;
                }
                // The first folded entry of a version becomes the bucket: no entry is saved yet.
                None => buckets.push(ManagerEntry {
                    manager: OLD_UPDATES_MANAGER.to_owned(),
                    operation: OPERATION_UPDATE.to_owned(),
                    subresource: None,
                    ..entry.clone()
                }),
            }
        }
        let mut kept: Vec<ManagerEntry> =
            self.entries.drain(..).zip(folded).filter(|(_, folded)| !folded).map(|(e, _)| e).collect();
        for bucket in buckets {
            match kept.iter_mut().find(|e| e.same_identity(&bucket)) {
                Some(existing) => existing.fields = existing.fields.union(&bucket.fields),
                None => kept.push(bucket),
            }
        }
        self.entries = kept;
    }

    /// The `managedFields` list in upstream order: appliers first, then by time, manager,
    /// apiVersion and subresource.
    pub fn encode(&self) -> Value {
        let mut entries: Vec<&ManagerEntry> = self.entries.iter().collect();
        entries.sort_by(|a, b| {
            let second = |t: &Option<String>| t.as_deref().map(|t| t.get(..19).unwrap_or(t).to_owned());
            (&a.operation, second(&a.time), &a.manager, &a.api_version, &a.subresource).cmp(&(
                &b.operation,
                second(&b.time),
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
        });
        Value::Array(entries.into_iter().map(ManagerEntry::to_json).collect())
    }

    /// Stores the entries in `object.metadata.managedFields`, removing the field when there are none.
    pub fn write_into(&self, object: &mut Value) {
        let Some(fields) = object.as_object_mut() else { return };
        let metadata = fields.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        let Some(metadata) = metadata.as_object_mut() else { return };
        if self.entries.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".to_owned(), self.encode());
        }
    }
}

/// Whether a write asks to clear ownership: `managedFields` set to `[]` or to `[{}]`.
pub fn is_reset_request(object: &Value) -> bool {
    match object.pointer("/metadata/managedFields") {
        Some(Value::Array(items)) => match items.as_slice() {
            [] => true,
            [only] => only.as_object().is_some_and(Map::is_empty),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: &str, api_version: &str, time: &str, field: &str) -> ManagerEntry {
        let mut fields = FieldSet::new();
        fields.insert(&[format!("f:{field}")]);
        ManagerEntry {
            manager: manager.into(),
            operation: operation.into(),
            api_version: api_version.into(),
            time: Some(time.into()),
            subresource: None,
            fields,
        }
    }

    #[test]
    fn identity_rules() {
        let apply_v1 = entry("m", "Apply", "apps/v1", "t", "a");
        let apply_v2 = entry("m", "Apply", "apps/v2", "t", "a");
        let update_v1 = entry("m", "Update", "apps/v1", "t", "a");
        let update_v2 = entry("m", "Update", "apps/v2", "t", "a");
        assert!(apply_v1.same_identity(&apply_v2));
        assert!(!update_v1.same_identity(&update_v2));
        assert!(!apply_v1.same_identity(&update_v1));
        let mut status = update_v1.clone();
        status.subresource = Some("status".into());
        assert!(!status.same_identity(&update_v1));
    }

    #[test]
    fn round_trip_and_order() {
        let mut managed = ManagedFields::default();
        managed.set(entry("z-updater", "Update", "v1", "2024-01-01T00:00:02Z", "b"));
        managed.set(entry("a-updater", "Update", "v1", "2024-01-01T00:00:02Z", "c"));
        managed.set(entry("old-updater", "Update", "v1", "2024-01-01T00:00:01Z", "d"));
        managed.set(entry("applier", "Apply", "v1", "2024-01-01T00:00:09Z", "a"));
        let mut object = json!({"metadata": {"name": "x"}});
        managed.write_into(&mut object);
        let names: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["manager"].as_str().expect("manager"))
            .collect();
        assert_eq!(names, ["applier", "old-updater", "a-updater", "z-updater"]);
        assert_eq!(
            object["metadata"]["managedFields"][0],
            json!({"manager": "applier", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-01T00:00:09Z",
                   "fieldsType": "FieldsV1", "fieldsV1": {"f:a": {}}})
        );
        let decoded = ManagedFields::decode(&object).expect("decodes");
        assert_eq!(decoded.entries.len(), 4);
        assert_eq!(
            decoded.find(&entry("applier", "Apply", "v9", "", "")).expect("found").fields,
            managed.entries[3].fields
        );
        ManagedFields::default().write_into(&mut object);
        assert_eq!(object, json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn undecodable_ownership_is_dropped() {
        for bad in [
            json!({"metadata": {"managedFields": "x"}}),
            json!({"metadata": {"managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV2"}]}}),
            json!({"metadata": {"managedFields": [{"manager": "m", "operation": "Update", "fieldsV1": {"q:x": {}}}]}}),
        ] {
            assert!(ManagedFields::decode(&bad).is_err(), "{bad}");
            assert!(ManagedFields::decode_or_empty(&bad).entries.is_empty());
        }
    }

    #[test]
    fn reset_requests() {
        assert!(is_reset_request(&json!({"metadata": {"managedFields": []}})));
        assert!(is_reset_request(&json!({"metadata": {"managedFields": [{}]}})));
        assert!(!is_reset_request(&json!({"metadata": {}})));
        assert!(!is_reset_request(&json!({"metadata": {"managedFields": [{"manager": "m"}]}})));
    }

    #[test]
    fn update_entries_are_capped() {
        let mut managed = ManagedFields::default();
        managed.set(entry("applier", "Apply", "v1", "2024-01-01T00:00:00Z", "a"));
        for i in 0..13 {
            managed.set(entry(
                &format!("u{i:02}"),
                "Update",
                "v1",
                &format!("2024-01-01T00:00:{i:02}Z"),
                &format!("f{i}"),
            ));
        }
        managed.cap_updates();
        let updates: Vec<&ManagerEntry> = managed.entries.iter().filter(|e| e.operation == "Update").collect();
        assert_eq!(updates.len(), MAX_UPDATE_MANAGERS);
        let bucket = updates.iter().find(|e| e.manager == OLD_UPDATES_MANAGER).expect("bucket");
        // u00..u03 folded: 14 entries with one applier → 13 updaters → 10.
        assert_eq!(bucket.fields.paths().len(), 4);
        assert!(managed.entries.iter().any(|e| e.manager == "applier"));
        assert!(!managed.entries.iter().any(|e| e.manager == "u03"));
        assert!(managed.entries.iter().any(|e| e.manager == "u04"));
    }
}
