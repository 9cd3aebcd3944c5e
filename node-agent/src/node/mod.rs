//! The Node: its status as a pure function ([`status`]), resource pressure from machine readings
//! ([`pressure`], pure) and the registration / Lease / status loop ([`heartbeat`]).

pub mod heartbeat;
pub mod pressure;
pub mod status;

pub use heartbeat::Heartbeat;
pub use status::NodeFacts;
