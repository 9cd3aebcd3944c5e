//! The host side of volumes: tmpfs mounts for memory-backed volumes (and unmounting everything under
//! a pod's directory), and the checks and creation that `hostPath.type` asks for. The only module of
//! the agent that calls mount(2).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::plan::HostPathType;

/// Mount points listed in a `/proc/self/mountinfo` text (field 5, octal escapes decoded).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|escaped| PathBuf::from(unescape(escaped)))
        .collect()
}

/// Decodes the `\040`-style escapes mountinfo uses for spaces, tabs, newlines and backslashes.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let code = bytes[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(code as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn current_mount_points() -> Vec<PathBuf> {
    mount_points(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// Whether `dir` is a mount point.
pub fn is_mount_point(dir: &Path) -> bool {
    current_mount_points().iter().any(|m| m == dir)
}

/// Mounts a tmpfs on `dir` (created if missing) unless one is there; `size` bounds it in bytes.
pub fn mount_tmpfs(dir: &Path, size: Option<u64>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut options = "mode=0777".to_string();
    if let Some(size) = size.filter(|s| *s > 0) {
        options.push_str(&format!(",size={size}"));
    }
    mount(Some("tmpfs"), dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(options.as_str()))
        .map_err(io::Error::from)
}

/// Unmounts every mount point at or under `base`, deepest first (lazily, so a mount still held by a
/// dying process does not block removal). Returns what could not be unmounted.
pub fn unmount_under(base: &Path) -> Vec<(PathBuf, io::Error)> {
    let mut under: Vec<PathBuf> = current_mount_points().into_iter().filter(|m| m.starts_with(base)).collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    under.dedup();
    under.into_iter().filter_map(|m| umount2(&m, MntFlags::MNT_DETACH).err().map(|e| (m, io::Error::from(e)))).collect()
}

/// Checks (and for the `...OrCreate` types creates) a host path as its type requires.
pub fn ensure_host_path(path: &Path, kind: HostPathType) -> Result<(), String> {
    let meta = std::fs::metadata(path);
    let missing = || format!("hostPath type check failed: {} does not exist", path.display());
    let is = |want: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(format!("hostPath type check failed: {} is not a {want}", path.display()))
        }
    };
    match kind {
        HostPathType::Any => Ok(()),
        HostPathType::DirectoryOrCreate => match meta {
            Ok(m) => is("directory", m.is_dir()),
            Err(_) => {
                std::fs::create_dir_all(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("setting the mode of {}: {e}", path.display()))
            }
        },
        HostPathType::FileOrCreate => match meta {
            Ok(m) => is("file", m.is_file()),
            Err(_) => {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
                file.map(|_| ()).map_err(|e| format!("creating {}: {e}", path.display()))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| format!("setting the mode of {}: {e}", path.display()))
            }
        },
        HostPathType::Directory => meta.map_err(|_| missing()).and_then(|m| is("directory", m.is_dir())),
        HostPathType::File => meta.map_err(|_| missing()).and_then(|m| is("file", m.is_file())),
        HostPathType::Socket => meta.map_err(|_| missing()).and_then(|m| is("socket", m.file_type().is_socket())),
        HostPathType::CharDevice => {
            meta.map_err(|_| missing()).and_then(|m| is("character device", m.file_type().is_char_device()))
        }
        HostPathType::BlockDevice => {
            meta.map_err(|_| missing()).and_then(|m| is("block device", m.file_type().is_block_device()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_mount_points_are_decoded() {
        let text = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    90 22 0:50 / /var/lib/g/pods/u/volumes/kubernetes.io~empty-dir/my\\040dir rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(text),
            [PathBuf::from("/proc"), PathBuf::from("/var/lib/g/pods/u/volumes/kubernetes.io~empty-dir/my dir")]
        );
    }

    #[test]
    fn host_path_types_are_checked_and_created() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("made/here");
        ensure_host_path(&dir, HostPathType::DirectoryOrCreate).expect("created");
        assert!(dir.is_dir());
        let file = tmp.path().join("f");
        ensure_host_path(&file, HostPathType::FileOrCreate).expect("created");
        assert!(file.is_file());
        ensure_host_path(&file, HostPathType::File).expect("a file");
        let err = ensure_host_path(&file, HostPathType::Directory).expect_err("not a dir");
        assert!(err.contains("is not a directory"), "{err}");
        let err = ensure_host_path(&tmp.path().join("absent"), HostPathType::File).expect_err("missing");
        assert!(err.contains("does not exist"), "{err}");
        assert!(ensure_host_path(&file, HostPathType::Socket).is_err());
        ensure_host_path(&tmp.path().join("absent"), HostPathType::Any).expect("no check");
    }

    #[test]
    fn tmpfs_mounts_and_unmounts_under_a_base() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pods/u/volumes/mem");
        if mount_tmpfs(&dir, Some(1 << 20)).is_err() {
            // Not allowed to mount here (not root): the end-to-end tests cover it as root.
            return;
        }
        assert!(is_mount_point(&dir));
        mount_tmpfs(&dir, Some(1 << 20)).expect("a second mount is a no-op");
        assert_eq!(current_mount_points().iter().filter(|m| **m == dir).count(), 1);
        assert!(unmount_under(&tmp.path().join("pods/u")).is_empty());
        assert!(!is_mount_point(&dir));
    }
}
