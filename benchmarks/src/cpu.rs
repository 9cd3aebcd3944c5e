//! CPU time used by a process (all its threads, user + system) from `/proc/<pid>/stat`, to tell how
//! a benchmark's 2 cores were shared between the servers, helpers and the load generator.

use std::path::PathBuf;
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, which Linux fixes at 100 on every
/// architecture it exports to user space).
const USER_HZ: u64 = 100;

/// Failures reading a process's CPU time.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected contents of {path}")]
    Parse { path: PathBuf },
}

/// `utime + stime` from the text of a `/proc/<pid>/stat` file.
pub fn parse_stat(text: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may contain spaces: count fields after it.
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// CPU time used so far by process `pid` (`None`: this process).
pub fn cpu_time(pid: Option<u32>) -> Result<Duration, CpuError> {
    let path = match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/stat")),
        None => PathBuf::from("/proc/self/stat"),
    };
    let text = std::fs::read_to_string(&path).map_err(|source| CpuError::Read { path: path.clone(), source })?;
    parse_stat(&text).ok_or(CpuError::Parse { path })
}

/// CPU time used so far by all of `pids` together (`None` if one cannot be read).
pub fn total_cpu_time(pids: &[u32]) -> Option<Duration> {
    pids.iter().map(|pid| cpu_time(Some(*pid)).ok()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_added() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 8 0 1234 0 0";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(3250)));
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(cpu_time(None).is_ok());
    }

    #[test]
    fn the_total_cpu_time_is_summed_and_unreadable_pids_give_none() {
        let me = std::process::id();
        let one = total_cpu_time(&[me]).expect("own cpu time");
        let two = total_cpu_time(&[me, me]).expect("own cpu time twice");
        assert!(two >= one * 2, "{two:?} < 2 x {one:?}");
        assert_eq!(total_cpu_time(&[me, u32::MAX]), None);
    }
}
