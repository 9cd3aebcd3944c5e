//! Watches: the hub that announces applied revisions and the per-watch reader.

pub mod hub;
pub mod watcher;
