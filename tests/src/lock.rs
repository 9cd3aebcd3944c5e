//! The machine-wide process locks of [`gantry_local_runtime::lock`], with an async way to take them.
//! Every [`crate::ProcessCluster`] holds the cluster lock for its lifetime; every node runtime the
//! runtime lock.

use std::path::Path;
use std::time::Duration;

pub use gantry_local_runtime::lock::{LockError, ProcessLock, CLUSTER_LOCK_FILE, RUNTIME_LOCK_FILE};

/// Takes the lock at `path`, polling until `timeout` elapses, on a blocking thread so the runtime
/// keeps running meanwhile.
pub async fn acquire(path: &Path, timeout: Duration) -> Result<ProcessLock, LockError> {
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || ProcessLock::acquire_blocking(&owned, timeout)).await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_lock_is_waited_for_until_the_deadline_then_free_after_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("l");
        let first = acquire(&path, Duration::from_secs(1)).await.expect("first lock");
        let err = acquire(&path, Duration::from_millis(300)).await.expect_err("second lock must wait");
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        drop(first);
        acquire(&path, Duration::from_secs(1)).await.expect("lock after release");
    }
}
