//! Pod volumes: what each should be ([`plan`], pure), the CRI mounts of a container ([`mounts`],
//! pure), and the host side — directories, tmpfs and host-path checks ([`host`]), atomically written
//! file sets ([`atomic_writer`]) and per-pod set-up and tear-down ([`manager`]).
//!
//! Must not talk to the API or the runtime: callers pass in the objects and get back host paths.

pub mod atomic_writer;
pub mod host;
pub mod manager;
pub mod mounts;
pub mod plan;

pub use manager::{pod_dir, pod_dir_uids, teardown_pod_dir, PodVolumes};
pub use mounts::{container_mounts, HostVolume, MountError};
pub use plan::{plan_volumes, HostPathPolicy, VolumeError, VolumePlan};
