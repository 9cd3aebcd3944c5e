//! Writes a set of files into a volume directory atomically, the way the kubelet's AtomicWriter does:
//! the files go into a fresh hidden directory `..<timestamp>`, the `..data` symlink is switched to it
//! with one rename, and the names containers see are symlinks through `..data`. A reader sees the
//! old set or the new set, never a mix, and an update shows up in running containers.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::plan::FileContent;

/// The symlink to the current payload directory.
pub const DATA_LINK: &str = "..data";
const DATA_LINK_TMP: &str = "..data_tmp";

/// Makes `dir` hold exactly `files`. Returns whether anything changed on disk.
pub fn write_atomically(dir: &Path, files: &BTreeMap<String, FileContent>) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let current = std::fs::read_link(dir.join(DATA_LINK)).ok();
    if let Some(current) = &current {
        if payload_matches(&dir.join(current), files)? {
            return Ok(false);
        }
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let mut name = format!("..{nanos}");
    while dir.join(&name).exists() {
        name.push('_');
    }
    let payload = dir.join(&name);
    std::fs::create_dir(&payload)?;
    std::fs::set_permissions(&payload, std::fs::Permissions::from_mode(0o755))?;
    for (path, content) in files {
        let target = payload.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &content.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(content.mode))?;
    }
    let tmp = dir.join(DATA_LINK_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&name, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_LINK))?;
    let visible: BTreeSet<String> = files.keys().filter_map(|p| p.split('/').next()).map(str::to_string).collect();
    for top in &visible {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_LINK).join(top), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if entry_name.starts_with("..") {
            if entry_name != DATA_LINK && entry_name != name && entry.path().is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            }
        } else if !visible.contains(&entry_name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(true)
}

/// Whether the payload directory holds exactly `files`, with their modes.
fn payload_matches(payload: &Path, files: &BTreeMap<String, FileContent>) -> io::Result<bool> {
    let mut found = BTreeSet::new();
    if !collect_files(payload, payload, &mut found)? {
        return Ok(false);
    }
    if found.len() != files.len() || !files.keys().all(|k| found.contains(k)) {
        return Ok(false);
    }
    for (path, content) in files {
        let target = payload.join(path);
        let mode = std::fs::metadata(&target)?.permissions().mode() & 0o777;
        if mode != content.mode || std::fs::read(&target)? != content.data {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Relative paths of the regular files under `dir`; false when `dir` is missing.
fn collect_files(base: &Path, dir: &Path, out: &mut BTreeSet<String>) -> io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(base, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.insert(rel.to_string_lossy().into_owned());
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str, u32)]) -> BTreeMap<String, FileContent> {
        pairs.iter().map(|(p, d, m)| (p.to_string(), FileContent { data: d.as_bytes().to_vec(), mode: *m })).collect()
    }

    fn read(dir: &Path, p: &str) -> String {
        std::fs::read_to_string(dir.join(p)).expect("read through the visible link")
    }

    #[test]
    fn files_appear_through_links_and_updates_swap_the_whole_set() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("vol");
        assert!(write_atomically(&dir, &files(&[("a", "1", 0o644), ("conf/b", "2", 0o600)])).expect("write"));
        assert_eq!(read(&dir, "a"), "1");
        assert_eq!(read(&dir, "conf/b"), "2");
        assert!(std::fs::symlink_metadata(dir.join("a")).expect("a").file_type().is_symlink());
        let mode = std::fs::metadata(dir.join("conf/b")).expect("b").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read_link(dir.join(DATA_LINK)).expect("data link");

        assert!(!write_atomically(&dir, &files(&[("a", "1", 0o644), ("conf/b", "2", 0o600)])).expect("same"));
        assert_eq!(std::fs::read_link(dir.join(DATA_LINK)).expect("link"), first, "unchanged payload kept");

        assert!(write_atomically(&dir, &files(&[("a", "one", 0o644), ("c", "3", 0o644)])).expect("update"));
        assert_eq!(read(&dir, "a"), "one");
        assert_eq!(read(&dir, "c"), "3");
        assert!(std::fs::symlink_metadata(dir.join("conf")).is_err(), "a dropped key disappears");
        assert!(!dir.join(&first).exists(), "the old payload directory is removed");
        let hidden: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".."))
            .collect();
        assert_eq!(hidden.len(), 2, "only ..data and one payload directory: {hidden:?}");
    }

    #[test]
    fn a_mode_change_alone_is_an_update() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_atomically(tmp.path(), &files(&[("a", "1", 0o644)])).expect("write");
        assert!(write_atomically(tmp.path(), &files(&[("a", "1", 0o400)])).expect("chmod"));
        let mode = std::fs::metadata(tmp.path().join("a")).expect("a").permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
    }
}
