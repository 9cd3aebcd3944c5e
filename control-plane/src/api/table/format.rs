//! Cell formatting shared by the printers: reading fields out of a JSON object, ages and durations as
//! upstream `duration.HumanDuration`, label sets and selectors, container lists.
//!
//! Pure; depends only on serde_json, chrono and the selector module (for label selector strings).

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::api::selector::LabelSelector;

/// Upstream's placeholder for "no value".
pub(super) const NONE: &str = "<none>";
/// Upstream's placeholder for an optional field that is not set.
pub(super) const UNSET: &str = "<unset>";
/// Upstream's placeholder for a missing timestamp.
pub(super) const UNKNOWN: &str = "<unknown>";

/// The value at a path of object keys, if every step exists and is not null.
pub(super) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key)).filter(|v| !v.is_null())
}

/// The string at `path`, or `""`.
pub(super) fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or_default()
}

/// The integer at `path`, if there is one.
pub(super) fn int_opt(value: &Value, path: &[&str]) -> Option<i64> {
    at(value, path).and_then(Value::as_i64)
}

/// The integer at `path`, or 0 (Go's zero value).
pub(super) fn int(value: &Value, path: &[&str]) -> i64 {
    int_opt(value, path).unwrap_or(0)
}

/// The boolean at `path`, or false.
pub(super) fn flag(value: &Value, path: &[&str]) -> bool {
    at(value, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The list at `path`, or an empty one.
pub(super) fn list<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The strings of the list at `path` (non-strings skipped).
pub(super) fn strings<'a>(value: &'a Value, path: &[&str]) -> Vec<&'a str> {
    list(value, path).iter().filter_map(Value::as_str).collect()
}

/// The RFC 3339 timestamp at `path`; `None` when missing, unparsable, or Go's zero time.
pub(super) fn time(value: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text(value, path)).ok()?.with_timezone(&Utc);
    (parsed.timestamp() != GO_ZERO_TIME).then_some(parsed)
}

/// `0001-01-01T00:00:00Z`, which Go writes for an unset `metav1.Time`.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// The object's name.
pub(super) fn name(object: &Value) -> &str {
    text(object, &["metadata", "name"])
}

/// Whether the object is being deleted.
pub(super) fn deleting(object: &Value) -> bool {
    at(object, &["metadata", "deletionTimestamp"]).is_some()
}

/// The status (`"True"`, `"False"`, ...) of the first condition of `kind` in `status.conditions`.
pub(super) fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    list(object, &["status", "conditions"]).iter().find(|c| text(c, &["type"]) == kind).map(|c| text(c, &["status"]))
}

/// Upstream `translateTimestampSince`: the age of a timestamp, `<unknown>` without one.
pub(super) fn since(then: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match then {
        Some(then) => human_duration(now.signed_duration_since(then)),
        None => UNKNOWN.to_owned(),
    }
}

/// The AGE cell: the age of `metadata.creationTimestamp`.
pub(super) fn age(object: &Value, now: DateTime<Utc>) -> String {
    since(time(object, &["metadata", "creationTimestamp"]), now)
}

/// Upstream `duration.HumanDuration`: two units while the larger one is small, one after that.
pub fn human_duration(d: Duration) -> String {
    // Truncated toward zero, as Go's int(d.Seconds()); up to a second in the future reads as now.
    let seconds = d.num_milliseconds() / 1000;
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let two = |big: i64, big_unit: &str, small: i64, small_unit: &str| match small {
        0 => format!("{big}{big_unit}"),
        _ => format!("{big}{big_unit}{small}{small_unit}"),
    };
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    let days = hours / 24;
    if minutes < 10 {
        two(minutes, "m", seconds % 60, "s")
    } else if minutes < 60 * 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        two(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        two(days, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else if hours < 24 * 365 * 8 {
        two(days / 365, "y", days % 365, "d")
    } else {
        format!("{}y", days / 365)
    }
}

/// `s`, or `<none>` when it is empty.
pub(super) fn or_none(s: &str) -> String {
    if s.is_empty() {
        NONE.to_owned()
    } else {
        s.to_owned()
    }
}

/// Upstream `labels.FormatLabels`: `k=v` sorted by key, comma separated, `<none>` when empty.
pub(super) fn label_set(map: Option<&Value>) -> String {
    let mut pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    // serde_json's map is ordered by key unless preserve_order is on; sort to be sure.
    pairs.sort_unstable();
    or_none(&pairs.join(","))
}

/// Upstream `metav1.LabelSelectorAsSelector(..).String()`; `None` when the selector is invalid.
pub(super) fn selector_string(selector: Option<&Value>) -> Option<String> {
    LabelSelector::from_json(selector.unwrap_or(&Value::Null)).ok().map(|s| s.to_string())
}

/// Upstream `metav1.FormatLabelSelector`: the selector string, `<none>` when it selects everything or
/// nothing, `<error>` when it is invalid.
pub(super) fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Some(s) => or_none(&s),
        None => "<error>".to_owned(),
    }
}

