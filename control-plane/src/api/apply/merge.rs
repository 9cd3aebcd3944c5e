//! The value side of server-side apply: merging an apply configuration into the live object, and
//! removing the fields an applier stopped applying that nobody else owns.
//!
//! Owns only value transformations guided by the schema and by field sets. Must not decide ownership
//! (that is `apply`'s job) and must not depend on the store or on the HTTP layer.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::field_set::FieldSet;
use super::schema::{FieldType, Shape};
use super::walk::{list_elements, Strictness};

/// Metadata the server maintains: an explicit `null` for them in a configuration leaves the live value.
const SERVER_METADATA: &[&str] =
    &["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "selfLink", "managedFields"];

/// `config` merged into `live`: structs field by field, list-map and set items matched by key (live
/// order kept, new items placed where the configuration puts them), everything else replaced. An
/// explicit `null` in the configuration removes the field.
pub fn merge(live: Option<&Value>, config: &Value, root: FieldType) -> Value {
    merge_at(live, config, root, true, &mut Vec::new())
}

fn merge_at(live: Option<&Value>, config: &Value, ty: FieldType, is_root: bool, path: &mut Vec<String>) -> Value {
    match config {
        Value::Object(fields) if ty.descends_into(config) => {
            let mut out = match live {
                Some(Value::Object(live_fields)) => live_fields.clone(),
                _ => Map::new(),
            };
            let in_metadata = path.len() == 1 && path[0] == "f:metadata";
            for (name, value) in fields {
                if value.is_null() {
                    if !(in_metadata && SERVER_METADATA.contains(&name.as_str())) {
                        out.remove(name);
                    }
                    continue;
                }
                path.push(format!("f:{name}"));
                let merged = merge_at(out.get(name), value, ty.field(name, is_root), false, path);
                path.pop();
                out.insert(name.clone(), merged);
            }
            Value::Object(out)
        }
        Value::Array(items) if ty.descends_into(config) => {
            let live_items = match live {
                Some(Value::Array(live_items)) => live_items.as_slice(),
                _ => &[],
            };
            Value::Array(merge_list(live_items, items, ty, path))
        }
        other => other.clone(),
    }
}

/// Merges keyed lists. Live items absent from the configuration keep their place; configuration items
/// come out in configuration order, each one before the next live item it shares with the live list.
fn merge_list(live: &[Value], config: &[Value], ty: FieldType, path: &mut Vec<String>) -> Vec<Value> {
    let live_elements = list_elements(live, ty.shape, Strictness::Lenient, path).unwrap_or_default();
    let config_elements = list_elements(config, ty.shape, Strictness::Lenient, path).unwrap_or_default();
    let live_by_element: HashMap<&String, &Value> = live_elements.iter().zip(live).collect();
    let config_position: HashMap<&String, usize> = config_elements.iter().enumerate().map(|(i, e)| (e, i)).collect();

    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let mut next_config = 0;
    let mut emit_config_through = |last: usize, out: &mut Vec<Value>, path: &mut Vec<String>| {
        while next_config <= last && next_config < config.len() {
            let element = &config_elements[next_config];
            path.push(element.clone());
            out.push(merge_at(live_by_element.get(element).copied(), &config[next_config], ty.item(), false, path));
            path.pop();
            next_config += 1;
        }
    };
    for (element, item) in live_elements.iter().zip(live) {
        match config_position.get(element) {
            Some(&position) => emit_config_through(position, &mut out, path),
            None => out.push(item.clone()),
        }
    }
    emit_config_through(config.len(), &mut out, path);
    out
}

/// Removes from `object` the fields in `last` (what the applier owned before) that nobody owns in
/// `keep` (every manager's set after this apply, the applier's new configuration included).
///
/// As upstream: a struct field goes as a whole once nothing at or below it is kept (named fields
/// count as owned by whoever owns something inside them); a list item goes when the applier owned
/// the item and nobody else owns the item itself, whatever is owned inside it. The key fields of a
/// list item that stays are never removed.
pub fn prune(object: &mut Value, last: &FieldSet, keep: &FieldSet, root: FieldType) {
    prune_at(object, last, Some(keep), root, true, &[], &mut Vec::new());
}

fn prune_at(
    value: &mut Value,
    last: &FieldSet,
    keep: Option<&FieldSet>,
    ty: FieldType,
    is_root: bool,
    key_fields: &[&str],
    path: &mut Vec<String>,
) {
    if !ty.descends_into(value) {
        return;
    }
    let kept_at = |element: &str| keep.and_then(|k| k.child(element)).filter(|k| !k.is_empty());
    match value {
        Value::Object(fields) => {
            for (element, owned) in last.children() {
                let Some(name) = element.strip_prefix("f:") else { continue };
                if owned.is_empty() || key_fields.contains(&name) {
                    continue;
                }
                let kept = kept_at(element);
                if kept.is_none() {
                    fields.remove(name);
                    continue;
                }
                if let Some(child) = fields.get_mut(name) {
                    path.push(element.clone());
                    prune_at(child, owned, kept, ty.field(name, is_root), false, &[], path);
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            let elements = list_elements(items, ty.shape, Strictness::Lenient, path).unwrap_or_default();
            let item_keys: &[&str] = match ty.shape {
                Shape::ListMap(keys) => keys,
                _ => &[],
            };
            let mut kept_items = Vec::with_capacity(items.len());
            for (element, mut item) in elements.into_iter().zip(std::mem::take(items)) {
                if let Some(owned) = last.child(&element).filter(|owned| !owned.is_empty()) {
                    let kept = kept_at(&element);
                    if owned.is_member() && !kept.is_some_and(FieldSet::is_member) {
                        continue;
                    }
                    path.push(element.clone());
                    prune_at(&mut item, owned, kept, ty.item(), false, item_keys, path);
                    path.pop();
                }
                kept_items.push(item);
            }
            *items = kept_items;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::apply::scope::Scope;
    use crate::api::apply::walk::field_set_of;

    fn root() -> FieldType {
        FieldType::root("apps", "Deployment")
    }

    fn containers(names_images: &[(&str, &str)]) -> Value {
        let items: Vec<Value> = names_images.iter().map(|(n, i)| json!({"name": n, "image": i})).collect();
        json!({"spec": {"template": {"spec": {"containers": items}}}})
    }

    #[test]
    fn merges_structs_maps_and_replaces_atomics() {
        let live = json!({"metadata": {"name": "d", "labels": {"a": "1"}},
                          "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1", "b": "2"}}}});
        let config = json!({"metadata": {"labels": {"c": "3"}}, "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "1"}}}});
        let merged = merge(Some(&live), &config, root());
        assert_eq!(
            merged,
            json!({"metadata": {"name": "d", "labels": {"a": "1", "c": "3"}},
                   "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "1"}}}})
        );
    }

    #[test]
    fn list_order_cases() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["a", "b"], &["c"], &["a", "b", "c"]),
            (&["a", "b"], &["b", "a"], &["b", "a"]),
            (&["a", "b", "c"], &["x", "b"], &["a", "x", "b", "c"]),
            (&[], &["x", "y"], &["x", "y"]),
            (&["a"], &[], &["a"]),
        ];
        for (live, config, expected) in cases {
            let pairs = |names: &[&str]| containers(&names.iter().map(|n| (*n, "img")).collect::<Vec<_>>());
            let merged = merge(Some(&pairs(live)), &pairs(config), root());
            let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
                .as_array()
                .expect("list")
                .iter()
                .map(|c| c["name"].as_str().expect("name"))
                .collect();
            assert_eq!(&names, expected, "live {live:?} config {config:?}");
        }
    }

    #[test]
    fn list_items_merge_field_by_field() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "imagePullPolicy": "Always"}]}}}});
        let merged = merge(Some(&live), &containers(&[("a", "a:2")]), root());
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:2", "imagePullPolicy": "Always"}])
        );
    }

    #[test]
    fn null_removes_but_never_server_metadata() {
        let live = json!({"metadata": {"name": "d", "uid": "u", "labels": {"a": "1"}}, "spec": {"paused": true}});
        let config =
            json!({"metadata": {"uid": null, "creationTimestamp": null, "labels": null}, "spec": {"paused": null}});
        assert_eq!(merge(Some(&live), &config, root()), json!({"metadata": {"name": "d", "uid": "u"}, "spec": {}}));
    }

    #[test]
    fn prune_removes_only_unkept_fields() {
        let object = json!({
            "metadata": {"name": "d", "labels": {"a": "1", "b": "2"}},
            "spec": {"replicas": 2, "paused": true, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                     "template": {"spec": {"containers": [{"name": "x", "image": "x"}, {"name": "y", "image": "y"}]}}}
        });
        // What the applier owned: everything it set but server-maintained metadata.
        let last = Scope::Main.tracked(&field_set_of(&object, root(), Strictness::Strict).expect("valid"));
        let keep = field_set_of(
            &json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 2,
                    "template": {"spec": {"containers": [{"name": "y", "image": "y"}]}}}}),
            root(),
            Strictness::Strict,
        )
        .expect("valid");
        let mut pruned = object.clone();
        prune(&mut pruned, &last, &keep, root());
        assert_eq!(
            pruned,
            json!({"metadata": {"name": "d", "labels": {"a": "1"}},
                   "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "y", "image": "y"}]}}}})
        );
    }
}
