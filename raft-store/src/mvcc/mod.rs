//! The MVCC key space: data model, on-disk encoding, reads and the per-command writer.

pub mod current_cache;
pub mod encoding;
pub mod model;
pub mod reader;
#[cfg(test)]
mod tests;
pub mod writer;
