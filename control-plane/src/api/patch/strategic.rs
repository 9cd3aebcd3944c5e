//! Applying a Kubernetes strategic merge patch to a JSON object, with the semantics of upstream
//! `StrategicMergeMapPatch` (k8s.io/apimachinery/pkg/util/strategicpatch, server side: parallel lists
//! merged, unmatched nulls ignored).
//!
//! - Maps merge recursively; `null` deletes a key.
//! - `$patch: replace` in a map replaces the map, `$patch: delete` empties it (upstream returns `{}`;
//!   for a key the original lacks, nothing is added).
//! - Lists with the merge strategy: objects merge by merge key (`{"$patch": "delete", key: v}` removes,
//!   a `{"$patch": "replace"}` item replaces the whole list), primitives merge as a set; other lists
//!   are replaced.
//! - `$setElementOrder/<field>`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` as upstream.
//! - Directive keys never reach the result.
//!
//! Owns the directive handling and the merge walk. Field strategies come from `merge_keys`, list
//! ordering from `order`. Must not depend on the HTTP layer, the store or any I/O.

use serde_json::{Map, Value};

use super::error::PatchError;
use super::merge_keys::{FieldMeta, Schema, Strategy};
use super::order::{identities, identity, json_eq, missing_key, normalize_element_order, partition, position};

type JsonMap = Map<String, Value>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies the strategic merge `patch` to `original`, an object of type `schema`.
pub fn strategic_merge(original: JsonMap, patch: JsonMap, schema: Schema) -> Result<JsonMap, PatchError> {
    merge_map(original, patch, schema, "")
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// The field a parallel-list directive key (`$setElementOrder/<field>`) refers to.
fn directive_field<'k>(key: &'k str, prefix: &str, path: &str) -> Result<&'k str, PatchError> {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| PatchError::invalid(path, format!("invalid patch format of {prefix}: key {key:?}")))
}

fn merge_map(mut original: JsonMap, mut patch: JsonMap, schema: Schema, path: &str) -> Result<JsonMap, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => merge_map(JsonMap::new(), patch, schema, path),
            Some("delete") => Ok(JsonMap::new()),
            _ => Err(PatchError::invalid(path, format!("unknown patch type {directive} in map"))),
        };
    }
    apply_retain_keys(&mut original, &mut patch, path)?;
    apply_set_element_order(&mut original, &mut patch, schema, path)?;

    for (key, patch_value) in patch {
        let (field, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (directive_field(&key, DELETE_FROM_PRIMITIVE_LIST, path)?.to_owned(), true)
        } else {
            (key, false)
        };
        if patch_value.is_null() {
            original.remove(&field);
            continue;
        }
        let field_path = join(path, &field);
        let meta = schema.field(&field);
        let Some(current) = original.remove(&field) else {
            if !delete_list {
                if let Some(value) = new_value(patch_value, meta, &field_path)? {
                    original.insert(field, value);
                }
            }
            continue;
        };
        let merged = match (current, patch_value) {
            (Value::Object(current), Value::Object(patch_map)) if !delete_list => {
                if meta.strategy == Strategy::Replace {
                    new_value(Value::Object(patch_map), meta, &field_path)?
                } else {
                    Some(Value::Object(merge_map(current, patch_map, meta.schema, &field_path)?))
                }
            }
            (Value::Array(current), Value::Array(patch_list)) => {
                Some(Value::Array(merge_list_field(current, patch_list, meta, delete_list, &field_path)?))
            }
            // A deletion list only ever removes primitives from a list.
            (current, _) if delete_list => Some(current),
            // Scalars, and values whose JSON type changed, are replaced.
            (_, patch_value) => new_value(patch_value, meta, &field_path)?,
        };
        if let Some(value) = merged {
            original.insert(field, value);
        }
    }
    Ok(original)
}

