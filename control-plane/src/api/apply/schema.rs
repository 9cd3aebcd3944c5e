//! How server-side apply sees each position of an object: a struct merged field by field, an
//! associative list (`+listType=map`) keyed by some fields, a set (`+listType=set`), or an atomic
//! value owned and replaced as a whole.
//!
//! Owns the translation of the strategic-merge-patch table in `patch::merge_keys` into structured
//! merge semantics, plus the few places where upstream's list-map keys or atomic markers differ from
//! the patch tags. Must not depend on object values beyond the field names it is asked about, on
//! the store or on the HTTP layer.
//!
//! Rules, as upstream derives its schema from the OpenAPI extensions of the built-in types:
//! `patchStrategy=merge` with a merge key is a list-map, without one a set, anything else a list is
//! atomic. Custom resources (no entry in the table) get struct semantics for objects and atomic lists,
//! which is what a structural schema without `x-kubernetes-list-type` gives.

use serde_json::Value;

use crate::api::patch::merge_keys::{root_schema, ApiType, Schema, Strategy};

/// The shape of one position of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Objects merge field by field; lists here are atomic.
    Granular,
    /// A list of objects identified by these key fields.
    ListMap(&'static [&'static str]),
    /// A list of scalars treated as a set.
    ListSet,
    /// Owned and replaced as a whole (`+listType=atomic`, `+structType=atomic`, `+mapType=atomic`).
    Atomic,
}

/// The type of one position: its shape, the patch metadata below it, and whether the object is a
/// built-in kind (only those get the built-in atomic markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldType {
    pub shape: Shape,
    schema: Schema,
    built_in: bool,
}

/// Struct or map fields of built-in types that upstream marks atomic: label selectors, the Service and
/// Pod `selector`/`nodeSelector` maps and the key/field reference structs.
const ATOMIC_FIELDS: &[&str] = &[
    "selector",
    "labelSelector",
    "namespaceSelector",
    "nodeSelector",
    "podSelector",
    "secretKeyRef",
    "configMapKeyRef",
    "fieldRef",
    "resourceFieldRef",
    "secretRef",
];

/// List-map keys that differ from the strategic-merge-patch merge key (`+listMapKey` tags).
fn list_map_keys_override(parent: Schema, field: &str) -> Option<&'static [&'static str]> {
    match (parent, field) {
        (Schema::Type(ApiType::Container), "ports") => Some(&["containerPort", "protocol"]),
        (Schema::Type(ApiType::ServiceSpec), "ports") => Some(&["port", "protocol"]),
        (Schema::Type(ApiType::PodSpec), "topologySpreadConstraints") => Some(&["topologyKey", "whenUnsatisfiable"]),
        _ => None,
    }
}

