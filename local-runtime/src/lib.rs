//! A node's container runtime for local use: a private containerd configured as RUNTIME-NOTES
//! measured ([`containerd`]), its CNI bridge network ([`network`]) and container images built
//! without a registry and imported into it ([`images`]), and the machine-wide locks that keep tests and
//! benchmarks from running such runtimes at once ([`lock`]).
//!
//! Shared by the end-to-end tests, the benchmarks and `cargo xtask up`, so all three drive the
//! runtime the same way. Knows nothing about Gantry's API or agent; needs root, containerd, runc,
//! the CNI plugins, umoci and busybox-static.

pub mod containerd;
pub mod images;
pub mod lock;
pub mod network;

pub use containerd::{ContainerdError, PrivateContainerd};
pub use images::{ImageError, BUSYBOX_IMAGE, PAUSE_IMAGE};
pub use network::CniNetwork;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The last `lines` lines of a log file (read from its last 64 KiB), or a note that it is missing.
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
