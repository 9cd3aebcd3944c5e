//! Walks from object values to field sets: the set of fields a configuration sets (what an applier
//! owns) and the comparison of two versions of an object (what a write changed).
//!
//! Owns the value → path translation, including how list items are identified. Must not depend on
//! managedFields bookkeeping, on the store or on the HTTP layer.

use std::collections::HashSet;

use serde_json::Value;

use super::error::ApplyError;
use super::field_set::{render_path, FieldSet, PathElement};
use super::schema::{key_default, FieldType, Shape};

/// How to treat list items that cannot be identified (missing key field, duplicate key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Refuse them: for apply configurations, as upstream validates them.
    Strict,
    /// Address them by position: for stored objects, which must never make a write fail.
    Lenient,
}

/// The path element of every item of `items`, a list of shape `shape` found at `path`.
pub fn list_elements(
    items: &[Value],
    shape: Shape,
    strictness: Strictness,
    path: &[String],
) -> Result<Vec<String>, ApplyError> {
    let invalid = |reason: String| ApplyError::InvalidListItem { path: render_path(path), reason };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let element = match shape {
            Shape::ListMap(keys) => match item_key(item, keys) {
                Ok(element) => element,
                Err(reason) if strictness == Strictness::Strict => return Err(invalid(reason)),
                Err(_) => PathElement::index(index),
            },
            Shape::ListSet => PathElement::value(item),
            Shape::Granular | Shape::Atomic => PathElement::index(index),
        };
        if !seen.insert(element.clone()) {
            if strictness == Strictness::Strict {
                return Err(invalid(format!("duplicate entries for key {}", render_path(&[element]))));
            }
            out.push(PathElement::index(index));
            continue;
        }
        out.push(element);
    }
    Ok(out)
}

fn item_key(item: &Value, keys: &[&str]) -> Result<String, String> {
    let Value::Object(fields) = item else {
        return Err(format!("associative list item is not an object: {item}"));
    };
    let mut key = Vec::with_capacity(keys.len());
    for name in keys {
        let value = match fields.get(*name) {
            Some(value) => value.clone(),
            None => key_default(name).ok_or_else(|| {
                format!("associative list with keys has an element that omits key field {name:?} (and doesn't have default value)")
            })?,
        };
        key.push((*name, value));
    }
    Ok(PathElement::key(key.iter().map(|(name, value)| (*name, value))))
}

/// The fields `value` sets, as an applier of it owns them: every scalar, atomic value, empty object,
/// null and list item, but not the structs on the way to them.
pub fn field_set_of(value: &Value, root: FieldType, strictness: Strictness) -> Result<FieldSet, ApplyError> {
    let mut set = FieldSet::new();
    collect(value, root, true, strictness, &mut Vec::new(), &mut set)?;
    Ok(set)
}

