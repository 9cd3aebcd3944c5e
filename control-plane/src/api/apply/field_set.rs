//! A set of field paths of one object, shaped like the `FieldsV1` tree of `metadata.managedFields`:
//! the set operations server-side apply needs, the `FieldsV1` encoding and the `.spec.replicas` path
//! notation used in conflict messages.
//!
//! Owns only the set representation. Must not depend on the schema, on object values or on the HTTP
//! layer: path elements are opaque strings here, built by [`PathElement`] helpers.
//!
//! Path elements are stored in their canonical `FieldsV1` spelling (`f:name`, `k:{"name":"x"}`,
//! `v:"value"`, `i:0`), so two sets built from different sources compare equal exactly when they
//! name the same fields. Keys of `k:` elements are sorted by field name, as upstream writes them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::ApplyError;

/// Builders of canonical path elements.
pub struct PathElement;

impl PathElement {
    /// A struct field or map key: `f:name`.
    pub fn field(name: &str) -> String {
        format!("f:{name}")
    }

    /// An item of an associative list, identified by its key fields: `k:{"name":"nginx"}`.
    pub fn key<'a>(fields: impl IntoIterator<Item = (&'a str, &'a Value)>) -> String {
        let mut fields: Vec<(&str, &Value)> = fields.into_iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let body: Vec<String> =
            fields.iter().map(|(name, value)| format!("{}:{}", json_string(name), canonical_json(value))).collect();
        format!("k:{{{}}}", body.join(","))
    }

    /// An item of a list treated as a set: `v:"finalizer"`.
    pub fn value(value: &Value) -> String {
        format!("v:{}", canonical_json(value))
    }

    /// An item of a list addressed by position: `i:0`.
    pub fn index(index: usize) -> String {
        format!("i:{index}")
    }
}

/// A set of paths. Each node is one path; `member` says whether that path itself is in the set
/// (as opposed to only being the parent of paths that are). The root is never a member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path`; the empty path (the object itself) cannot be a member and is ignored.
    pub fn insert(&mut self, path: &[String]) {
        if let Some((first, rest)) = path.split_first() {
            self.child_mut(first).insert_here(rest);
        }
    }

    fn insert_here(&mut self, rest: &[String]) {
        match rest.split_first() {
            None => self.member = true,
            Some((first, rest)) => self.child_mut(first).insert_here(rest),
        }
    }

    /// The node of `element` below this one, created when missing.
    pub fn child_mut(&mut self, element: &str) -> &mut FieldSet {
        self.children.entry(element.to_owned()).or_default()
    }

    /// The node of `element` below this one.
    pub fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element)
    }

    /// Marks this node's own path as a member.
    pub fn mark_member(&mut self) {
        self.member = true;
    }

    pub fn is_member(&self) -> bool {
        self.member
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((first, rest)) => self.children.get(first).is_some_and(|child| child.contains(rest)),
        }
    }

    /// The child elements and their nodes, in canonical order.
    pub fn children(&self) -> impl Iterator<Item = (&String, &FieldSet)> {
        self.children.iter()
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_in_place(other);
        out
    }

    fn union_in_place(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (element, theirs) in &other.children {
            self.child_mut(element).union_in_place(theirs);
        }
    }

    /// Paths of `self` that are not members of `other` (path by path: a member of `other` does not
    /// take its descendants along).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && !other.member, children: BTreeMap::new() };
        for (element, mine) in &self.children {
            let child = match other.children.get(element) {
                Some(theirs) => mine.difference(theirs),
                None => mine.clone(),
            };
            if !child.is_empty() {
                out.children.insert(element.clone(), child);
            }
        }
        out
    }

    /// Paths that are members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && other.member, children: BTreeMap::new() };
        for (element, mine) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let child = mine.intersection(theirs);
                if !child.is_empty() {
                    out.children.insert(element.clone(), child);
                }
            }
        }
        out
    }

    /// Drops every path at or below one of `prefixes` (each a path of elements).
    pub fn without_prefixes(&self, prefixes: &[&[&str]]) -> FieldSet {
        let mut out = self.clone();
        for prefix in prefixes {
            out.remove_subtree(prefix);
        }
        out.prune_empty();
        out
    }

    fn remove_subtree(&mut self, prefix: &[&str]) {
        match prefix {
            [] => {}
            [last] => {
                self.children.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get_mut(*first) {
                    child.remove_subtree(rest);
                }
            }
        }
    }

    /// Keeps only the paths at or below `prefix`.
    pub fn only_under(&self, prefix: &[&str]) -> FieldSet {
        let Some((first, rest)) = prefix.split_first() else {
            return self.clone();
        };
        let mut out = FieldSet::new();
        if let Some(child) = self.children.get(*first) {
            let kept = child.only_under(rest);
            if !kept.is_empty() {
                out.children.insert((*first).to_owned(), kept);
            }
        }
        out
    }

    /// Removes nodes that hold no member, so that equal sets have equal trees.
    fn prune_empty(&mut self) {
        for child in self.children.values_mut() {
            child.prune_empty();
        }
        self.children.retain(|_, child| !child.is_empty());
    }

    /// Every member path, in upstream iteration order: at each level the members first, then the
    /// descendants of each child.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (element, child) in &self.children {
            if child.member {
                let mut path = prefix.clone();
                path.push(element.clone());
                out.push(path);
            }
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON of this set: `{"f:spec":{"f:replicas":{}}}`, with `".":{}` on paths that
    /// are members and also have members below them.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && self.children.values().any(|child| !child.is_empty()) {
            map.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            if !child.is_empty() {
                map.insert(element.clone(), child.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    /// Parses a `fieldsV1` JSON tree, canonicalising the spelling of `k:` and `v:` elements.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet, ApplyError> {
        let mut root = FieldSet::new();
        root.decode_children(fields, "")?;
        Ok(root)
    }

    fn decode_children(&mut self, fields: &Value, at: &str) -> Result<(), ApplyError> {
        let Value::Object(map) = fields else {
            return Err(ApplyError::InvalidManagedFields(format!("fieldsV1 at {at:?} is not an object")));
        };
        for (element, value) in map {
            if element == "." {
                self.member = true;
                continue;
            }
            let canonical = canonical_element(element)?;
            let child = self.child_mut(&canonical);
            match value {
                Value::Object(inner) if inner.is_empty() => child.member = true,
                other => child.decode_children(other, element)?,
            }
        }
        Ok(())
    }
}

