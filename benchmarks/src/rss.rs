//! Memory figures of a running process from `/proc/<pid>/status`.
//!
//! `VmRSS` is the current resident set size, `VmHWM` its high-water mark
//! (peak RSS since the process started). Both are reported by the kernel in
//! KiB.

use std::path::PathBuf;

use serde::Serialize;

/// Errors while reading memory figures.
#[derive(Debug, thiserror::Error)]
pub enum RssError {
    /// The status file could not be read (process gone?).
    #[error("failed to read {path}")]
    Read {
        /// Status file path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A required field is missing or malformed.
    #[error("missing or malformed {field} line in /proc status")]
    Field {
        /// Field name, e.g. `VmHWM`.
        field: &'static str,
    },
}

/// Resident memory of one process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryStatus {
    /// Current resident set size (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub hwm_kib: u64,
}

impl MemoryStatus {
    /// Reads `/proc/<pid>/status`.
    pub fn read(pid: u32) -> Result<Self, RssError> {
        let path = PathBuf::from(format!("/proc/{pid}/status"));
        let text = std::fs::read_to_string(&path).map_err(|source| RssError::Read { path: path.clone(), source })?;
        Self::parse(&text)
    }

    /// Parses the text of a `/proc/<pid>/status` file.
    pub fn parse(text: &str) -> Result<Self, RssError> {
        Ok(Self { rss_kib: field_kib(text, "VmRSS")?, hwm_kib: field_kib(text, "VmHWM")? })
    }
}

/// Value of a `Name:   1234 kB` line.
fn field_kib(text: &str, field: &'static str) -> Result<u64, RssError> {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            let mut parts = rest.split_whitespace();
            let value = parts.next()?.parse::<u64>().ok()?;
            matches!(parts.next(), Some("kB")).then_some(value)
        })
        .ok_or(RssError::Field { field })
}

/// KiB to MiB for display.
pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Name:\tetcd\nVmPeak:\t10863928 kB\nVmSize:\t10863928 kB\n\
VmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nRssAnon:\t   30000 kB\nThreads:\t12\n";

    #[test]
    fn parses_rss_and_hwm() -> Result<(), RssError> {
        let m = MemoryStatus::parse(SAMPLE)?;
        assert_eq!(m, MemoryStatus { rss_kib: 40960, hwm_kib: 51200 });
        assert!((kib_to_mib(m.rss_kib) - 40.0).abs() < f64::EPSILON);
        Ok(())
    }

    #[test]
    fn missing_field_is_an_error() {
        let err = MemoryStatus::parse("Name:\tx\nVmRSS:\t1 kB\n");
        assert!(matches!(err, Err(RssError::Field { field: "VmHWM" })));
        let err = MemoryStatus::parse("VmHWM:\tlots kB\nVmRSS:\t1 kB\n");
        assert!(matches!(err, Err(RssError::Field { field: "VmHWM" })));
    }

    #[test]
    fn reads_own_process() -> Result<(), RssError> {
        let m = MemoryStatus::read(std::process::id())?;
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib);
        Ok(())
    }
}