fn collect(
    value: &Value,
    ty: FieldType,
    is_root: bool,
    strictness: Strictness,
    path: &mut Vec<String>,
    node: &mut FieldSet,
) -> Result<(), ApplyError> {
    match value {
        Value::Object(fields) if ty.descends_into(value) => {
            for (name, child) in fields {
                let child_ty = ty.field(name, is_root);
                let element = PathElement::field(name);
                path.push(element.clone());
                let result = collect_child(child, child_ty, strictness, path, node, &element);
                path.pop();
                result?;
            }
        }
        Value::Array(items) if ty.descends_into(value) => {
            let elements = list_elements(items, ty.shape, strictness, path)?;
            for (element, item) in elements.iter().zip(items) {
                let child = node.child_mut(element);
                child.mark_member();
                if matches!(item, Value::Object(fields) if !fields.is_empty()) {
                    path.push(element.clone());
                    let result = collect(item, ty.item(), false, strictness, path, child);
                    path.pop();
                    result?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// One field of an object: walked into when it is a non-empty struct or a keyed list, a leaf
/// otherwise. An empty keyed list sets nothing (upstream cannot own an empty granular list).
fn collect_child(
    value: &Value,
    ty: FieldType,
    strictness: Strictness,
    path: &mut Vec<String>,
    parent: &mut FieldSet,
    element: &str,
) -> Result<(), ApplyError> {
    match value {
        Value::Array(items) if ty.descends_into(value) => {
            if !items.is_empty() {
                collect(value, ty, false, strictness, path, parent.child_mut(element))?;
            }
        }
        Value::Object(fields) if ty.descends_into(value) && !fields.is_empty() => {
            collect(value, ty, false, strictness, path, parent.child_mut(element))?;
        }
        _ => parent.child_mut(element).mark_member(),
    }
    Ok(())
}

/// What changed between two versions of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// The fields a write set: added or changed.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    /// The comparison with every set passed through `filter` (ignored fields).
    pub fn filtered(&self, filter: impl Fn(&FieldSet) -> FieldSet) -> Comparison {
        Comparison { added: filter(&self.added), modified: filter(&self.modified), removed: filter(&self.removed) }
    }
}

/// Compares `old` with `new`, objects at `root`. Leaves (scalars, atomic values) are added, removed
/// or modified; structs and list items are added or removed when they appear or disappear as a whole.
pub fn compare(old: &Value, new: &Value, root: FieldType) -> Comparison {
    let mut out = Comparison::default();
    compare_at(Some(old), Some(new), root, true, &mut Vec::new(), &mut out);
    out
}

fn compare_at(
    old: Option<&Value>,
    new: Option<&Value>,
    ty: FieldType,
    is_root: bool,
    path: &mut Vec<String>,
    out: &mut Comparison,
) {
    let walkable = |v: Option<&Value>| v.is_none_or(|v| ty.descends_into(v));
    let same_kind = match (old, new) {
        (Some(a), Some(b)) => a.is_object() == b.is_object() && a.is_array() == b.is_array(),
        _ => true,
    };
    if !(walkable(old) && walkable(new) && same_kind) {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(a), Some(b)) if a != b => out.modified.insert(path),
            _ => {}
        }
        return;
    }
    let container = old.or(new);
    if container.is_some_and(Value::is_object) {
        let empty = serde_json::Map::new();
        let old_fields = old.and_then(Value::as_object).unwrap_or(&empty);
        let new_fields = new.and_then(Value::as_object).unwrap_or(&empty);
        let names: Vec<&String> =
            old_fields.keys().chain(new_fields.keys().filter(|k| !old_fields.contains_key(*k))).collect();
        for name in names {
            path.push(PathElement::field(name));
            compare_at(old_fields.get(name), new_fields.get(name), ty.field(name, is_root), false, path, out);
            path.pop();
        }
    } else if container.is_some_and(Value::is_array) {
        let old_items = keyed_items(old, ty, path);
        let new_items = keyed_items(new, ty, path);
        let mut names: Vec<&String> = old_items.iter().map(|(element, _)| element).collect();
        names.extend(new_items.iter().map(|(element, _)| element).filter(|e| !old_items.iter().any(|(o, _)| o == *e)));
        for element in names {
            let (old_item, new_item) = (find_item(&old_items, element), find_item(&new_items, element));
            path.push(element.clone());
            compare_at(old_item, new_item, ty.item(), false, path, out);
            path.pop();
        }
    }
    // The top-level structs (metadata, spec, status) always exist in upstream's typed objects, so
    // they are never added or removed themselves; only what they contain is.
    let top_level_struct = path.len() == 1 && container.is_some_and(Value::is_object);
    if !is_root && !top_level_struct {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            _ => {}
        }
    }
}

fn find_item<'a>(items: &[(String, &'a Value)], element: &str) -> Option<&'a Value> {
    items.iter().find(|(e, _)| e == element).map(|(_, v)| *v)
}

