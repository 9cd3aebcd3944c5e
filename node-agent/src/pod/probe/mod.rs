//! Container probes (startup, liveness, readiness) as the kubelet runs them: what a probe runs
//! ([`action`], pure), its timing ([`settings`], pure), the per-probe state machine ([`state`], pure),
//! the published results handed to the planner and the status ([`results`], pure), one attempt's I/O
//! ([`handler`], [`http`], [`grpc`]) and the tasks that run them per container ([`runner`]).
//! Lifecycle hooks reuse [`action`] and [`handler`]. Must not decide kills or statuses itself: the
//! planner and the status code read [`ProbeResults`].

pub mod action;
pub mod grpc;
pub mod handler;
pub mod http;
pub mod results;
pub mod runner;
pub mod settings;
pub mod state;

pub use results::ProbeResults;
pub use runner::{ProbeEnv, ProbeManager};
pub use settings::ProbeKind;
pub use state::{Outcome, Verdict};
