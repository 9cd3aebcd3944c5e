//! The ConfigMaps and Secrets that pods on this node read: which ones a pod references
//! ([`reference`], pure) and their live contents, each followed by its own watch ([`cache`]).

pub mod cache;
pub mod reference;

pub use cache::{ObjectCache, Subscriptions};
pub use reference::{pod_references, ObjectData, ObjectKind, ObjectRef, ObjectState, ObjectsView};
