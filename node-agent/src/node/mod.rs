//! The Node: its status as a pure function ([`status`]) and the registration / Lease / status loop
//! ([`heartbeat`]).

pub mod heartbeat;
pub mod status;

pub use heartbeat::Heartbeat;
pub use status::NodeFacts;