/// Upstream `layoutContainerCells`: container names and images of a pod spec, comma separated.
pub(super) fn containers(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec.map(|spec| list(spec, &["containers"])).unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// An `IntOrString` as Go prints it.
pub(super) fn int_or_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Up to `max` items, then `" + N more..."`; `empty` when there are none (upstream's list helpers).
pub(super) fn first_few(items: &[String], max: usize, empty: &str) -> String {
    if items.is_empty() {
        return empty.to_owned();
    }
    if items.len() > max {
        return format!("{} + {} more...", items[..max].join(","), items.len() - max);
    }
    items.join(",")
}

/// `net.JoinHostPort`: brackets around IPv6 hosts.
pub(super) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn human_duration_matches_upstream() {
        let cases: &[(i64, &str)] = &[
            (-3_000, "<invalid>"),
            (-2_000, "<invalid>"),
            (-1_999, "0s"),
            (-500, "0s"),
            (0, "0s"),
            (1_000, "1s"),
            (45_000, "45s"),
            (119_999, "119s"),
            (120_000, "2m"),
            (121_000, "2m1s"),
            (330_000, "5m30s"),
            (540_000, "9m"),
            (599_000, "9m59s"),
            (600_000, "10m"),
            (659_000, "10m"),
            (3 * 3_600_000 - 1_000, "179m"),
            (3 * 3_600_000, "3h"),
            (3 * 3_600_000 + 60_000, "3h1m"),
            (8 * 3_600_000 - 60_000, "7h59m"),
            (8 * 3_600_000, "8h"),
            (47 * 3_600_000 + 59 * 60_000, "47h"),
            (48 * 3_600_000, "2d"),
            (49 * 3_600_000, "2d1h"),
            (8 * 86_400_000 - 3_600_000, "7d23h"),
            (8 * 86_400_000, "8d"),
            (730 * 86_400_000 - 1_000, "729d"),
            (730 * 86_400_000, "2y"),
            (731 * 86_400_000, "2y1d"),
            (8 * 365 * 86_400_000 - 86_400_000, "7y364d"),
            (8 * 365 * 86_400_000, "8y"),
            (20 * 365 * 86_400_000 + 5 * 86_400_000, "20y"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration(Duration::milliseconds(*ms)), *want, "{ms}ms");
        }
    }

    #[test]
    fn since_without_a_timestamp_is_unknown() {
        let now = Utc::now();
        assert_eq!(since(None, now), "<unknown>");
        let object = json!({"metadata": {"creationTimestamp": "0001-01-01T00:00:00Z"}});
        assert_eq!(age(&object, now), "<unknown>");
        assert_eq!(age(&json!({"metadata": {"creationTimestamp": "not a time"}}), now), "<unknown>");
        let object = json!({"metadata": {"creationTimestamp": (now - Duration::seconds(90)).to_rfc3339()}});
        assert_eq!(age(&object, now), "90s");
    }

    #[test]
    fn label_sets_and_selectors() {
        assert_eq!(label_set(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(label_set(Some(&json!({}))), "<none>");
        assert_eq!(label_set(None), "<none>");
        let selector =
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "Exists"}]});
        assert_eq!(format_label_selector(Some(&selector)), "app=web,env");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({"matchLabels": {"a b": "c"}}))), "<error>");
        assert_eq!(selector_string(Some(&json!({"matchLabels": {"a b": "c"}}))), None);
    }

    #[test]
    fn lists_with_more() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(first_few(&items, 3, "<unset>"), "a,b,c + 2 more...");
        assert_eq!(first_few(&items[..3], 3, "<unset>"), "a,b,c");
        assert_eq!(first_few(&[], 3, "<unset>"), "<unset>");
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    }
}
