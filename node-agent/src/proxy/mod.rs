//! The service proxy (kube-proxy's job): programs the host's packet filter (an nftables table per
//! node) so that traffic to a Service's ClusterIP and NodePorts reaches its ready endpoints.
//!
//! [`render`] turns the service catalog into the table ([`model`], pure), [`script`] into `nft -f`
//! transactions (pure), [`sync`] decides when to write the whole table or only what changed and runs
//! the loop, [`nft`] runs the `nft` command, [`host`] sets the kernel settings the rules rely on and
//! [`metrics`] exports what was programmed.
//!
//! Reads Services and endpoints only through [`crate::services`]; must not depend on the runtime
//! (CRI) or on the pod workers. Cluster DNS (`crate::dns`) keeps its own table.

pub mod host;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod render;
pub mod script;
pub mod sync;

pub use metrics::ProxyMetrics;
pub use model::{table_name, RuleSet};
pub use nft::{Netfilter, Nft, NftError};
pub use render::render;
pub use sync::Proxy;
