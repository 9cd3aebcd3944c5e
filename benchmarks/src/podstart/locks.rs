//! The test suite's machine-wide locks ([`gantry_local_runtime::lock`]), taken so that
//! `podstart-bench` never measures while an end-to-end test runs containers or a cluster on the same
//! cores (and no such test starts while it measures): the runtime lock, then the cluster lock, in the
//! tests' order.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use gantry_local_runtime::lock::LockError;
use gantry_local_runtime::lock::{ProcessLock, CLUSTER_LOCK_FILE, RUNTIME_LOCK_FILE};

/// Both locks, released on drop.
#[derive(Debug)]
pub struct TestLocks {
    _held: Vec<ProcessLock>,
}

impl TestLocks {
    /// Takes the runtime lock and then the cluster lock under `dir`, each within `timeout`;
    /// `waiting` is called once for each lock that is busy at the first try.
    pub async fn acquire(dir: &Path, timeout: Duration, mut waiting: impl FnMut(&Path)) -> Result<Self, LockError> {
        let mut held = Vec::new();
        for name in [RUNTIME_LOCK_FILE, CLUSTER_LOCK_FILE] {
            let path = dir.join(name);
            let lock = match ProcessLock::acquire_blocking(&path, Duration::ZERO) {
                Ok(lock) => lock,
                Err(LockError::Timeout { .. }) => {
                    waiting(&path);
                    acquire_waiting(path, timeout).await?
                }
                Err(e) => return Err(e),
            };
            held.push(lock);
        }
        Ok(Self { _held: held })
    }
}

/// Waits for a busy lock on a blocking thread, so the runtime keeps running.
async fn acquire_waiting(path: PathBuf, timeout: Duration) -> Result<ProcessLock, LockError> {
    match tokio::task::spawn_blocking(move || ProcessLock::acquire_blocking(&path, timeout)).await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_lock_times_out_and_is_free_after_release() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = TestLocks::acquire(dir.path(), Duration::from_secs(1), |_| {}).await?;
        let mut waited = Vec::new();
        let second = TestLocks::acquire(dir.path(), Duration::from_millis(300), |p| waited.push(p.to_path_buf())).await;
        assert!(matches!(second, Err(LockError::Timeout { .. })), "{second:?}");
        assert_eq!(waited, [dir.path().join(RUNTIME_LOCK_FILE)]);
        drop(first);
        TestLocks::acquire(dir.path(), Duration::from_secs(1), |_| {}).await?;
        Ok(())
    }
}
