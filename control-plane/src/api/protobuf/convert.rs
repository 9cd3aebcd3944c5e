//! Converts one protobuf message into its Kubernetes JSON form, driven by the generated schema table.
//!
//! Generic rules only: field names, scalars, repeated fields, maps, inlined structs and Go's `omitempty`. The
//! Kubernetes types with a custom JSON form are delegated to [`super::special_forms`]. Must not depend on HTTP.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::error::ProtobufError;
use super::pointer_fields::is_pointer_scalar;
use super::schema_model::{message, FieldSchema, FieldType, MessageSchema};
use super::special_forms::special_form;
use super::wire::{WireReader, WireType, WireValue};

/// Nesting limit, so hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 100;

/// Converts `buf` (a message of type `schema`, starting at byte `base` of the body) into JSON. `None` means
/// the value has no JSON form and its field is omitted (a zero `Time`, an empty `RawExtension`).
pub fn message_to_json(
    schema: &'static MessageSchema,
    buf: &[u8],
    base: usize,
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep(MAX_DEPTH));
    }
    if let Some(form) = special_form(schema.name) {
        return form.to_json(schema, buf, base, depth);
    }
    object_to_json(schema, buf, base, depth).map(|o| Some(Value::Object(o)))
}

/// Converts a regular message into a JSON object.
pub fn object_to_json(
    schema: &'static MessageSchema,
    buf: &[u8],
    base: usize,
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    let mut obj = Map::new();
    let mut reader = WireReader::new(buf, base);
    while let Some((tag, value)) = reader.next_field()? {
        let Some(field) = schema.field(tag) else { continue };
        let ctx = FieldContext { schema, field, value_end: reader.offset(), depth };
        match field.ty {
            FieldType::Inline(index) => {
                let bytes = ctx.bytes(value)?;
                let inner = object_to_json(ctx.target(index)?, bytes, ctx.payload_offset(bytes), depth + 1)?;
                obj.extend(inner);
            }
            FieldType::MapStr | FieldType::MapBytes | FieldType::MapMessage(_) => {
                let (key, val) = ctx.map_entry(value)?;
                let entry = obj.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = entry {
                    map.insert(key, val);
                }
            }
            _ if field.repeated => {
                let items = ctx.repeated_values(value)?;
                let entry = obj.entry(field.json).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = entry {
                    list.extend(items);
                }
            }
            _ => match ctx.single_value(value)? {
                Some(v) => {
                    obj.insert(field.json.to_string(), v);
                }
                None => {
                    obj.remove(field.json);
                }
            },
        }
    }
    drop_unset_scalars(schema, &mut obj);
    Ok(obj)
}

