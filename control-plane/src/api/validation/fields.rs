//! Building blocks of validation: field causes worded like upstream's `field.Error`, the name
//! formats (DNS-1123, IANA service names, config keys), label selectors, and Go-style rendering of
//! values inside messages.
//!
//! Pure; must not depend on anything but `status::Cause`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::status::Cause;

/// The causes found so far, with one constructor per upstream `field.ErrorType`.
#[derive(Debug, Default)]
pub(super) struct Causes(pub Vec<Cause>);

impl Causes {
    fn push(&mut self, reason: &'static str, field: &str, message: String) {
        self.0.push(Cause { reason, field: field.to_string(), message });
    }

    pub fn required(&mut self, field: &str, detail: &str) {
        let message =
            if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        self.push("FieldValueRequired", field, message);
    }

    /// `shown` is the value already rendered (see [`quote`] and [`go_value`]).
    pub fn invalid(&mut self, field: &str, shown: &str, detail: &str) {
        let message = if detail.is_empty() {
            format!("Invalid value: {shown}")
        } else {
            format!("Invalid value: {shown}: {detail}")
        };
        self.push("FieldValueInvalid", field, message);
    }

    pub fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        self.push(
            "FieldValueNotSupported",
            field,
            format!("Unsupported value: {}: supported values: {}", quote(value), list.join(", ")),
        );
    }

    pub fn duplicate(&mut self, field: &str, shown: &str) {
        self.push("FieldValueDuplicate", field, format!("Duplicate value: {shown}"));
    }

    pub fn forbidden(&mut self, field: &str, detail: &str) {
        self.push("FieldValueForbidden", field, format!("Forbidden: {detail}"));
    }

    pub fn not_found(&mut self, field: &str, shown: &str) {
        self.push("FieldValueNotFound", field, format!("Not found: {shown}"));
    }

    pub fn too_long(&mut self, field: &str, max_bytes: usize) {
        self.push("FieldValueTooLong", field, format!("Too long: may not be more than {max_bytes} bytes"));
    }

    /// An enum field: required when empty, else one of `supported`.
    pub fn one_of(&mut self, field: &str, value: &str, supported: &[&str]) {
        if value.is_empty() {
            self.required(field, "");
        } else if !supported.contains(&value) {
            self.not_supported(field, value, supported);
        }
    }

    /// An optional enum field: checked only when present.
    pub fn optional_one_of(&mut self, obj: &Value, key: &str, field: &str, supported: &[&str]) {
        if let Some(v) = obj.get(key).and_then(Value::as_str) {
            if !supported.contains(&v) {
                self.not_supported(field, v, supported);
            }
        }
    }

    pub fn non_negative(&mut self, obj: &Value, key: &str, field: &str) {
        if let Some(n) = obj.get(key).and_then(Value::as_i64) {
            if n < 0 {
                self.invalid(field, &n.to_string(), "must be greater than or equal to 0");
            }
        }
    }

    pub fn positive(&mut self, obj: &Value, key: &str, field: &str) {
        if let Some(n) = obj.get(key).and_then(Value::as_i64) {
            if n <= 0 {
                self.invalid(field, &n.to_string(), "must be greater than 0");
            }
        }
    }

    /// A field that may not change once the object exists.
    pub fn immutable(&mut self, field: &str, new: Option<&Value>, old: Option<&Value>) {
        if normalized(new) != normalized(old) {
            let shown = new.map_or("null".to_string(), go_value);
            self.invalid(field, &shown, "field is immutable");
        }
    }
}

/// `a.b`, or `b` at the root.
pub(super) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `a[3]`.
pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `data[key]`.
pub(super) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// A string as Go's `%q` renders it.
pub(super) fn quote(s: &str) -> String {
    format!("{s:?}")
}

pub(super) fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn array_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

