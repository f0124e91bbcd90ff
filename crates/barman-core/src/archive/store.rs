//! File moves of the archive: temporary files, no-replace installs,
//! moving rejected files into `errors/`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::clock::Clock;
use crate::fs::{FILE_MODE, create_dir_secure, fsync_dir};
use crate::{Error, Result};

/// Why a file went to `errors/` (the suffix of its new name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Same name as an archived file, different content.
    Duplicate,
    /// Not a WAL file, or an invalid one (truncated, foreign, corrupt).
    Unknown,
}

impl ErrorKind {
    /// The suffix Barman uses.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Unknown => "unknown",
        }
    }
}

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Creates a new hidden temporary file `.<name>.<pid>.<n>.tmp` in `dir`
/// (mode 0600). Names ending in `.tmp` are skipped by archive-wal, ours and
/// Barman's.
pub fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File)> {
    let pid = std::process::id();
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}.{pid}.{n}.tmp"));
        match OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("cannot create temporary file", path, e)),
        }
    }
}

/// Whether `name` is a temporary file (ours or another tool's).
pub fn is_temp_name(name: &str) -> bool {
    // Barman's rule is exactly `*.tmp`.
    #[allow(clippy::case_sensitive_file_extension_comparisons)]
    name.ends_with(".tmp")
}

/// Removes a file if it exists (no fsync: used for temporaries).
pub fn remove_quietly(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Outcome of [`install_no_replace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// The file is in place.
    Done,
    /// The destination already exists; nothing was changed.
    Exists,
}

/// Puts the durable temporary file `tmp` at `dest` unless `dest` exists
/// (hard link + unlink: never replaces), then fsyncs `dest`'s directory.
pub fn install_no_replace(tmp: &Path, dest: &Path) -> Result<Install> {
    match std::fs::hard_link(tmp, dest) {
        Ok(()) => {
            remove_quietly(tmp);
            fsync_dir(parent(dest))?;
            Ok(Install::Done)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Install::Exists),
        Err(e) => Err(Error::io("cannot link into place", dest, e)),
    }
}

/// The parent directory of `path` (`.` when there is none).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Moves `src` (named `name`) into `errors_dir` as
/// `<name>.<UTC yyyymmddTHHMMSSZ>.<kind>` (a counter is added rather than
/// replacing an existing file), fsyncing both directories. Returns the new path.
pub fn move_to_errors(
    src: &Path,
    name: &str,
    errors_dir: &Path,
    kind: ErrorKind,
    clock: &dyn Clock,
) -> Result<PathBuf> {
    create_dir_secure(errors_dir)?;
    let stamp = clock.now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut n = 0u32;
    loop {
        let file = if n == 0 {
            format!("{name}.{stamp}.{}", kind.suffix())
        } else {
            format!("{name}.{stamp}_{n}.{}", kind.suffix())
        };
        let dest = errors_dir.join(file);
        if dest.symlink_metadata().is_ok() {
            n += 1;
            continue;
        }
        match std::fs::rename(src, &dest) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(18) => {
                // EXDEV: another file system. Copy durably, then remove.
                copy_durable(src, &dest)?;
                std::fs::remove_file(src).map_err(|e| Error::io("cannot remove", src, e))?;
            }
            Err(e) => return Err(Error::io("cannot move to errors directory", src, e)),
        }
        fsync_dir(errors_dir)?;
        fsync_dir(parent(src))?;
        return Ok(dest);
    }
}

/// Copies `src` to a new file `dest` (0600) and fsyncs it.
pub fn copy_durable(src: &Path, dest: &Path) -> Result<()> {
    let mut input = File::open(src).map_err(|e| Error::io("cannot open", src, e))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(dest)
        .map_err(|e| Error::io("cannot create", dest, e))?;
    io::copy(&mut input, &mut out).map_err(|e| Error::io("cannot copy to", dest, e))?;
    out.sync_all()
        .map_err(|e| Error::io("cannot fsync", dest, e))?;
    Ok(())
}

/// Makes a file's mode exactly `mode`.
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("cannot set permissions of", path, e))
}

/// Modification time of `meta` as float seconds since the epoch.
pub fn mtime_secs(meta: &std::fs::Metadata) -> f64 {
    use std::os::unix::fs::MetadataExt;
    #[allow(clippy::cast_precision_loss)]
    let t = meta.mtime() as f64 + meta.mtime_nsec() as f64 / 1e9;
    t
}
