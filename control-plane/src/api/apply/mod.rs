//! Server-side apply and field ownership (`metadata.managedFields`), as pure functions over
//! `serde_json::Value`, following upstream structured-merge-diff semantics: apply configurations
//! merge into the live object, each manager owns the fields it set, applies that would change other
//! managers' fields conflict unless forced, and fields an applier stops applying are removed when
//! nobody else owns them.
//!
//! Must not depend on the HTTP layer, the store or any I/O. The PATCH handler calls
//! [`check_patch_options`] then [`apply`]; create, update and non-apply patch call [`track_update`].

#[cfg(test)]
mod apply_tests;
mod error;
mod field_set;
mod manager_name;
mod managers;
mod merge;
mod schema;
mod scope;
mod server_side;
mod update;
mod walk;

pub use error::{ApplyError, FieldConflict};
pub use field_set::FieldSet;
pub use manager_name::{check_field_manager, check_patch_options, default_manager};
pub use scope::Scope;
pub use server_side::{apply, apply_in_scope};
pub use update::{track_update, track_update_in_scope};
