//! The garbage collector (upstream `pkg/controller/garbagecollector`): an ownership graph over every
//! cached object, keyed by uid, that deletes dependents whose owners are all gone (background
//! cascading), deletes the dependents of an owner deleted in the foreground before letting it go,
//! and releases the dependents of an owner deleted with `orphan`.
//!
//! Only objects of the kinds the shared informers cache are collected; owners of other kinds are
//! never assumed gone.

pub mod controller;
pub mod graph;
pub mod kinds;
pub mod plan;

#[cfg(test)]
mod tests;

pub use controller::{spawn, GarbageCollector};
pub use kinds::Kind;
pub use plan::{plan_deleting_owner, plan_dependent, DependentAction, OwnerState, Propagation};
