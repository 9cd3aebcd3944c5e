//! Machine-wide locks that keep heavy work from overlapping: [`ProcessLock`], an exclusive `flock`
//! on a well-known file in the temp directory.
//!
//! The end-to-end tests hold the runtime lock while they run a private containerd and the cluster
//! lock while they run a multi-replica cluster, so test processes (nextest) or threads (`cargo test`)
//! never run two at once on a small machine; `podstart-bench` takes both, so it never measures while
//! a test runs. Holders take the runtime lock before the cluster lock, never after. Waiting is
//! bounded: a lock not obtained within the deadline is an error, not a hang. Sync only (callers on a
//! runtime wrap it in `spawn_blocking`).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// File name of the cluster lock inside the temp directory.
pub const CLUSTER_LOCK_FILE: &str = "gantry-tests-cluster.lock";
/// File name of the node-runtime lock (held by every test's private containerd and its network).
pub const RUNTIME_LOCK_FILE: &str = "gantry-tests-runtime.lock";

/// Errors taking the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened.
    #[error("cannot open lock file {path}")]
    Open {
        /// Lock file path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// `flock` failed for another reason than contention.
    #[error("cannot lock {path}")]
    Flock {
        /// Lock file path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },
    /// Another holder kept the lock past the deadline.
    #[error("lock {path} still held by another test after {waited:?}")]
    Timeout {
        /// Lock file path.
        path: PathBuf,
        /// Time spent waiting.
        waited: Duration,
    },
}

/// An exclusive advisory lock, released on drop.
#[derive(Debug)]
pub struct ProcessLock {
    _lock: Flock<File>,
}

impl ProcessLock {
    /// The cluster lock path.
    pub fn cluster_lock_path() -> PathBuf {
        std::env::temp_dir().join(CLUSTER_LOCK_FILE)
    }

    /// The node-runtime lock path. Tests take it before the cluster lock, never after.
    pub fn runtime_lock_path() -> PathBuf {
        std::env::temp_dir().join(RUNTIME_LOCK_FILE)
    }

    /// Takes the lock at `path`, polling until `timeout` elapses (with a zero timeout: one try).
    pub fn acquire_blocking(path: &Path, timeout: Duration) -> Result<Self, LockError> {
        let start = Instant::now();
        let mut file = Self::open(path)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(Self { _lock: lock }),
                Err((f, Errno::EWOULDBLOCK)) | Err((f, Errno::EINTR)) => file = f,
                Err((_, source)) => return Err(LockError::Flock { path: path.to_path_buf(), source }),
            }
            if start.elapsed() >= timeout {
                return Err(LockError::Timeout { path: path.to_path_buf(), waited: start.elapsed() });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn open(path: &Path) -> Result<File, LockError> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| LockError::Open { path: path.to_path_buf(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_times_out_and_gets_it_after_release() {
        let dir = std::env::temp_dir().join(format!("gantry-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("l");
        let first = ProcessLock::acquire_blocking(&path, Duration::from_secs(1)).expect("first lock");
        let err = ProcessLock::acquire_blocking(&path, Duration::from_millis(300)).expect_err("second lock must wait");
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        let err = ProcessLock::acquire_blocking(&path, Duration::ZERO).expect_err("a single try fails too");
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        drop(first);
        ProcessLock::acquire_blocking(&path, Duration::ZERO).expect("lock after release, first try");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
