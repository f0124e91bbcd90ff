//! Durable file-system helpers: atomic writes, directory fsync, modes.
//!
//! Every catalog write goes through these helpers so the durability rules of
//! DESIGN.md §4 hold in one place: a file is fully written and fsync'ed under
//! a temporary name in the same directory, renamed over the target, and the
//! directory is fsync'ed so the rename itself survives a crash.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Default mode of catalog files: read/write for the owner only.
pub const FILE_MODE: u32 = 0o600;
/// Default mode of catalog directories: owner only.
pub const DIR_MODE: u32 = 0o700;

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
///
/// The file gets exactly `mode` (not filtered by the umask).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, mode, |w| w.write_all(bytes))
}

/// Writes `path` atomically with the content produced by `fill`.
///
/// `fill` writes into a buffered temporary file in the same directory
/// (`.<name>.<pid>.<nanos>.tmp`, ignored by Barman's listings); the temporary
/// file is removed if anything fails.
pub fn write_atomic_with<F>(path: &Path, mode: u32, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let dir = parent_dir(path);
    let (tmp, file) = create_temp(path, mode)?;
    let result = fill_and_sync(&tmp, file, mode, fill).and_then(|()| {
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::io("cannot rename temporary file to", path, e))
    });
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    fsync_dir(&dir)
}

fn fill_and_sync<F>(tmp: &Path, file: File, mode: u32, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| Error::io("cannot set permissions of", tmp, e))?;
    let mut writer = io::BufWriter::new(file);
    fill(&mut writer).map_err(|e| Error::io("cannot write", tmp, e))?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::io("cannot write", tmp, e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io("cannot fsync", tmp, e))
}

fn create_temp(path: &Path, mode: u32) -> Result<(PathBuf, File)> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let pid = std::process::id();
    let mut attempt: u32 = 0;
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(".{name}.{pid}.{nanos}.{attempt}.tmp"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(Error::io("cannot create temporary file", tmp, e)),
        }
    }
}

/// The directory containing `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Fsyncs a directory so that renames and creations inside it are durable.
pub fn fsync_dir(path: &Path) -> Result<()> {
    let dir = File::open(path).map_err(|e| Error::io("cannot open directory", path, e))?;
    dir.sync_all()
        .map_err(|e| Error::io("cannot fsync directory", path, e))
}

/// Creates `path` and any missing parents with mode 0700, fsync-ing the parent
/// of every directory created. Existing directories are left as they are.
pub fn create_dir_secure(path: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cursor = Some(path);
    while let Some(p) = cursor {
        if p.as_os_str().is_empty() || p.is_dir() {
            break;
        }
        missing.push(p);
        cursor = p.parent();
    }
    for dir in missing.into_iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(dir) {
            Ok(()) => {
                // The umask may have removed bits we asked for; 0700 has none it
                // would normally remove, but make the mode exact anyway.
                std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
                    .map_err(|e| Error::io("cannot set permissions of", dir, e))?;
                fsync_dir(&parent_dir(dir))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(Error::io("cannot create directory", dir, e)),
        }
    }
    Ok(())
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
        fsync_dir(&parent_dir(path))?;
    }
    Ok(())
}

/// Reads a file to a string, mapping errors with the path.
pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))
}

/// Reads a file to a string, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
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
            fsync_dir(&parent_dir(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot remove", path, e)),
    }
}
