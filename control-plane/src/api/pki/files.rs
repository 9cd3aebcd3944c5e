//! The PKI directory's files: reads that tolerate absence, the directory lock replicas share, and
//! atomic (fsynced, renamed) writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{PkiError, KEY_MODE, LOCK_FILE};

/// Reads a file, `None` when it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Read { path: path.to_owned(), source }),
    }
}

/// Creates `dir/.lock` if needed and locks it exclusively (blocking); released when the file is dropped.
pub(super) fn lock_dir_exclusive(dir: &Path) -> Result<File, PkiError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(KEY_MODE)
        .open(&path)
        .map_err(|source| PkiError::Lock { path: path.clone(), source })?;
    file.lock().map_err(|source| PkiError::Lock { path, source })?;
    Ok(file)
}

/// Locks `dir/.lock` shared (blocking) so no `ensure_pki` is half-way through writing the CA. Opens it
/// read-only, so a reader without write access to `dir` works; without a lock file (a PKI directory no
/// replica has set up) there is nothing to wait for.
pub(super) fn lock_dir_shared(dir: &Path) -> Result<Option<File>, PkiError> {
    let path = dir.join(LOCK_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PkiError::Lock { path, source }),
    };
    file.lock_shared().map_err(|source| PkiError::Lock { path, source })?;
    Ok(Some(file))
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory (created with `mode`),
/// fsync, rename over `path`, fsync of the directory.
pub(super) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let error = |source| PkiError::Write { path: path.to_owned(), source };
    let dir = path.parent().ok_or_else(|| error(io::Error::other("no parent directory")))?;
    let name = path.file_name().ok_or_else(|| error(io::Error::other("no file name")))?;
    let tmp =
        dir.join(format!(".{}.tmp-{}-{:016x}", name.to_string_lossy(), std::process::id(), rand::random::<u64>()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(error)
}
