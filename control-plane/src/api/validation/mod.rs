//! Per-kind schema checks, defaulting and validation of the built-in kinds, as the upstream API
//! server applies them between decoding a request body and storing the object.
//!
//! Pure functions over `serde_json::Value`; must not depend on the store, the HTTP layer or any
//! other module of the API except `status::Cause`.

mod config;
mod defaults;
mod fields;
mod misc;
mod mode;
mod pod;
mod quantity;
mod schema;
mod service;
mod validate;
mod workloads;

#[cfg(test)]
mod kinds_tests;
#[cfg(test)]
mod tests;

pub use defaults::{default_object, generate_job_selector};
pub use mode::{field_validation_mode, FieldValidation, ValidationError};
pub use quantity::{Quantity, QuantityError};
pub use schema::{check_schema, prune_unknown_fields, unknown_field_outcome, unknown_fields};
pub use validate::validate_object;
