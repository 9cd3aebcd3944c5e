//! Facts about the machine the agent runs on (CPUs, memory, kernel, OS image, architecture), read from
//! `/proc` and `/etc/os-release`. Parsers are pure; only [`MachineInfo::read`] touches the filesystem.

use std::path::Path;

use crate::node::pressure::Readings;

/// What the node reports about its machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub architecture: String,
    pub machine_id: String,
    pub hostname: String,
}

impl MachineInfo {
    /// Reads the current machine (missing files give conservative defaults, never an error).
    pub fn read() -> Self {
        let read = |p: &str| std::fs::read_to_string(Path::new(p)).unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1),
            memory_bytes: mem_total_bytes(&read("/proc/meminfo")).unwrap_or(0),
            kernel_version: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os_image: os_image(&read("/etc/os-release")),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            machine_id: read("/etc/machine-id").trim().to_string(),
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        }
    }
}

/// What the pressure signals need, read now: memory from `/proc/meminfo`, the filesystem holding
/// `fs_path`, and the pid limit and the number of tasks (`/proc/loadavg`). Unreadable values are 0,
/// which [`crate::node::pressure::pressure`] treats as unknown.
pub fn pressure_readings(fs_path: &Path) -> Readings {
    let read = |p: &str| std::fs::read_to_string(Path::new(p)).unwrap_or_default();
    let meminfo = read("/proc/meminfo");
    let (fs_total_bytes, fs_available_bytes) = nix::sys::statvfs::statvfs(fs_path)
        .map(|s| {
            let frag = s.fragment_size();
            (s.blocks() * frag, s.blocks_available() * frag)
        })
        .unwrap_or((0, 0));
    Readings {
        memory_total_bytes: mem_total_bytes(&meminfo).unwrap_or(0),
        memory_available_bytes: meminfo_bytes(&meminfo, "MemAvailable:").unwrap_or(0),
        fs_total_bytes,
        fs_available_bytes,
        pid_max: read("/proc/sys/kernel/pid_max").trim().parse().unwrap_or(0),
        pids_in_use: tasks_in_use(&read("/proc/loadavg")).unwrap_or(0),
    }
}

/// The total number of tasks in `/proc/loadavg` (`0.00 0.01 0.05 1/123 456` → 123).
pub fn tasks_in_use(loadavg: &str) -> Option<u64> {
    loadavg.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok()
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    meminfo_bytes(meminfo, "MemTotal:")
}

/// A `/proc/meminfo` field (`MemAvailable:`), in bytes.
pub fn meminfo_bytes(meminfo: &str, field: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with(field))?;
    let mut parts = line[field.len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

/// `PRETTY_NAME` of `/etc/os-release` (unquoted), or `Linux`.
pub fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

/// Kubernetes (Go) architecture names for Rust's.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let meminfo = "MemTotal:        4026532 kB\nMemFree:  100 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(4026532 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: x kB\n"), None);
    }

    #[test]
    fn pressure_inputs_are_parsed() {
        assert_eq!(meminfo_bytes("MemTotal: 10 kB\nMemAvailable:   4 kB\n", "MemAvailable:"), Some(4096));
        assert_eq!(tasks_in_use("0.52 0.58 0.59 3/812 12345\n"), Some(812));
        assert_eq!(tasks_in_use("garbage"), None);
        let now = pressure_readings(Path::new("/"));
        assert!(now.memory_available_bytes > 0 && now.memory_available_bytes <= now.memory_total_bytes);
        assert!(now.fs_total_bytes > 0 && now.fs_available_bytes <= now.fs_total_bytes);
        assert!(now.pid_max > 0 && now.pids_in_use > 0);
    }

    #[test]
    fn os_image_is_the_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(os_image(text), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os_image(""), "Linux");
    }

    #[test]
    fn architectures_use_kubernetes_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
    }

    #[test]
    fn this_machine_has_cpus_and_memory() {
        let info = MachineInfo::read();
        assert!(info.cpus >= 1);
        assert!(info.memory_bytes > 0);
    }
}
