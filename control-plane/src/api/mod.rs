//! The Kubernetes REST API served by every replica over HTTPS, backed by the replicated store.
//!
//! Must not depend on CRI or the node agent.

pub mod admission;
pub mod apply;
pub mod apply_handler;
pub mod auth;
pub mod bootstrap;
pub mod cache;
pub mod deletion;
pub mod discovery;
pub mod handlers;
pub mod list_from_cache;
pub mod metrics;
pub mod namespace_cleanup;
pub mod node_proxy;
pub mod objects;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod query;
pub mod resources;
pub mod router;
pub mod selector;
pub mod server;
pub mod services;
pub mod status;
pub mod storage;
pub mod subresources;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;
mod watch_from_cache;

pub use server::{run, run_with_registry, ApiConfig, ApiServer, LocalService};
