//! The `k8s\0` + `runtime.Unknown` envelope of a Kubernetes protobuf body, and the entry point that turns a
//! whole body into the object's JSON form.
//!
//! Must not depend on HTTP: the request handler maps [`ProtobufError`] to a 400 itself.

use serde_json::{Map, Value};

use super::convert::{object_to_json, MAX_DEPTH};
use super::error::ProtobufError;
use super::schema_model::{kind_message, message_named, MessageSchema};
use super::wire::{WireReader, WireValue};

/// The four bytes that start every Kubernetes protobuf document.
pub const MAGIC: &[u8] = b"k8s\0";

/// `meta.v1.DeleteOptions` is registered in every group version, so it is accepted under any apiVersion.
const DELETE_OPTIONS: &str = "apimachinery.pkg.apis.meta.v1.DeleteOptions";

/// The parts of `runtime.Unknown` the decoder needs.
#[derive(Debug, Default, PartialEq)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    raw_offset: usize,
    content_encoding: String,
}

/// Decodes an `application/vnd.kubernetes.protobuf` request body into the JSON the client would have sent,
/// with `apiVersion` and `kind` taken from the envelope.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_object_at(body, 0)
}

/// [`decode_object`] for a document nested `depth` messages deep (a `RawExtension` holding `k8s\0` bytes).
pub fn decode_object_at(body: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep(MAX_DEPTH));
    }
    let payload = body.strip_prefix(MAGIC).ok_or(ProtobufError::MissingMagic)?;
    let envelope = read_envelope(payload, MAGIC.len())?;
    if !envelope.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(envelope.content_encoding));
    }
    if envelope.api_version.is_empty() || envelope.kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let schema = schema_for(&envelope.api_version, &envelope.kind).ok_or_else(|| ProtobufError::UnknownKind {
        api_version: envelope.api_version.clone(),
        kind: envelope.kind.clone(),
    })?;
    let fields = object_to_json(schema, envelope.raw, envelope.raw_offset, depth + 1)?;
    let mut obj = Map::new();
    obj.insert("apiVersion".to_string(), Value::String(envelope.api_version));
    obj.insert("kind".to_string(), Value::String(envelope.kind));
    obj.extend(fields);
    Ok(Value::Object(obj))
}

fn schema_for(api_version: &str, kind: &str) -> Option<&'static MessageSchema> {
    if kind == "DeleteOptions" {
        return message_named(DELETE_OPTIONS);
    }
    kind_message(api_version, kind)
}

/// Reads `runtime.Unknown`: 1 TypeMeta{1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType.
fn read_envelope(buf: &[u8], base: usize) -> Result<Envelope<'_>, ProtobufError> {
    let mut envelope = Envelope::default();
    let mut reader = WireReader::new(buf, base);
    while let Some((tag, value)) = reader.next_field()? {
        let end = reader.offset();
        match (tag, value) {
            (1, WireValue::Bytes(type_meta)) => {
                let mut inner = WireReader::new(type_meta, end - type_meta.len());
                while let Some((tag, value)) = inner.next_field()? {
                    match (tag, value) {
                        (1, WireValue::Bytes(s)) => envelope.api_version = utf8(s, "TypeMeta.apiVersion")?,
                        (2, WireValue::Bytes(s)) => envelope.kind = utf8(s, "TypeMeta.kind")?,
                        _ => {}
                    }
                }
            }
            (2, WireValue::Bytes(raw)) => {
                envelope.raw = raw;
                envelope.raw_offset = end - raw.len();
            }
            (3, WireValue::Bytes(s)) => envelope.content_encoding = utf8(s, "Unknown.contentEncoding")?,
            (4, WireValue::Bytes(_)) => {}
            (1..=4, other) => {
                return Err(ProtobufError::WireTypeMismatch {
                    field: format!("runtime.Unknown field {tag}"),
                    found: other.wire_type().name(),
                    expected: "length-delimited",
                })
            }
            _ => {}
        }
    }
    Ok(envelope)
}

fn utf8(bytes: &[u8], field: &str) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::InvalidUtf8 { field: field.to_string() })
}
