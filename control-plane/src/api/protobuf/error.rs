//! The error type of the protobuf request-body decoder.

use thiserror::Error;

/// Why a `application/vnd.kubernetes.protobuf` body could not be turned into JSON.
#[derive(Debug, Error, PartialEq)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the kubernetes magic bytes \"k8s\\0\"")]
    MissingMagic,
    #[error("truncated protobuf data at byte {offset}")]
    Truncated { offset: usize },
    #[error("malformed varint at byte {offset}")]
    BadVarint { offset: usize },
    #[error("invalid protobuf wire type {wire_type} at byte {offset}")]
    BadWireType { wire_type: u64, offset: usize },
    #[error("invalid protobuf field number 0 at byte {offset}")]
    BadFieldNumber { offset: usize },
    #[error("field {field} has wire type {found}, expected {expected}")]
    WireTypeMismatch { field: String, found: &'static str, expected: &'static str },
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 { field: String },
    #[error("protobuf envelope has no apiVersion/kind")]
    MissingTypeMeta,
    #[error("protobuf envelope has content encoding {0:?}, only the identity encoding is supported")]
    UnsupportedEncoding(String),
    #[error("kind {kind} in {api_version} cannot be decoded from protobuf")]
    UnknownKind { api_version: String, kind: String },
    #[error("field {field} holds invalid embedded JSON: {reason}")]
    InvalidEmbeddedJson { field: String, reason: String },
    #[error("field {field} is a timestamp out of range")]
    TimeOutOfRange { field: String },
    #[error("protobuf message nesting is deeper than {0} levels")]
    TooDeep(usize),
}
