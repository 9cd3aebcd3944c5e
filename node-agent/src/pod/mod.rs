//! Pods bound to this node: pure planning ([`plan`]), status ([`status`]), CRI configs ([`spec`]) with
//! their resolver configuration ([`dns_config`]),
//! environments ([`env`]) and image reference checks ([`image_ref`]), and the I/O around them: one
//! [`worker`] task per pod, started by the [`manager`]'s watch. Container probes live in [`probe`],
//! lifecycle hooks in [`hooks`], stop grace periods in [`grace`] (pure) and the stopping itself in
//! [`kill`].

pub mod backoff;
pub mod dns_config;
pub mod env;
pub mod grace;
pub mod hooks;
pub mod image_ref;
pub mod kill;
pub mod manager;
pub mod observed;
pub mod plan;
pub mod probe;
pub mod resources;
pub mod spec;
pub mod status;
pub mod teardown;
pub mod worker;
