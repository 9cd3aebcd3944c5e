//! The CronJob controller (upstream `pkg/controller/cronjob`): creates a Job per activation of a
//! cron schedule (UTC), honouring `concurrencyPolicy`, `startingDeadlineSeconds` and `suspend`,
//! tracks active Jobs in status and keeps the configured history of finished Jobs.
//!
//! Depends on the Job module only for what "finished" means; must not depend on other controllers.

pub mod controller;
pub mod plan;
pub mod schedule;

#[cfg(test)]
mod tests;

pub use controller::{spawn, CronJobController};
pub use plan::{job_name, plan, CronJobPlan, SCHEDULED_TIMESTAMP};
pub use schedule::{Schedule, ScheduleError};