/// A single merge key of the patch table as a `'static` one-element key list; empty for a key not
/// listed here.
fn merge_key_list(key: &'static str) -> &'static [&'static str] {
    const KEYS: &[&str] =
        &["name", "uid", "type", "ip", "mountPath", "devicePath", "topologyKey", "containerPort", "port"];
    KEYS.iter().position(|k| *k == key).map_or(&[], |i| &KEYS[i..=i])
}

impl FieldType {
    /// The root of an object of `kind` in API `group` ("" for core).
    pub fn root(group: &str, kind: &str) -> FieldType {
        match root_schema(group, kind) {
            Some(schema) => FieldType { shape: Shape::Granular, schema, built_in: true },
            None => FieldType { shape: Shape::Granular, schema: Schema::Opaque, built_in: false },
        }
    }

    /// The type of field `name` of an object at this position.
    pub fn field(self, name: &str, is_root: bool) -> FieldType {
        // Every kind has standard object metadata, custom resources included.
        if is_root && name == "metadata" {
            return FieldType { shape: Shape::Granular, schema: Schema::Type(ApiType::ObjectMeta), built_in: true };
        }
        let meta = self.schema.field(name);
        let shape = match (meta.strategy, meta.merge_key) {
            (Strategy::Merge, Some(key)) => match list_map_keys_override(self.schema, name) {
                Some(keys) => Shape::ListMap(keys),
                // A merge key this module does not know yet: owning the list whole is safe.
                None if merge_key_list(key).is_empty() => Shape::Atomic,
                None => Shape::ListMap(merge_key_list(key)),
            },
            (Strategy::Merge, None) => Shape::ListSet,
            (Strategy::Replace, _) => Shape::Atomic,
            (Strategy::Default, _) if self.built_in && ATOMIC_FIELDS.contains(&name) => Shape::Atomic,
            (Strategy::Default, _) => Shape::Granular,
        };
        FieldType { shape, schema: meta.schema, built_in: self.built_in }
    }

    /// The type of each item of a list-map or set at this position.
    pub fn item(self) -> FieldType {
        FieldType { shape: Shape::Granular, schema: self.schema, built_in: self.built_in }
    }

    /// Whether a value at this position is walked into (rather than owned as one leaf): objects at
    /// granular positions, lists at list-map and set positions.
    pub fn descends_into(self, value: &Value) -> bool {
        matches!(
            (self.shape, value),
            (Shape::Granular, Value::Object(_)) | (Shape::ListMap(_) | Shape::ListSet, Value::Array(_))
        )
    }
}

/// The value a missing list-map key field takes: upstream defaults `protocol` to `TCP` before keying
/// ports, so `{containerPort: 80}` is the item `k:{"containerPort":80,"protocol":"TCP"}`.
pub fn key_default(field: &str) -> Option<Value> {
    (field == "protocol").then(|| Value::String("TCP".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(group: &str, kind: &str, path: &str) -> FieldType {
        let mut ty = FieldType::root(group, kind);
        let mut is_root = true;
        for step in path.split('.') {
            if step == "[]" {
                ty = ty.item();
            } else {
                ty = ty.field(step, is_root);
            }
            is_root = false;
        }
        ty
    }

    #[test]
    fn shapes_of_built_in_fields() {
        let cases: &[(&str, &str, &str, Shape)] = &[
            ("apps", "Deployment", "spec", Shape::Granular),
            ("apps", "Deployment", "spec.selector", Shape::Atomic),
            ("apps", "Deployment", "spec.template.spec.containers", Shape::ListMap(&["name"])),
            (
                "apps",
                "Deployment",
                "spec.template.spec.containers.[].ports",
                Shape::ListMap(&["containerPort", "protocol"]),
            ),
            ("apps", "Deployment", "spec.template.spec.containers.[].env", Shape::ListMap(&["name"])),
            ("apps", "Deployment", "spec.template.spec.containers.[].args", Shape::Granular),
            ("apps", "Deployment", "spec.template.spec.containers.[].envFrom", Shape::Atomic),
            ("apps", "Deployment", "spec.template.spec.volumes", Shape::ListMap(&["name"])),
            ("apps", "Deployment", "spec.template.spec.nodeSelector", Shape::Atomic),
            ("apps", "Deployment", "spec.template.spec.tolerations", Shape::Atomic),
            (
                "apps",
                "Deployment",
                "spec.template.spec.topologySpreadConstraints",
                Shape::ListMap(&["topologyKey", "whenUnsatisfiable"]),
            ),
            ("apps", "Deployment", "metadata.finalizers", Shape::ListSet),
            ("apps", "Deployment", "metadata.ownerReferences", Shape::ListMap(&["uid"])),
            ("", "Service", "spec.ports", Shape::ListMap(&["port", "protocol"])),
            ("", "Service", "spec.selector", Shape::Atomic),
            ("", "ConfigMap", "data", Shape::Granular),
            ("", "Node", "spec.podCIDRs", Shape::ListSet),
            ("example.com", "Widget", "metadata.finalizers", Shape::ListSet),
            ("example.com", "Widget", "spec.selector", Shape::Granular),
        ];
        for (group, kind, path, shape) in cases {
            assert_eq!(at(group, kind, path).shape, *shape, "{kind}.{path}");
        }
    }

    #[test]
    fn every_merge_key_of_the_table_is_known() {
        for key in ["name", "uid", "type", "ip", "mountPath", "devicePath", "topologyKey", "containerPort", "port"] {
            assert_eq!(merge_key_list(key), [key]);
        }
        assert_eq!(key_default("protocol"), Some(Value::String("TCP".into())));
        assert_eq!(key_default("name"), None);
    }
}