/// The upstream rendering of a path, as shown in conflict messages:
/// `.spec.template.spec.containers[name="nginx"].image`, `.metadata.finalizers[="x"]`, `.args[0]`.
pub fn render_path(path: &[String]) -> String {
    path.iter().map(|element| render_element(element)).collect()
}

fn render_element(element: &str) -> String {
    if let Some(name) = element.strip_prefix("f:") {
        return format!(".{name}");
    }
    if let Some(key) = element.strip_prefix("k:") {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(key) {
            let mut parts: Vec<(&String, &Value)> = fields.iter().collect();
            parts.sort_by(|a, b| a.0.cmp(b.0));
            let rendered: Vec<String> =
                parts.iter().map(|(name, value)| format!("{name}={}", render_value(value))).collect();
            return format!("[{}]", rendered.join(","));
        }
        return format!("[{key}]");
    }
    if let Some(value) = element.strip_prefix("v:") {
        return match serde_json::from_str::<Value>(value) {
            Ok(value) => format!("[={}]", render_value(&value)),
            Err(_) => format!("[={value}]"),
        };
    }
    if let Some(index) = element.strip_prefix("i:") {
        return format!("[{index}]");
    }
    element.to_owned()
}

/// Strings quoted, everything else as JSON.
fn render_value(value: &Value) -> String {
    canonical_json(value)
}

