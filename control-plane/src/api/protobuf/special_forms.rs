//! Kubernetes types whose JSON form is not an object of their protobuf fields: timestamps, durations,
//! IntOrString, Quantity, embedded raw JSON and string-list wrappers.
//!
//! Recognised by message name; must not depend on HTTP or on the envelope beyond nested `k8s\0` raw objects.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::convert::object_to_json;
use super::envelope::{decode_object_at, MAGIC};
use super::error::ProtobufError;
use super::schema_model::MessageSchema;
use super::wire::{WireReader, WireValue};

/// A JSON form that differs from the generic object mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialForm {
    /// `meta.v1.Time`: RFC 3339 with whole seconds; the zero time is omitted (Go writes `null`).
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 with six fractional digits.
    MicroTime,
    /// `meta.v1.Duration`: Go duration string such as `1h2m3.5s`.
    Duration,
    /// `intstr.IntOrString`: a JSON number or string.
    IntOrString,
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// `runtime.RawExtension` and `meta.v1.FieldsV1`: bytes holding an embedded JSON (or `k8s\0`) document.
    RawJson,
    /// `ExtraValue` and `Verbs`: a message wrapping `repeated string items = 1`, written as a JSON array.
    StringList,
}

/// The special form of a message, by its dotted name.
pub fn special_form(message_name: &str) -> Option<SpecialForm> {
    Some(match message_name {
        "apimachinery.pkg.apis.meta.v1.Time" => SpecialForm::Time,
        "apimachinery.pkg.apis.meta.v1.MicroTime" => SpecialForm::MicroTime,
        "apimachinery.pkg.apis.meta.v1.Duration" => SpecialForm::Duration,
        "apimachinery.pkg.util.intstr.IntOrString" => SpecialForm::IntOrString,
        "apimachinery.pkg.api.resource.Quantity" => SpecialForm::Quantity,
        "apimachinery.pkg.runtime.RawExtension" | "apimachinery.pkg.apis.meta.v1.FieldsV1" => SpecialForm::RawJson,
        "apimachinery.pkg.apis.meta.v1.Verbs"
        | "api.authentication.v1.ExtraValue"
        | "api.authorization.v1.ExtraValue" => SpecialForm::StringList,
        _ => return None,
    })
}

impl SpecialForm {
    /// Converts a message of this form; `None` means the field is omitted from the JSON object.
    pub fn to_json(
        self,
        schema: &'static MessageSchema,
        buf: &[u8],
        base: usize,
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        match self {
            SpecialForm::RawJson => {
                let bytes = raw_bytes(buf, base)?;
                if bytes.is_empty() {
                    return Ok(None);
                }
                if bytes.starts_with(MAGIC) {
                    return decode_object_at(bytes, depth + 1).map(Some);
                }
                serde_json::from_slice(bytes).map(Some).map_err(|e| ProtobufError::InvalidEmbeddedJson {
                    field: format!("{}.raw", schema.name),
                    reason: e.to_string(),
                })
            }
            // Go marshals the zero time as an empty message; any other payload is a real instant.
            SpecialForm::Time | SpecialForm::MicroTime if buf.is_empty() => Ok(None),
            _ => {
                // Missing keys read as zero below, so the generic decoder's omission of zero scalars is harmless.
                let fields = object_to_json(schema, buf, base, depth)?;
                self.reshape(&fields, schema.name)
            }
        }
    }

    fn reshape(self, fields: &serde_json::Map<String, Value>, message: &str) -> Result<Option<Value>, ProtobufError> {
        let int = |k: &str| fields.get(k).and_then(Value::as_i64).unwrap_or(0);
        let string = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Ok(match self {
            SpecialForm::Time | SpecialForm::MicroTime => {
                let (seconds, nanos) = (int("seconds"), int("nanos"));
                let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000);
                let time = nanos.and_then(|n| DateTime::<Utc>::from_timestamp(seconds, n));
                let time = time.ok_or_else(|| ProtobufError::TimeOutOfRange { field: message.to_string() })?;
                Some(Value::String(if self == SpecialForm::Time {
                    time.to_rfc3339_opts(SecondsFormat::Secs, true)
                } else {
                    time.to_rfc3339_opts(SecondsFormat::Micros, true)
                }))
            }
            SpecialForm::Duration => Some(Value::String(go_duration(int("duration")))),
            SpecialForm::IntOrString => {
                Some(if int("type") == 1 { Value::String(string("strVal")) } else { Value::from(int("intVal")) })
            }
            SpecialForm::Quantity => {
                let s = string("string");
                Some(Value::String(if s.is_empty() { "0".to_string() } else { s }))
            }
            SpecialForm::StringList => Some(fields.get("items").cloned().unwrap_or_else(|| Value::Array(Vec::new()))),
            SpecialForm::RawJson => None,
        })
    }
}

/// The `raw` bytes (field 1) of a RawExtension or FieldsV1 message.
fn raw_bytes(buf: &[u8], base: usize) -> Result<&[u8], ProtobufError> {
    let mut reader = WireReader::new(buf, base);
    let mut raw: &[u8] = &[];
    while let Some((tag, value)) = reader.next_field()? {
        if let (1, WireValue::Bytes(b)) = (tag, value) {
            raw = b;
        }
    }
    Ok(raw)
}

/// Formats nanoseconds like Go's `time.Duration.String` (`0s`, `1.5s`, `2m0s`, `1h0m0s`, `300ms`).
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(n, div));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = (n / 60_000_000_000) % 60;
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// `value / div` with the fractional part written without trailing zeros.
fn fraction(value: u64, div: u64) -> String {
    let whole = value / div;
    let rest = value % div;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = div.ilog10() as usize;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(120_000_000_000), "2m0s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(300_000_000), "300ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn recognises_special_messages() {
        assert_eq!(special_form("apimachinery.pkg.apis.meta.v1.Time"), Some(SpecialForm::Time));
        assert_eq!(special_form("api.authentication.v1.ExtraValue"), Some(SpecialForm::StringList));
        assert_eq!(special_form("api.core.v1.Pod"), None);
    }
}
