//! Field selectors: the `fieldSelector` grammar (`=`, `==`, `!=` terms with escaping), the
//! per-resource allow-lists of selectable fields, matching against a JSON object, and the projection
//! of an object that selectors read.
//!
//! Pure: no I/O.

use std::fmt;

use serde_json::Value;

use super::error::SelectorError;

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    negated: bool,
}

/// A parsed field selector: `field=value` / `field==value` / `field!=value` terms that must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses the `?fieldSelector=` syntax. Values may escape `\,`, `\=` and `\\`; an empty string
    /// selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::with_capacity(parts.len());
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, operator, value)) = split_term(part) else {
                return Err(SelectorError::FieldTerm { selector: s.to_owned(), term: part.to_owned() });
            };
            terms.push(FieldTerm { field: field.to_owned(), value: unescape(value)?, negated: operator == "!=" });
        }
        Ok(Self { terms })
    }

    /// Whether every term holds for this object. A field is read by its dotted path; a missing field
    /// reads as the empty string (as `false` or `0` for the boolean and count fields upstream selects
    /// on), so `spec.nodeName=` selects unscheduled pods.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|term| (field_value(object, &term.field) == term.value) != term.negated)
    }

    /// Whether the selector selects everything (no terms).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value a `field=value` (or `==`) term pins the field to, if there is one; lets a caller use
    /// an index (e.g. pods by `spec.nodeName`).
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.field == field && !t.negated).map(|t| t.value.as_str())
    }

    /// Checks every field against the resource's allow-list, as upstream's field label conversion
    /// functions do: `metadata.name` and `metadata.namespace` everywhere, plus per-resource fields.
    pub fn validate_for(&self, group: &str, resource: &str) -> Result<(), SelectorError> {
        match self.terms.iter().find(|t| !field_allowed(group, resource, &t.field)) {
            Some(term) => Err(SelectorError::UnsupportedField(term.field.clone())),
            None => Ok(()),
        }
    }
}

/// The canonical form, as upstream's: terms in order, values escaped.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if term.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", term.field, escape(&term.value))?;
        }
        Ok(())
    }
}

fn field_allowed(group: &str, resource: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace") || selectable_fields(group, resource).contains(&field)
}

/// The per-resource selectable fields (besides `metadata.name` and `metadata.namespace`).
fn selectable_fields(group: &str, resource: &str) -> &'static [&'static str] {
    match (group, resource) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
            // What old v1 clients send for spec.nodeName.
            "spec.host",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

/// The part of `object` that label and field selectors of this resource can read: name, namespace,
/// labels and the resource's selectable fields (with the fields those are derived from). Caches keep
/// this instead of whole objects, so filtering does not need to parse every object.
pub fn selectable_projection(group: &str, resource: &str, object: &Value) -> Value {
    let mut out = serde_json::Map::new();
    let mut copy = |path: &str| {
        let Some(found) = path.split('.').try_fold(object, |value, key| value.get(key)) else { return };
        let mut parts = path.split('.').peekable();
        let mut node = &mut out;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_owned(), found.clone());
                return;
            }
            let next = node.entry(part.to_owned()).or_insert_with(|| Value::Object(serde_json::Map::new()));
            match next.as_object_mut() {
                Some(map) => node = map,
                None => return,
            }
        }
    };
    for path in ["metadata.name", "metadata.namespace", "metadata.labels"] {
        copy(path);
    }
    for field in selectable_fields(group, resource) {
        match *field {
            "spec.host" => copy("spec.nodeName"),
            "status.successful" => copy("status.succeeded"),
            "status.podIP" => {
                copy("status.podIP");
                copy("status.podIPs");
            }
            "source" => {
                copy("source.component");
                copy("reportingComponent");
            }
            other => copy(other),
        }
    }
    Value::Object(out)
}

/// The string upstream's selectable-field set holds for `field`.
fn field_value(object: &Value, field: &str) -> String {
    match field {
        "spec.host" => path_value(object, "spec.nodeName", ""),
        "spec.hostNetwork" | "spec.unschedulable" => path_value(object, field, "false"),
        "status.replicas" => path_value(object, field, "0"),
        "status.successful" => path_value(object, "status.succeeded", "0"),
        "status.podIP" => match object.pointer("/status/podIPs/0/ip").and_then(Value::as_str) {
            Some(ip) => ip.to_owned(),
            None => path_value(object, field, ""),
        },
        "source" => match path_value(object, "source.component", "") {
            component if component.is_empty() => path_value(object, "reportingComponent", ""),
            component => component,
        },
        _ => path_value(object, field, ""),
    }
}

fn path_value(object: &Value, path: &str, missing: &str) -> String {
    let found = path.split('.').try_fold(object, |value, key| value.get(key));
    match found {
        None | Some(Value::Null) => missing.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(_) | Value::Object(_)) => String::new(),
    }
}

/// Splits on commas that are not escaped.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first `!=`, `==` or `=` (tried in that order at each position) splits field from value.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        ["!=", "==", "="]
            .into_iter()
            .find(|op| term[i..].starts_with(op))
            .map(|op| (&term[..i], op, &term[i + op.len()..]))
    })
}

fn unescape(value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(SelectorError::Escape(format!("\\{other}"))),
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::Unescaped(c)),
            other => out.push(other),
        }
    }
    if escaped {
        return Err(SelectorError::Escape("\\".to_owned()));
    }
    Ok(out)
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}
