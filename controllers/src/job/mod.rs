//! The Job controller (upstream `pkg/controller/job` plus the TTL-after-finished controller): runs
//! pods from a Job's template until `completions` succeed or the Job fails (backoffLimit,
//! activeDeadlineSeconds), counts finished pods exactly once through a tracking finalizer, honours
//! `suspend`, and deletes finished Jobs after `ttlSecondsAfterFinished`.
//!
//! Must not depend on other controllers (the CronJob controller depends on this one, not back).

pub mod backoff;
pub mod controller;
pub mod indexes;
pub mod plan;

#[cfg(test)]
mod tests;

pub use backoff::BackoffRecord;
pub use controller::{spawn, JobController};
pub use plan::{finished_condition, plan, JobPlan, TRACKING_FINALIZER};
