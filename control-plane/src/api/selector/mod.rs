//! Label and field selectors (`?labelSelector=` and `?fieldSelector=`), parsed and matched with the
//! semantics of k8s.io/apimachinery (`pkg/labels/selector.go`, `pkg/fields/selector.go`) and the
//! per-resource field-label allow-lists of the upstream API server.
//!
//! Owns: both selector grammars, label key/value validation, matching against a label map or a JSON
//! object, turning a `metav1.LabelSelector` JSON value into a selector, and `validate_for`.
//! Pure: no I/O; must not depend on the HTTP server, the store, or any other module of the crate.

mod error;
mod field;
mod label;
#[cfg(test)]
mod tests;

pub use error::SelectorError;
pub use field::{selectable_projection, FieldSelector};
pub use label::LabelSelector;
