//! When a rule reaches the kernel: `nft monitor` prints every committed change of the ruleset (it
//! flushes after each event), and a reader thread stamps each line as it arrives. The stamp trails
//! the commit by the pipe and a thread wake-up, well under a millisecond. `nft monitor` says nothing
//! when it has subscribed, so [`RuleMonitor::start`] commits a probe table until the monitor prints
//! it: a change made before that could otherwise go unseen.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("starting `nft monitor`: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("`nft monitor` printed none of the probe table's changes within {0:?}")]
    NotListening(Duration),
}

/// The table committed (added, then deleted) until the monitor shows it.
const PROBE_TABLE: &str = "svc-bench-monitor-probe";
/// How long the monitor may take to subscribe.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `nft monitor` (killed on drop).
pub struct RuleMonitor {
    child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl RuleMonitor {
    /// Starts `nft monitor` and returns once it prints committed changes.
    pub async fn start() -> Result<Self, MonitorError> {
        let mut child = Command::new("nft").arg("monitor").stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        let mut monitor = Self { child, lines };
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while Instant::now() < deadline {
            for verb in ["add", "delete"] {
                tokio::process::Command::new("nft").args([verb, "table", "ip", PROBE_TABLE]).status().await?;
            }
            if monitor.wait_for(PROBE_TABLE, Duration::from_millis(200)).await.is_some() {
                monitor.drain();
                return Ok(monitor);
            }
        }
        Err(MonitorError::NotListening(LISTEN_TIMEOUT))
    }

    /// Drops the lines seen so far.
    pub fn drain(&mut self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// When the first line containing `needle` arrived (within `timeout`).
    pub async fn wait_for(&mut self, needle: &str, timeout: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (at, line) = tokio::time::timeout_at(deadline, self.lines.recv()).await.ok()??;
            if line.contains(needle) {
                return Some(at);
            }
        }
    }
}

impl Drop for RuleMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