pub(super) fn object_of<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// A string map (labels, selectors); non-string values are skipped (decoding rejects them).
pub(super) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// A value rendered roughly as Go's `%#v` would: strings quoted, maps as `map[string]string{...}`.
pub(super) fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{}:{}", quote(k), quote(v.as_str().unwrap_or("")))).collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
        Value::Array(a) if a.iter().all(Value::is_string) => {
            let items: Vec<String> = a.iter().map(|v| quote(v.as_str().unwrap_or(""))).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A `metav1.LabelSelector` as upstream prints it in messages.
pub(super) fn go_label_selector(v: Option<&Value>) -> String {
    let labels = v.and_then(|s| s.get("matchLabels")).map_or("map[string]string(nil)".to_string(), go_value);
    let exprs = match v.and_then(|s| s.get("matchExpressions")).and_then(Value::as_array) {
        Some(a) if !a.is_empty() => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    let values: Vec<String> = array_of(e, "values").iter().map(go_value).collect();
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:[]string{{{}}}}}",
                        quote(str_of(e, "key")),
                        quote(str_of(e, "operator")),
                        values.join(", ")
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        _ => "[]v1.LabelSelectorRequirement(nil)".to_string(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

/// A value with nulls, empty arrays and empty objects removed, so that "absent" and "empty"
/// compare equal as upstream's semantic equality treats nil and empty.
pub(super) fn normalized(v: Option<&Value>) -> Option<Value> {
    fn norm(v: &Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Object(m) => {
                let out: Map<String, Value> = m.iter().filter_map(|(k, v)| norm(v).map(|v| (k.clone(), v))).collect();
                (!out.is_empty()).then_some(Value::Object(out))
            }
            Value::Array(a) if a.is_empty() => None,
            Value::Array(a) => Some(Value::Array(a.iter().map(|v| norm(v).unwrap_or(Value::Null)).collect())),
            other => Some(other.clone()),
        }
    }
    v.and_then(norm)
}

pub(super) const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub(super) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn label_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// Problems of a DNS-1123 label, as upstream's `IsDNS1123Label` lists them.
pub(super) fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !label_chars_ok(s) {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

pub(super) fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(label_chars_ok) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

/// Problems of an IANA service name (named ports), as upstream's `IsValidPortName`.
pub(super) fn port_name_errors(s: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if s.is_empty() || s.len() > 15 {
        out.push("must be no more than 15 characters");
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !s.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)");
    }
    if s.contains("--") {
        out.push("must not contain consecutive hyphens");
    }
    if s.starts_with('-') || s.ends_with('-') {
        out.push("must not begin or end with a hyphen");
    }
    out
}

pub(super) const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

pub(super) fn valid_port(n: i64) -> bool {
    (1..=65535).contains(&n)
}

/// Problems of a ConfigMap or Secret key.
pub(super) fn config_key_errors(k: &str) -> Vec<String> {
    let mut out = Vec::new();
    if k.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        out.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    if k == "." {
        out.push("must not be '.'".to_string());
    } else if k == ".." {
        out.push("must not be '..'".to_string());
    } else if k.starts_with("..") {
        out.push("must not start with '..'".to_string());
    }
    out
}

/// A label key or value check (qualified name / label value) for selectors.
pub(super) fn label_value_ok(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

pub(super) fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = k.split_once('/').unwrap_or(("", k));
    (prefix.is_empty() || dns1123_subdomain_errors(prefix).is_empty())
        && !name.is_empty()
        && label_value_ok(name)
        && (!k.contains('/') || !prefix.is_empty())
}

/// Validates a `metav1.LabelSelector` at `path`.
pub(super) fn validate_label_selector(sel: &Value, path: &str, c: &mut Causes) {
    for (k, v) in string_map(sel.get("matchLabels")) {
        if !label_key_ok(&k) {
            c.invalid(&child(path, "matchLabels"), &quote(&k), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
        }
        if !label_value_ok(&v) {
            c.invalid(&child(path, "matchLabels"), &quote(&v), "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
        }
    }
    for (i, e) in array_of(sel, "matchExpressions").iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let op = str_of(e, "operator");
        let n = array_of(e, "values").len();
        match op {
            "In" | "NotIn" if n == 0 => {
                c.required(&child(&p, "values"), "must be specified when `operator` is 'In' or 'NotIn'")
            }
            "Exists" | "DoesNotExist" if n > 0 => {
                c.forbidden(&child(&p, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => c.invalid(&child(&p, "operator"), &quote(other), "not a valid selector operator"),
        }
        if !label_key_ok(str_of(e, "key")) {
            c.invalid(&child(&p, "key"), &quote(str_of(e, "key")), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
        }
    }
}

/// True when the selector has no requirements (it would select everything).
pub(super) fn selector_is_empty(sel: &Value) -> bool {
    string_map(sel.get("matchLabels")).is_empty() && array_of(sel, "matchExpressions").is_empty()
}

/// Whether a `metav1.LabelSelector` selects `labels`.
pub(super) fn selector_matches(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    let plain = string_map(sel.get("matchLabels")).iter().all(|(k, v)| labels.get(k) == Some(v));
    plain
        && array_of(sel, "matchExpressions").iter().all(|e| {
            let values: Vec<&str> = array_of(e, "values").iter().filter_map(Value::as_str).collect();
            let have = labels.get(str_of(e, "key"));
            match str_of(e, "operator") {
                "In" => have.is_some_and(|v| values.contains(&v.as_str())),
                "NotIn" => have.is_none_or(|v| !values.contains(&v.as_str())),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_upstream_formats() {
        assert!(dns1123_label_errors("web-1").is_empty());
        assert!(!dns1123_label_errors("Web").is_empty());
        assert!(!dns1123_label_errors(&"a".repeat(64)).is_empty());
        assert!(dns1123_subdomain_errors("a.b-c").is_empty());
        assert!(!dns1123_subdomain_errors("a..b").is_empty());
        assert!(port_name_errors("http").is_empty());
        assert!(port_name_errors("h2c-web").is_empty());
        for bad in ["", "8080", "HTTP", "a--b", "-ab", "abcdefghijklmnop"] {
            assert!(!port_name_errors(bad).is_empty(), "{bad}");
        }
        assert!(config_key_errors("app.properties").is_empty());
        for bad in ["a b", ".", "..", "..x", "a/b", ""] {
            assert!(!config_key_errors(bad).is_empty(), "{bad}");
        }
        assert!(label_key_ok("app.kubernetes.io/name"));
        assert!(!label_key_ok("/name"));
    }

    #[test]
    fn selectors_match_and_render() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let sel = json!({ "matchLabels": { "app": "web" }, "matchExpressions": [
            { "key": "tier", "operator": "DoesNotExist" }, { "key": "app", "operator": "In", "values": ["web", "api"] }] });
        assert!(selector_matches(&sel, &labels));
        assert!(!selector_matches(&json!({ "matchLabels": { "app": "api" } }), &labels));
        assert!(!selector_matches(
            &json!({ "matchExpressions": [{ "key": "app", "operator": "NotIn", "values": ["web"] }] }),
            &labels
        ));
        assert!(selector_is_empty(&json!({})));
        assert_eq!(
            go_label_selector(Some(&json!({ "matchLabels": { "app": "web" } }))),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        let mut c = Causes::default();
        validate_label_selector(
            &json!({ "matchExpressions": [{ "key": "a", "operator": "In" }, { "key": "b", "operator": "Has" }] }),
            "spec.selector",
            &mut c,
        );
        let got: Vec<(&str, &str)> = c.0.iter().map(|c| (c.field.as_str(), c.reason)).collect();
        assert_eq!(
            got,
            vec![
                ("spec.selector.matchExpressions[0].values", "FieldValueRequired"),
                ("spec.selector.matchExpressions[1].operator", "FieldValueInvalid")
            ]
        );
    }

    #[test]
    fn normalization_treats_empty_as_absent() {
        assert_eq!(normalized(Some(&json!({ "a": [], "b": {}, "c": null }))), None);
        assert_eq!(normalized(Some(&json!({ "a": [1], "b": {} }))), Some(json!({ "a": [1] })));
    }
}
