//! The test suite's machine-wide locks, taken so that `podstart-bench` never measures while an
//! end-to-end test runs containers or a cluster on the same cores (and no such test starts while it
//! measures). The files and their order are those of `tests/src/lock.rs`: an exclusive `flock` on
//! `$TMPDIR/gantry-tests-runtime.lock`, then on `$TMPDIR/gantry-tests-cluster.lock`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The node-runtime lock (taken first).
pub const RUNTIME_LOCK_FILE: &str = "gantry-tests-runtime.lock";
/// The cluster lock (taken second).
pub const CLUSTER_LOCK_FILE: &str = "gantry-tests-cluster.lock";
/// How often a held lock is tried again.
const RETRY: Duration = Duration::from_millis(200);

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {path}")]
    Flock {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("lock {path} still held by another process after {waited:?} (a test running?)")]
    Timeout { path: PathBuf, waited: Duration },
}

/// Exclusive locks, released on drop.
#[derive(Debug)]
pub struct TestLocks {
    _held: Vec<Flock<File>>,
}

impl TestLocks {
    /// Takes the runtime lock and then the cluster lock under `dir`, each within `timeout`;
    /// `waiting` is called once if a lock is busy.
    pub async fn acquire(dir: &Path, timeout: Duration, mut waiting: impl FnMut(&Path)) -> Result<Self, LockError> {
        let mut held = Vec::new();
        for name in [RUNTIME_LOCK_FILE, CLUSTER_LOCK_FILE] {
            held.push(acquire_one(&dir.join(name), timeout, &mut waiting).await?);
        }
        Ok(Self { _held: held })
    }
}

async fn acquire_one(
    path: &Path,
    timeout: Duration,
    waiting: &mut impl FnMut(&Path),
) -> Result<Flock<File>, LockError> {
    let start = Instant::now();
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| LockError::Open { path: path.to_path_buf(), source })?;
    let mut told = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, Errno::EWOULDBLOCK)) | Err((f, Errno::EINTR)) => file = f,
            Err((_, source)) => return Err(LockError::Flock { path: path.to_path_buf(), source }),
        }
        if start.elapsed() >= timeout {
            return Err(LockError::Timeout { path: path.to_path_buf(), waited: start.elapsed() });
        }
        if !told {
            waiting(path);
            told = true;
        }
        tokio::time::sleep(RETRY).await;
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
