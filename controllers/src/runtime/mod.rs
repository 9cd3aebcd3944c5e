//! The pipeline every controller shares: informers (watch → in-memory cache → change broadcast), a
//! de-duplicating work queue with per-key back-off, reconcile workers, expectations for writes the
//! cache has not seen yet, Events and metrics.

pub mod context;
pub mod error;
pub mod events;
pub mod expectations;
pub mod informer;
pub mod informer_set;
pub mod metrics;
pub mod object_key;
pub mod pod_deletion;
pub mod work_queue;
pub mod worker;

pub use context::Context;
pub use error::ControllerError;
pub use events::{EventRecorder, EventType};
pub use expectations::Expectations;
pub use informer::{Change, Informer};
pub use informer_set::InformerSet;
pub use metrics::ControllerMetrics;
pub use object_key::ObjectKey;
pub use work_queue::WorkQueue;
pub use worker::{enqueue_changes, run_workers, Reconciler, Requeue};
