//! The ServiceAccount controller: every namespace that is not being deleted has a `default`
//! ServiceAccount, recreated when deleted (upstream `serviceaccounts-controller`; no token Secrets).

pub mod controller;
pub mod plan;

pub use controller::{spawn, ServiceAccountController};
pub use plan::{needs_default, DEFAULT_SERVICE_ACCOUNT};
