//! The Kubernetes REST API served by every replica over HTTPS, backed by the replicated store.
//!
//! Must not depend on CRI or the node agent.

pub mod auth;
pub mod bootstrap;
pub mod discovery;
pub mod handlers;
pub mod objects;
pub mod patch;
pub mod pki;
pub mod query;
pub mod resources;
pub mod router;
pub mod selector;
pub mod server;
pub mod status;
pub mod storage;
pub mod table;
pub mod tls;
pub mod watch;

pub use server::{run, ApiConfig};
