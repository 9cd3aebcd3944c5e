//! `svc-bench`: the node agent's service proxy on 1,000 Services × 10 endpoints: full resync time,
//! EndpointSlice change → rule latency and the latency a ClusterIP adds to a request.
//!
//! [`cli`] flags, [`objects`] the Services and slices (pure), [`resync`] in-process syncs with the
//! agent's code, [`agent`] the agent process, [`monitor`] `nft monitor`, [`changes`] change → rule,
//! [`latency`] the echo pod and the round trips, [`run`] the sequence, [`report`] the result.

pub mod agent;
pub mod changes;
pub mod cli;
pub mod latency;
pub mod monitor;
pub mod objects;
pub mod report;
pub mod resync;
pub mod run;
