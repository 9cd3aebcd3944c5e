//! A benchmarked server process that is always stopped.
//!
//! [`ManagedProcess`] spawns a child in its own process group (so a Ctrl-C in
//! the terminal reaches only `store-bench`, which then stops the children in
//! order), sends its stdout and stderr to a log file, and on [`Drop`] sends
//! SIGTERM, waits for a bounded grace period and finally sends SIGKILL.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Grace period used by [`Drop`] when the owner did not stop the process.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Poll interval while waiting for a process to exit.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Errors while running a child process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The log file could not be created.
    #[error("failed to create log file {path}")]
    Log {
        /// Log file path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("failed to start {name} ({program})")]
    Spawn {
        /// Member name.
        name: String,
        /// Program path.
        program: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Querying or waiting for the child failed.
    #[error("failed to wait for {name} (pid {pid})")]
    Wait {
        /// Member name.
        name: String,
        /// Process id.
        pid: u32,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Sending a signal failed.
    #[error("failed to send {signal} to {name} (pid {pid})")]
    Signal {
        /// Member name.
        name: String,
        /// Process id.
        pid: u32,
        /// Signal name.
        signal: &'static str,
        /// Underlying error.
        #[source]
        source: nix::errno::Errno,
    },
}

/// How a stopped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// It exited by itself (before or after SIGTERM).
    Exited(ExitStatus),
    /// It ignored SIGTERM for the whole grace period and was killed.
    Killed,
}

/// A child process owned by the benchmark.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    terminated: bool,
    reaped: bool,
}

impl ManagedProcess {
    /// Spawns `program args...` with `envs` set, stdin closed, stdout and
    /// stderr appended to `log_path`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log_path: &Path,
    ) -> Result<Self, ProcessError> {
        let log =
            File::create(log_path).map_err(|source| ProcessError::Log { path: log_path.to_path_buf(), source })?;
        let log_err = log.try_clone().map_err(|source| ProcessError::Log { path: log_path.to_path_buf(), source })?;
        let child = Command::new(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .spawn()
            .map_err(|source| ProcessError::Spawn { name: name.to_string(), program: program.to_path_buf(), source })?;
        Ok(Self { name: name.to_string(), child, log_path: log_path.to_path_buf(), terminated: false, reaped: false })
    }

    /// Member name (e.g. `etcd-1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Operating-system process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Returns the exit status if the process has already exited.
    pub fn try_exit_status(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        let status = self.child.try_wait().map_err(|source| ProcessError::Wait {
            name: self.name.clone(),
            pid: self.pid(),
            source,
        })?;
        if status.is_some() {
            self.reaped = true;
        }
        Ok(status)
    }

    /// The last `max_lines` lines of the log (best effort, at most 64 KiB read).
    pub fn log_tail(&self, max_lines: usize) -> String {
        const MAX_BYTES: u64 = 64 * 1024;
        let Ok(mut file) = File::open(&self.log_path) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES))).is_err() {
            return String::new();
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return String::new();
        }
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }

    /// Sends SIGTERM to the process group once (no-op if already sent or the
    /// process is gone).
    pub fn terminate(&mut self) -> Result<(), ProcessError> {
        if self.terminated || self.reaped || self.try_exit_status()?.is_some() {
            return Ok(());
        }
        self.terminated = true;
        self.signal(Signal::SIGTERM, "SIGTERM")
    }

    /// Waits until `deadline` for the process to exit, then kills it.
    pub fn wait_or_kill(&mut self, deadline: Instant) -> Result<StopOutcome, ProcessError> {
        loop {
            if let Some(status) = self.try_exit_status()? {
                return Ok(StopOutcome::Exited(status));
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        // The whole process group: a wrapper script's children die too.
        self.signal(Signal::SIGKILL, "SIGKILL")?;
        self.child.wait().map_err(|source| ProcessError::Wait { name: self.name.clone(), pid: self.pid(), source })?;
        self.reaped = true;
        Ok(StopOutcome::Killed)
    }

    /// SIGTERM, then SIGKILL if the process is still alive after `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> Result<StopOutcome, ProcessError> {
        self.terminate()?;
        self.wait_or_kill(Instant::now() + timeout)
    }

    fn signal(&self, signal: Signal, signal_name: &'static str) -> Result<(), ProcessError> {
        let raw = i32::try_from(self.pid()).map_err(|_| ProcessError::Signal {
            name: self.name.clone(),
            pid: self.pid(),
            signal: signal_name,
            source: nix::errno::Errno::ESRCH,
        })?;
        // The child leads its own process group (`process_group(0)`), so the
        // group id equals its pid.
        match killpg(Pid::from_raw(raw), signal) {
            // Already exited but not yet reaped: nothing to do.
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(source) => {
                Err(ProcessError::Signal { name: self.name.clone(), pid: self.pid(), signal: signal_name, source })
            }
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        if let Err(err) = self.stop(DEFAULT_STOP_TIMEOUT) {
            eprintln!("warning: failed to stop {}: {err}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_a_sleeping_child_with_sigterm() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut p = ManagedProcess::spawn(
            "sleeper",
            Path::new("sleep"),
            &["30".to_string()],
            &[],
            &dir.path().join("sleeper.log"),
        )?;
        assert!(p.try_exit_status()?.is_none());
        let outcome = p.stop(Duration::from_secs(5))?;
        assert!(matches!(outcome, StopOutcome::Exited(_)));
        Ok(())
    }

    #[test]
    fn kills_a_child_that_ignores_sigterm() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut p = ManagedProcess::spawn(
            "stubborn",
            Path::new("sh"),
            &["-c".to_string(), "trap '' TERM; echo started; sleep 30".to_string()],
            &[],
            &dir.path().join("stubborn.log"),
        )?;
        // Give the shell time to install the trap.
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.log_tail(1).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(p.log_tail(5), "started");
        let outcome = p.stop(Duration::from_millis(300))?;
        assert_eq!(outcome, StopOutcome::Killed);
        Ok(())
    }
}
