//! Element order of merged lists in a strategic merge patch, following upstream
//! `normalizeElementOrder` / `mergeSortedSlice` (k8s.io/apimachinery strategicpatch): items named by
//! the patch (or by `$setElementOrder`) take the patch's order, the items only the server has keep
//! their server order, and the two runs are interleaved by their positions in the server list.
//!
//! Items are compared by identity: the merge-key value for lists of objects, the item itself for lists
//! of primitives. Owns only ordering and identity comparison; must not depend on the patch directives
//! or on the merge-key table.

use serde_json::Value;

use super::error::PatchError;

/// JSON equality where numbers compare by value (`80` equals `80.0`), as Go's decoded `float64` do.
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        _ => a == b,
    }
}

/// The identity of a list item: its merge-key value, or the whole item when there is no merge key.
pub(super) fn identity<'a>(item: &'a Value, merge_key: Option<&str>) -> Option<&'a Value> {
    match merge_key {
        Some(key) => item.as_object()?.get(key),
        None => Some(item),
    }
}

/// Identities of every item of `list`; an item without the merge key is an error.
pub(super) fn identities(list: &[Value], merge_key: Option<&str>, path: &str) -> Result<Vec<Value>, PatchError> {
    list.iter()
        .map(|item| identity(item, merge_key).cloned().ok_or_else(|| missing_key(item, merge_key, path)))
        .collect()
}

pub(super) fn missing_key(item: &Value, merge_key: Option<&str>, path: &str) -> PatchError {
    match (item.is_object(), merge_key) {
        (true, Some(key)) => {
            PatchError::invalid(path, format!("list item {item} does not contain declared merge key {key:?}"))
        }
        _ => PatchError::invalid(path, format!("list item {item} is not an object")),
    }
}

/// Position of `id` in `ids`.
pub(super) fn position(ids: &[Value], id: &Value) -> Option<usize> {
    ids.iter().position(|candidate| json_eq(candidate, id))
}

/// Splits `items` into those whose identity is in `ids` and the others, keeping relative order.
pub(super) fn partition(
    items: Vec<Value>,
    ids: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut named = Vec::new();
    let mut others = Vec::new();
    for item in items {
        let id = identity(&item, merge_key).ok_or_else(|| missing_key(&item, merge_key, path))?;
        if position(ids, id).is_some() {
            named.push(item);
        } else {
            others.push(item);
        }
    }
    Ok((named, others))
}

/// Orders `patch_items` by `patch_order` and `server_only` by `server_order` (both lists of
/// identities), then interleaves them: a server-only item goes before the next patch item only when
/// both are in the server list and the server item comes first there.
pub(super) fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let right = sort_by_order(patch_items, patch_order, merge_key, path)?;
    let left = sort_by_order(server_only, server_order, merge_key, path)?;
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some((l, _)), Some((r, _))) => {
                matches!((position(server_order, l), position(server_order, r)), (Some(li), Some(ri)) if li < ri)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_left { left.next() } else { right.next() };
        merged.extend(next.map(|(_, item)| item));
    }
    Ok(merged)
}

/// Stable sort of `items` by the position of their identity in `order`. Items absent from `order`
/// go last in their original relative order (upstream's comparator is inconsistent for them; it
/// never meets them in practice). With a merge key, `$patch: delete` items also go last, as upstream.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<Vec<(Value, Value)>, PatchError> {
    let mut keyed = Vec::with_capacity(items.len());
    for item in items {
        let id = identity(&item, merge_key).cloned().ok_or_else(|| missing_key(&item, merge_key, path))?;
        let is_delete = merge_key.is_some() && item.get("$patch").and_then(Value::as_str) == Some("delete");
        let rank = if is_delete { usize::MAX } else { position(order, &id).unwrap_or(usize::MAX - 1) };
        keyed.push((rank, id, item));
    }
    keyed.sort_by_key(|(rank, _, _)| *rank);
    Ok(keyed.into_iter().map(|(_, id, item)| (id, item)).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(items: &[Value]) -> Vec<Value> {
        items.iter().map(|item| item["name"].clone()).collect()
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&json!(80), &json!(80.0)));
        assert!(json_eq(&json!(-3), &json!(-3)));
        assert!(!json_eq(&json!(80), &json!("80")));
        assert!(json_eq(&json!({"a": 1}), &json!({"a": 1})));
    }

    #[test]
    fn patch_order_wins_and_server_items_keep_their_place() {
        // server: 1 2 3, patch: 3 1 (2 only on the server) → 2 3 1 (upstream "preserve the order
        // from the patch in a merging list 2").
        let server_order = vec![json!(1), json!(2), json!(3)];
        let patch_order = vec![json!(3), json!(1)];
        let patch_items = vec![json!({"name": 1}), json!({"name": 3})];
        let server_only = vec![json!({"name": 2})];
        let merged = normalize_element_order(patch_items, server_only, &patch_order, &server_order, Some("name"), "l")
            .expect("ordered");
        assert_eq!(names(&merged), vec![json!(2), json!(3), json!(1)]);
    }

    #[test]
    fn new_items_follow_the_patch_order() {
        // server: a c, order: c b a → c b a (b new, both others named).
        let server_order = vec![json!("a"), json!("c")];
        let order = vec![json!("c"), json!("b"), json!("a")];
        let patch_items = vec![json!("a"), json!("c"), json!("b")];
        let merged = normalize_element_order(patch_items, vec![], &order, &server_order, None, "l").expect("ordered");
        assert_eq!(merged, vec![json!("c"), json!("b"), json!("a")]);
    }

    #[test]
    fn missing_merge_key_is_an_error() {
        let err = identities(&[json!({"value": 1})], Some("name"), "spec.list").expect_err("no key");
        assert!(err.to_string().contains("does not contain declared merge key \"name\""), "{err}");
    }
}
