//! The EndpointSlice controller: for every Service with a selector, EndpointSlices (IPv4, at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints each, one port set per slice) listing the selected pods with
//! ready/serving/terminating conditions, changed with as few writes as possible (upstream
//! `pkg/controller/endpointslice`). Slices are owned by the Service, so the garbage collector removes
//! them with it.

pub mod controller;
pub mod plan;

#[cfg(test)]
mod tests;

pub use controller::{spawn, EndpointSliceController};
pub use plan::{plan, SlicePlan, CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MAX_ENDPOINTS_PER_SLICE};
