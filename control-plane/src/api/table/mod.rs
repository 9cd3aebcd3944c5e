//! Server-side `Table` output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`) for
//! `kubectl get`, with the columns and cells of the upstream API server's printers
//! (k8s.io/kubernetes/pkg/printers/internalversion) and a NAME/AGE fallback for everything else.
//!
//! Owns: column definitions, cell formatting and table assembly. Pure: works on JSON objects and a
//! caller-supplied `now`; must not depend on the HTTP server, the store or the clock.
//! This file only declares the parts and re-exports the public API.

mod apps;
mod batch;
mod build;
mod columns;
mod core_v1;
mod format;
mod platform;
mod pod;
mod rbac;
mod volume;

pub use build::{column_definitions, table_for, IncludeObject, TableError};
pub use format::human_duration;
