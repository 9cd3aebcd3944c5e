//! The etcd v3 gRPC API over the store: `KV`, `Watch`, `Lease`, `Cluster`, `Maintenance.Status`.

pub mod convert;
pub mod errors;
pub mod header;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;

pub use kv::KvService;
pub use lease::LeaseService;
pub use maintenance::{ClusterService, MaintenanceService};
pub use watch::WatchService;