/// Go writes every non-pointer scalar, even zero; its JSON form omits those (`omitempty`).
fn drop_unset_scalars(schema: &MessageSchema, obj: &mut Map<String, Value>) {
    for field in schema.fields {
        let scalar = matches!(
            field.ty,
            FieldType::Str | FieldType::Int32 | FieldType::Int64 | FieldType::Bool | FieldType::Double
        );
        if !scalar || field.repeated || is_pointer_scalar(schema.name, field.json) {
            continue;
        }
        if obj.get(field.json).is_some_and(is_zero) {
            obj.remove(field.json);
        }
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// One field occurrence being converted, with what error messages need.
struct FieldContext {
    schema: &'static MessageSchema,
    field: &'static FieldSchema,
    /// Body offset just past the field value, from which payload offsets are computed.
    value_end: usize,
    depth: usize,
}

impl FieldContext {
    fn name(&self) -> String {
        format!("{}.{}", self.schema.name, self.field.json)
    }

    fn target(&self, index: usize) -> Result<&'static MessageSchema, ProtobufError> {
        // The generator only emits indices inside the table; a miss means input we cannot interpret.
        message(index).ok_or_else(|| ProtobufError::WireTypeMismatch {
            field: self.name(),
            found: "message",
            expected: "a message in the schema table",
        })
    }

    fn mismatch(&self, found: WireType, expected: WireType) -> ProtobufError {
        ProtobufError::WireTypeMismatch { field: self.name(), found: found.name(), expected: expected.name() }
    }

    fn bytes<'a>(&self, value: WireValue<'a>) -> Result<&'a [u8], ProtobufError> {
        match value {
            WireValue::Bytes(b) => Ok(b),
            other => Err(self.mismatch(other.wire_type(), WireType::LengthDelimited)),
        }
    }

    /// Body offset of this field's length-delimited payload, which ends where the field ends.
    fn payload_offset(&self, bytes: &[u8]) -> usize {
        self.value_end.saturating_sub(bytes.len())
    }

    fn string(&self, value: WireValue<'_>) -> Result<String, ProtobufError> {
        let bytes = self.bytes(value)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::InvalidUtf8 { field: self.name() })
    }

    fn varint(&self, value: WireValue<'_>) -> Result<u64, ProtobufError> {
        match value {
            WireValue::Varint(v) => Ok(v),
            other => Err(self.mismatch(other.wire_type(), WireType::Varint)),
        }
    }

    /// A scalar or message value of a non-repeated field.
    fn single_value(&self, value: WireValue<'_>) -> Result<Option<Value>, ProtobufError> {
        let ty = self.field.ty;
        match ty {
            FieldType::Str => Ok(Some(Value::String(self.string(value)?))),
            FieldType::Bytes => Ok(Some(Value::String(base64_string(self.bytes(value)?)))),
            FieldType::Message(index) => {
                let bytes = self.bytes(value)?;
                message_to_json(self.target(index)?, bytes, self.payload_offset(bytes), self.depth + 1)
            }
            FieldType::Int32 | FieldType::Int64 | FieldType::Bool | FieldType::Double => {
                self.number(ty, value).map(Some)
            }
            FieldType::Inline(_) | FieldType::MapStr | FieldType::MapBytes | FieldType::MapMessage(_) => Ok(None),
        }
    }

    fn number(&self, ty: FieldType, value: WireValue<'_>) -> Result<Value, ProtobufError> {
        Ok(match ty {
            // Go's int32 is sign-extended to ten bytes on the wire; the low 32 bits are the value.
            FieldType::Int32 => Value::from(self.varint(value)? as u32 as i32),
            FieldType::Int64 => Value::from(self.varint(value)? as i64),
            FieldType::Bool => Value::Bool(self.varint(value)? != 0),
            _ => match value {
                WireValue::Fixed64(bits) => {
                    serde_json::Number::from_f64(f64::from_bits(bits)).map_or(Value::Null, Value::Number)
                }
                other => return Err(self.mismatch(other.wire_type(), WireType::Fixed64)),
            },
        })
    }

    /// The values of one occurrence of a repeated field; numbers may be packed into one record.
    fn repeated_values(&self, value: WireValue<'_>) -> Result<Vec<Value>, ProtobufError> {
        let ty = self.field.ty;
        let numeric = matches!(ty, FieldType::Int32 | FieldType::Int64 | FieldType::Bool | FieldType::Double);
        match value {
            WireValue::Bytes(packed) if numeric => {
                let mut out = Vec::new();
                let mut reader = WireReader::new(packed, self.payload_offset(packed));
                while !reader.is_empty() {
                    let item = if ty == FieldType::Double {
                        WireValue::Fixed64(reader.read_fixed64()?)
                    } else {
                        WireValue::Varint(reader.read_varint()?)
                    };
                    out.push(self.number(ty, item)?);
                }
                Ok(out)
            }
            _ => Ok(vec![self.single_value(value)?.unwrap_or(Value::Null)]),
        }
    }

    /// One `map<string, V>` entry: a message with the key in field 1 and the value in field 2.
    fn map_entry(&self, value: WireValue<'_>) -> Result<(String, Value), ProtobufError> {
        let bytes = self.bytes(value)?;
        let mut reader = WireReader::new(bytes, self.payload_offset(bytes));
        let mut key = String::new();
        let mut val: Option<Value> = None;
        while let Some((tag, item)) = reader.next_field()? {
            let item_end = reader.offset();
            match tag {
                1 => key = self.string(item)?,
                2 => {
                    val = match self.field.ty {
                        FieldType::MapStr => Some(Value::String(self.string(item)?)),
                        FieldType::MapBytes => Some(Value::String(base64_string(self.bytes(item)?))),
                        FieldType::MapMessage(index) => {
                            let inner = self.bytes(item)?;
                            message_to_json(
                                self.target(index)?,
                                inner,
                                item_end.saturating_sub(inner.len()),
                                self.depth + 1,
                            )?
                        }
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        // A missing value is the zero value of its type.
        let val = match (val, self.field.ty) {
            (Some(v), _) => v,
            (None, FieldType::MapMessage(index)) => {
                message_to_json(self.target(index)?, &[], self.value_end, self.depth + 1)?.unwrap_or(Value::Null)
            }
            (None, _) => Value::String(String::new()),
        };
        Ok((key, val))
    }
}

/// Standard base64, which is how Go's encoding/json writes `[]byte`.
pub fn base64_string(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
