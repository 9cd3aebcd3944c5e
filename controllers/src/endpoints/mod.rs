//! The Endpoints controller: for every Service with a selector, an Endpoints object of the same name
//! listing the selected pods' addresses grouped by the ports they serve (upstream
//! `pkg/controller/endpoint`). Services without a selector are left to whoever writes their Endpoints.

pub mod controller;
pub mod plan;
pub mod service_pods;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

pub use controller::{spawn, EndpointsController};
pub use plan::{desired_endpoints, desired_subsets, LABEL_HEADLESS, LABEL_SKIP_MIRROR};
