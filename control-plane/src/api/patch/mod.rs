//! Applying Kubernetes PATCH bodies to a stored object, as pure functions over `serde_json::Value`:
//! JSON patch (RFC 6902), JSON merge patch (RFC 7396) and strategic merge patch with the patch
//! metadata of the built-in kinds.
//!
//! Must not depend on the HTTP layer, the store, or any I/O; the API handlers call [`apply_patch`].

mod apply;
mod error;
mod json;
pub mod merge_keys;
mod order;
mod strategic;
#[cfg(test)]
mod strategic_tests;

pub use apply::{apply_patch, PatchKind};
pub use error::PatchError;
pub use json::{apply_json_patch, apply_merge_patch};
pub use strategic::strategic_merge;
