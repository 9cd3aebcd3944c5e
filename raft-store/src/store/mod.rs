//! The replica handle and what it does.

mod client_ops;
mod handle;
pub mod identity;
mod leader;
mod read_batcher;
mod write_ack;
mod write_batcher;

pub use client_ops::{MemberInfo, StoreStatus};
pub use handle::Store;
pub use write_ack::WriteAck;
