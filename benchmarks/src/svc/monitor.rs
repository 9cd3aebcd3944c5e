//! When a rule reaches the kernel: `nft monitor` prints every committed change of the ruleset (it
//! flushes after each event), and a reader thread stamps each line as it arrives. The stamp trails
//! the commit by the pipe and a thread wake-up, well under a millisecond.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
#[error("starting `nft monitor`: {0}")]
pub struct MonitorError(#[from] std::io::Error);

/// A running `nft monitor` (killed on drop).
pub struct RuleMonitor {
    child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl RuleMonitor {
    pub fn start() -> Result<Self, MonitorError> {
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
        Ok(Self { child, lines })
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