/// `$retainKeys`: clears every key of `original` not listed; every non-null field of the patch must
/// be listed.
fn apply_retain_keys(original: &mut JsonMap, patch: &mut JsonMap, path: &str) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::invalid(path, "invalid patch format of retainKeys: $retainKeys must be a list"));
    };
    let retained = |key: &str| retain.iter().any(|kept| kept.as_str() == Some(key));
    for (key, value) in patch.iter() {
        let parallel_list = key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !value.is_null() && !parallel_list && !retained(key) {
            return Err(PatchError::invalid(
                path,
                format!("invalid patch format of retainKeys: field {key:?} is patched but not listed in $retainKeys"),
            ));
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the list `<field>` of the patch (if any) into the original and
/// orders the result by the directive list, keeping server-only items in their relative place.
fn apply_set_element_order(
    original: &mut JsonMap,
    patch: &mut JsonMap,
    schema: Schema,
    path: &str,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch.keys().filter(|key| key.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else { continue };
        let field = directive_field(&key, SET_ELEMENT_ORDER, path)?;
        let field_path = join(path, field);
        let Value::Array(order) = order else {
            return Err(PatchError::invalid(&field_path, format!("{key} must be a list")));
        };
        let current = take_list(original, field, &field_path, "original")?;
        let patch_list = take_list(patch, field, &field_path, "patch")?;
        let meta = schema.field(field);
        validate_order(patch_list.as_deref(), &order, meta.merge_key, &field_path)?;

        let all = current.iter().flatten().chain(patch_list.iter().flatten());
        let Some(kind) = element_kind(all, &field_path)? else {
            // Both lists are empty (or absent): nothing to order.
            if let Some(list) = current.or(patch_list) {
                original.insert(field.to_owned(), Value::Array(list));
            }
            continue;
        };
        let merge_key = if kind == ElementKind::Object { meta.merge_key } else { None };
        let server_order = identities(current.as_deref().unwrap_or_default(), merge_key, &field_path)?;
        let merged = match (current, patch_list) {
            (Some(current), None) => current,
            (None, Some(patch_list)) => clean_list(patch_list, meta.schema, &field_path)?,
            (Some(current), Some(patch_list)) => merge_list_field(current, patch_list, meta, false, &field_path)?,
            (None, None) => continue,
        };
        let order = identities(&order, merge_key, &field_path)?;
        let (named, server_only) = partition(merged, &order, merge_key, &field_path)?;
        let ordered = normalize_element_order(named, server_only, &order, &server_order, merge_key, &field_path)?;
        original.insert(field.to_owned(), Value::Array(ordered));
    }
    Ok(())
}

/// Removes `map[field]`, which must be a list when present.
fn take_list(map: &mut JsonMap, field: &str, path: &str, side: &str) -> Result<Option<Vec<Value>>, PatchError> {
    match map.remove(field) {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(other) => Err(PatchError::invalid(
            path,
            format!("$setElementOrder applies to a list, but the {side} value is {other}"),
        )),
    }
}

/// Upstream `validatePatchWithSetOrderList`: the patch items (deletions and directive items aside)
/// must appear in `$setElementOrder` in the same relative order.
fn validate_order(
    patch_list: Option<&[Value]>,
    order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<(), PatchError> {
    let Some(patch_list) = patch_list else { return Ok(()) };
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut items = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if merge_key.is_some() {
            if !item.is_object() {
                return Err(missing_key(item, None, path));
            }
            if item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(item);
    }
    let (mut patch_index, mut order_index) = (0, 0);
    while patch_index < items.len() && order_index < order.len() {
        let item = items[patch_index];
        if item.get(DIRECTIVE).is_some() {
            patch_index += 1;
            continue;
        }
        let ordered = &order[order_index];
        let same = match merge_key {
            None => json_eq(item, ordered),
            Some(_) => {
                let left = identity(item, merge_key).ok_or_else(|| missing_key(item, merge_key, path))?;
                let right = identity(ordered, merge_key).ok_or_else(|| missing_key(ordered, merge_key, path))?;
                json_eq(left, right)
            }
        };
        if same {
            patch_index += 1;
        }
        order_index += 1;
    }
    if patch_index < items.len() {
        return Err(PatchError::invalid(path, "the order in the patch list doesn't match the $setElementOrder list"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Object,
    Primitive,
}

/// The common kind of all list elements; `None` when there are none. Lists of lists and lists mixing
/// JSON types are errors, as upstream `sliceElementType`.
fn element_kind<'a>(items: impl Iterator<Item = &'a Value>, path: &str) -> Result<Option<ElementKind>, PatchError> {
    let mut first: Option<&Value> = None;
    for item in items {
        if item.is_array() {
            return Err(PatchError::invalid(path, "lists of lists are not supported"));
        }
        match first {
            None => first = Some(item),
            Some(seen) if std::mem::discriminant(seen) != std::mem::discriminant(item) => {
                return Err(PatchError::invalid(
                    path,
                    format!("list element types are not identical: {seen} and {item}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|item| if item.is_object() { ElementKind::Object } else { ElementKind::Primitive }))
}

/// A list field present in both documents.
fn merge_list_field(
    current: Vec<Value>,
    patch: Vec<Value>,
    meta: FieldMeta,
    delete_list: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    // Deletion lists apply whatever the field's strategy is.
    if meta.strategy == Strategy::Merge || delete_list {
        merge_list(current, patch, meta, delete_list, path)
    } else {
        clean_list(patch, meta.schema, path)
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: FieldMeta,
    delete_list: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    match element_kind(original.iter().chain(&patch), path)? {
        None => Ok(original),
        Some(ElementKind::Primitive) => merge_primitive_list(original, patch, delete_list, path),
        Some(ElementKind::Object) => {
            let Some(merge_key) = meta.merge_key else {
                return Err(PatchError::invalid(path, "cannot merge lists of objects without a merge key"));
            };
            merge_object_list(original, patch, merge_key, meta.schema, path)
        }
    }
}

/// A primitive list with the merge strategy: set union (or difference for a deletion list), ordered
/// like upstream: patch items in patch order, interleaved with server-only items.
fn merge_primitive_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    delete_list: bool,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if delete_list {
        return Ok(original.into_iter().filter(|item| position(&patch, item).is_none()).collect());
    }
    let server_order = original.clone();
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for item in original.into_iter().chain(patch.iter().cloned()) {
        if position(&merged, &item).is_none() {
            merged.push(item);
        }
    }
    let (named, server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|item| position(&patch, item).is_some());
    normalize_element_order(named, server_only, &patch, &server_order, None, path)
}

/// A list of objects with a merge key: apply `$patch` items, merge matching items recursively,
/// append new ones, then order as upstream.
fn merge_object_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    schema: Schema,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let (mut merged, patch) = apply_list_directives(original, patch, merge_key, schema, path)?;
    let server_order = identities(&merged, Some(merge_key), path)?;
    let patch_order = identities(&patch, Some(merge_key), path)?;
    for (id, item) in patch_order.iter().zip(patch) {
        let item_path = format!("{path}[{merge_key}={id}]");
        let Value::Object(item) = item else {
            return Err(missing_key(&item, None, &item_path));
        };
        let existing = merged.iter().position(|m| identity(m, Some(merge_key)).is_some_and(|v| json_eq(v, id)));
        match existing {
            Some(index) => {
                let current = match std::mem::take(&mut merged[index]) {
                    Value::Object(current) => current,
                    other => return Err(missing_key(&other, None, &item_path)),
                };
                merged[index] = Value::Object(merge_map(current, item, schema, &item_path)?);
            }
            None => merged.push(Value::Object(merge_map(JsonMap::new(), item, schema, &item_path)?)),
        }
    }
    let (named, server_only) = partition(merged, &patch_order, Some(merge_key), path)?;
    normalize_element_order(named, server_only, &patch_order, &server_order, Some(merge_key), path)
}

/// Upstream `mergeSliceWithSpecialElements`: removes the items named by `$patch: delete` items and,
/// when a `{"$patch": "replace"}` item is present, replaces the list by the other patch items.
/// Returns the new base list and the remaining patch items.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    schema: Schema,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(value) = item.get(merge_key) else {
                    return Err(missing_key(&item, Some(merge_key), path));
                };
                original.retain(|o| !identity(o, Some(merge_key)).is_some_and(|v| json_eq(v, value)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::invalid(path, "merging lists cannot yet be specified in the patch"))
            }
            _ => return Err(PatchError::invalid(path, format!("unknown patch type {directive} in list item {item}"))),
        }
    }
    if replace {
        return Ok((clean_list(rest, schema, path)?, Vec::new()));
    }
    Ok((original, rest))
}

/// A value for a key the original lacks (or whose JSON type changed): directives are applied against
/// nothing, so `$patch: delete` yields no value and nested directives are consumed.
fn new_value(value: Value, meta: FieldMeta, path: &str) -> Result<Option<Value>, PatchError> {
    match value {
        Value::Object(map) => {
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                return Ok(None);
            }
            Ok(Some(Value::Object(merge_map(JsonMap::new(), map, meta.schema, path)?)))
        }
        Value::Array(list) => Ok(Some(Value::Array(clean_list(list, meta.schema, path)?))),
        scalar => Ok(Some(scalar)),
    }
}

/// A list taken as is from the patch: items carrying `$patch` are dropped (as upstream
/// `removeDirectives`), object items have their nested directives applied against nothing.
fn clean_list(list: Vec<Value>, schema: Schema, path: &str) -> Result<Vec<Value>, PatchError> {
    let mut cleaned = Vec::with_capacity(list.len());
    for item in list {
        match item {
            Value::Object(map) if map.contains_key(DIRECTIVE) => {}
            Value::Object(map) => cleaned.push(Value::Object(merge_map(JsonMap::new(), map, schema, path)?)),
            other => cleaned.push(other),
        }
    }
    Ok(cleaned)
}