/// Re-spells a `fieldsV1` element canonically; rejects unknown prefixes.
fn canonical_element(element: &str) -> Result<String, ApplyError> {
    let invalid = |why: &str| ApplyError::InvalidManagedFields(format!("path element {element:?}: {why}"));
    if element.starts_with("f:") {
        return Ok(element.to_owned());
    }
    if let Some(key) = element.strip_prefix("k:") {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(key) else {
            return Err(invalid("key is not a json object"));
        };
        return Ok(PathElement::key(fields.iter().map(|(name, value)| (name.as_str(), value))));
    }
    if let Some(value) = element.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).map_err(|_| invalid("value is not json"))?;
        return Ok(PathElement::value(&value));
    }
    if let Some(index) = element.strip_prefix("i:") {
        let index: usize = index.parse().map_err(|_| invalid("index is not a number"))?;
        return Ok(PathElement::index(index));
    }
    Err(invalid("unknown prefix"))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// JSON with object keys sorted whatever the `serde_json` map implementation.
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> =
                entries.iter().map(|(k, v)| format!("{}:{}", json_string(k), canonical_json(v))).collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(elements: &[&str]) -> Vec<String> {
        elements.iter().map(|e| (*e).to_owned()).collect()
    }

    fn set(paths: &[&[&str]]) -> FieldSet {
        let mut s = FieldSet::new();
        for path in paths {
            s.insert(&p(path));
        }
        s
    }

    #[test]
    fn key_elements_are_sorted_and_compact() {
        let port = json!(80);
        let proto = json!("TCP");
        assert_eq!(
            PathElement::key([("protocol", &proto), ("containerPort", &port)]),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        assert_eq!(PathElement::value(&json!("kubernetes.io/pvc")), r#"v:"kubernetes.io/pvc""#);
        assert_eq!(PathElement::index(3), "i:3");
    }

    #[test]
    fn fields_v1_round_trip_with_self_markers() {
        let v1 = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}
        });
        let parsed = FieldSet::from_fields_v1(&v1).expect("valid");
        assert!(parsed.contains(&p(&["f:metadata", "f:labels"])));
        assert!(parsed.contains(&p(&["f:metadata", "f:labels", "f:app"])));
        assert!(!parsed.contains(&p(&["f:metadata"])));
        assert!(parsed.contains(&p(&["f:spec", "f:containers", r#"k:{"name":"nginx"}"#, "f:image"])));
        assert_eq!(parsed.to_fields_v1(), v1);
    }

    #[test]
    fn fields_v1_keys_are_canonicalised_on_parse() {
        let v1 = json!({"f:ports": {"k:{ \"protocol\": \"TCP\", \"containerPort\": 80 }": {}}});
        let parsed = FieldSet::from_fields_v1(&v1).expect("valid");
        assert!(parsed.contains(&p(&["f:ports", r#"k:{"containerPort":80,"protocol":"TCP"}"#])));
    }

    #[test]
    fn fields_v1_rejects_garbage() {
        for bad in [json!({"x:y": {}}), json!({"f:a": 1}), json!({"k:notjson": {}}), json!({"i:x": {}}), json!([])] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_operations() {
        let a = set(&[&["f:spec", "f:replicas"], &["f:spec", "f:paused"], &["f:metadata", "f:labels", "f:a"]]);
        let b = set(&[&["f:spec", "f:replicas"], &["f:metadata", "f:labels"]]);
        assert_eq!(a.intersection(&b), set(&[&["f:spec", "f:replicas"]]));
        // Difference is path by path: owning `.metadata.labels` does not remove `.metadata.labels.a`.
        assert_eq!(a.difference(&b), set(&[&["f:spec", "f:paused"], &["f:metadata", "f:labels", "f:a"]]));
        assert_eq!(a.union(&b).paths().len(), 4);
        assert!(a.difference(&a).is_empty());
        assert!(FieldSet::new().is_empty());
        assert_eq!(a.without_prefixes(&[&["f:metadata"]]), set(&[&["f:spec", "f:replicas"], &["f:spec", "f:paused"]]));
        assert_eq!(a.only_under(&["f:metadata"]), set(&[&["f:metadata", "f:labels", "f:a"]]));
    }

    #[test]
    fn paths_list_members_before_descendants() {
        let s = set(&[&["f:spec", "f:template", "f:x"], &["f:spec", "f:replicas"], &["f:metadata", "f:labels", "f:a"]]);
        let rendered: Vec<String> = s.paths().iter().map(|path| render_path(path)).collect();
        assert_eq!(rendered, [".metadata.labels.a", ".spec.replicas", ".spec.template.x"]);
    }

    #[test]
    fn rendering_matches_upstream_notation() {
        let cases: &[(&[&str], &str)] = &[
            (&["f:spec", "f:replicas"], ".spec.replicas"),
            (
                &["f:spec", "f:containers", r#"k:{"name":"nginx"}"#, "f:image"],
                r#".spec.containers[name="nginx"].image"#,
            ),
            (&["f:ports", r#"k:{"containerPort":80,"protocol":"TCP"}"#], r#".ports[containerPort=80,protocol="TCP"]"#),
            (&["f:metadata", "f:finalizers", r#"v:"a/b""#], r#".metadata.finalizers[="a/b"]"#),
            (&["f:args", "i:2"], ".args[2]"),
        ];
        for (path, expected) in cases {
            assert_eq!(render_path(&p(path)), *expected);
        }
    }
}
