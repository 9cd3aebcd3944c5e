//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`, sent by
//! kubectl >= 1.32 for `create <generator>` and drain's DeleteOptions) into the JSON the rest of the API
//! server works with.
//!
//! Must not depend on HTTP types or the store: callers pass bytes and get a `serde_json::Value`.

mod convert;
mod envelope;
mod error;
mod pointer_fields;
#[rustfmt::skip]
mod schema;
mod schema_model;
mod special_forms;
mod wire;

#[cfg(test)]
mod test_encoder;
#[cfg(test)]
mod tests;

pub use envelope::{decode_object, MAGIC};
pub use error::ProtobufError;
