//! The watch cache: per resource type, this replica's current objects and recent events, fed by one
//! store watch, so lists and watches do not read RocksDB per request and every event is serialized
//! once for all its watchers.

mod cached_object;
mod resource_cache;
mod watch_cache;

pub use cached_object::{watch_line, CachedEvent, CachedObject, EventType};
pub use resource_cache::{CacheSubscription, ResourceCache};
pub use watch_cache::WatchCache;

#[cfg(test)]
mod tests;
