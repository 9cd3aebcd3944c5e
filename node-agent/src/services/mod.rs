//! Services as the node sees them: the cluster's Services and EndpointSlices joined into one
//! [`ServiceCatalog`] ([`catalog`], pure) and kept current by two watches ([`feed`]). The service proxy
//! and cluster DNS are built on it.

pub mod catalog;
pub mod feed;

pub use catalog::{Endpoint, Protocol, ServiceCatalog, ServiceEntry, ServicePort, ServiceType};
