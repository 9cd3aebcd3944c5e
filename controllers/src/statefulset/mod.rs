//! The StatefulSet controller: pods `<set>-<ordinal>` with stable identity (labels, hostname/subdomain)
//! and per-ordinal PersistentVolumeClaims, created in order (OrderedReady) or all at once (Parallel),
//! scaled down from the highest ordinal, rolled from the highest ordinal down to the partition, with
//! ControllerRevisions for the current and update revision and the status `kubectl rollout status` reads.

pub mod controller;
pub mod identity;
pub mod plan;

#[cfg(test)]
mod tests;

pub use controller::{spawn, StatefulSetController};
pub use plan::{plan, Revisions, StatefulSetPlan};
