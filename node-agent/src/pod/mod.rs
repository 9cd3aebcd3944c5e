//! Pods bound to this node: pure planning ([`plan`]), status ([`status`]) and CRI configs ([`spec`]),
//! and the I/O around them: one [`worker`] task per pod, started by the [`manager`]'s watch.

pub mod backoff;
pub mod manager;
pub mod observed;
pub mod plan;
pub mod resources;
pub mod spec;
pub mod status;
pub mod teardown;
pub mod worker;
