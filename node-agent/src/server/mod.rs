//! The agent's HTTPS server, what the API server proxies `kubectl logs` and `kubectl exec` to:
//! container logs read from the CRI log files ([`container_logs`], parsed by [`cri_log`]), exec
//! relayed between the client's websocket ([`exec`], [`channel`]) and the runtime's streaming server
//! ([`runtime_stream`] over [`spdy`]), `/metrics` and `/healthz`.
//! TLS and client certificates in [`tls`], who may do what in [`auth`], the listener in [`serve`].
//!
//! Reads pods only through the runtime (CRI) and the log files the agent's pods write; must not
//! depend on the pod workers or on the API.

pub mod auth;
pub mod channel;
pub mod container_logs;
pub mod cri_log;
pub mod error;
pub mod exec;
pub mod runtime_stream;
pub mod serve;
pub mod spdy;
pub mod tls;

pub use serve::{run, ServerState};
