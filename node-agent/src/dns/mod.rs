//! Cluster DNS, served by the node agent: names in the cluster domain answered from the
//! [`ServiceCatalog`](crate::services::ServiceCatalog) ([`names`] classifies, [`answer`] builds the
//! records, [`exchange`] the messages: all pure), everything else forwarded to the host's resolvers
//! ([`upstream`], parsed by [`resolv_conf`]), over UDP ([`udp`]: replies from the address asked) and
//! TCP ([`server`]); pods reach it through the
//! cluster DNS address, which an nftables table of the agent's own redirects to it ([`redirect`]).
//! [`setup`] turns the agent's flags into a running server.
//!
//! Depends on the service catalog, the agent's metrics and the proxy's `nft` runner only; knows
//! nothing of pods or the runtime.

pub mod answer;
pub mod exchange;
pub mod names;
pub mod redirect;
pub mod resolv_conf;
pub mod server;
pub mod setup;
pub mod udp;
pub mod upstream;

pub use names::ClusterDomain;
pub use resolv_conf::ResolvConf;
pub use setup::{DnsSetup, DnsSetupError};