fn keyed_items<'a>(list: Option<&'a Value>, ty: FieldType, path: &[String]) -> Vec<(String, &'a Value)> {
    let Some(Value::Array(items)) = list else {
        return Vec::new();
    };
    // Lenient keying never fails: unidentifiable items are addressed by position.
    let elements = list_elements(items, ty.shape, Strictness::Lenient, path).unwrap_or_default();
    elements.into_iter().zip(items).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment_root() -> FieldType {
        FieldType::root("apps", "Deployment")
    }

    #[test]
    fn empty_objects_and_nulls_are_owned_empty_keyed_lists_are_not() {
        let config = json!({"spec": {"template": {"spec": {
            "securityContext": {}, "affinity": null, "containers": [], "tolerations": []
        }}}});
        let set = field_set_of(&config, deployment_root(), Strictness::Strict).expect("valid");
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {"f:template": {"f:spec": {"f:securityContext": {}, "f:affinity": {}, "f:tolerations": {}}}}})
        );
    }

    #[test]
    fn ports_are_keyed_with_the_defaulted_protocol() {
        let config = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]}
        ]}}}});
        let set = field_set_of(&config, deployment_root(), Strictness::Strict).expect("valid");
        let container = &set.to_fields_v1()["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
        assert_eq!(
            container["f:ports"],
            json!({
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}},
                "k:{\"containerPort\":53,\"protocol\":\"UDP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}
            })
        );
    }

    #[test]
    fn strict_keying_rejects_bad_items() {
        let cases = [
            (json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}), "omits key field \"name\""),
            (
                json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
                "duplicate entries for key [name=\"a\"]",
            ),
            (json!({"metadata": {"finalizers": ["a", "a"]}}), "duplicate entries for key [=\"a\"]"),
            (json!({"spec": {"template": {"spec": {"containers": ["x"]}}}}), "not an object"),
        ];
        for (config, expected) in cases {
            let err = field_set_of(&config, deployment_root(), Strictness::Strict).expect_err("invalid");
            assert!(err.to_string().contains(expected), "{err}");
            assert_eq!(err.http_status(), 422);
        }
        let err = field_set_of(&cases_path_config(), deployment_root(), Strictness::Strict).expect_err("invalid");
        assert!(err.to_string().starts_with(".spec.template.spec.containers: "), "{err}");
    }

    fn cases_path_config() -> Value {
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}})
    }

    #[test]
    fn lenient_keying_addresses_bad_items_by_position() {
        let live = json!({"metadata": {"finalizers": ["a", "a"]}});
        let set = field_set_of(&live, deployment_root(), Strictness::Lenient).expect("lenient never fails");
        assert_eq!(set.to_fields_v1(), json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "i:1": {}}}}));
    }

    #[test]
    fn comparison_classifies_changes() {
        let old = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1"}},
                     "template": {"spec": {"containers": [{"name": "x", "image": "x:1"}, {"name": "y", "image": "y"}]}}}
        });
        let new = json!({
            "metadata": {"labels": {"a": "1", "c": "3"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "2"}},
                     "template": {"spec": {"containers": [{"name": "x", "image": "x:2"}, {"name": "z", "image": "z"}]}}}
        });
        let cmp = compare(&old, &new, deployment_root());
        assert_eq!(
            cmp.added.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:c": {}}},
                   "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"z\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(
            cmp.modified.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}, "f:selector": {},
                   "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"x\"}": {"f:image": {}}}}}}})
        );
        assert_eq!(
            cmp.removed.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:b": {}}},
                   "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"y\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(compare(&new, &new, deployment_root()), Comparison::default());
    }

    #[test]
    fn a_struct_appearing_is_added_with_its_fields() {
        let old = json!({"spec": {}});
        let new = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}});
        let cmp = compare(&old, &new, deployment_root());
        assert_eq!(
            cmp.added.to_fields_v1(),
            json!({"f:spec": {"f:strategy": {".": {}, "f:rollingUpdate": {".": {}, "f:maxSurge": {}}}}})
        );
        assert!(cmp.modified.is_empty() && cmp.removed.is_empty());
    }
}
