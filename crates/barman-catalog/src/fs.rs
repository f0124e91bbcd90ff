//! Durable file-system helpers: atomic writes, directory fsync, modes.
//!
//! Every catalog write goes through these helpers, thin wrappers of
//! `barman-fs` (the one durable-write helper of the workspace), so the
//! durability rules of DESIGN.md §4 hold in one place: a file is fully
//! written and fsync'ed under a new temporary name in the same directory
//! (created exclusively, never through a link), renamed over the target,
//! and the directory is fsync'ed so the rename itself survives a crash.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::{Error, Result};

pub use barman_fs::{DIR_MODE, FILE_MODE, parent_dir};

/// Writes `bytes` to `path` atomically ([`barman_fs::write_atomic`]: a new
/// temporary file, fsync, rename, fsync of the directory); the file gets
/// exactly `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    Ok(barman_fs::write_atomic(path, bytes, mode)?)
}

/// Writes `path` atomically with the content produced by `fill`
/// ([`barman_fs::write_atomic_with`]); nothing is left if anything fails.
pub fn write_atomic_with<F>(path: &Path, mode: u32, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    Ok(barman_fs::write_atomic_with(path, mode, fill)?)
}

/// Fsyncs a directory so that renames and creations inside it are durable.
pub fn fsync_dir(path: &Path) -> Result<()> {
    Ok(barman_fs::fsync_dir(path)?)
}

/// Creates `path` and any missing parents with mode 0700, fsync-ing the parent
/// of every directory created. Existing directories are left as they are.
pub fn create_dir_secure(path: &Path) -> Result<()> {
    Ok(barman_fs::create_dir_secure(path)?)
}

/// Appends `line` to `path` (created 0600 if missing) and fsyncs the file.
///
/// Used for xlog.db: the caller holds the xlogdb lock. When the file is
/// created, its directory is fsync'ed too.
pub fn append_durable(path: &Path, line: &str) -> Result<()> {
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| Error::io("cannot open for append", path, e))?;
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io("cannot append to", path, e))?;
    file.sync_data()
        .map_err(|e| Error::io("cannot fsync", path, e))?;
    if !existed {
        fsync_dir(parent_dir(path))?;
    }
    Ok(())
}

/// Reads a file to a string, mapping errors with the path.
pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))
}

/// Reads a file to a string, `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// Removes a file, ignoring a missing one; fsyncs the directory if removed.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            fsync_dir(parent_dir(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot remove", path, e)),
    }
}
