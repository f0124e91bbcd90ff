//! File moves of the archive: temporary files, no-replace installs,
//! moving rejected files into `errors/`.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use barman_fs::{NoReplace, TempFile};

use crate::clock::Clock;
use crate::{Error, Result};
use barman_catalog::fs::{FILE_MODE, create_dir_secure, fsync_dir};

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

/// Whether archive-wal (and `rebuild-xlogdb`, `check`) skips `name` in a
/// WAL directory as a temporary file: one of barman-rs
/// ([`barman_fs::is_temp_name`], the name every writer uses) or any `*.tmp`
/// (Barman's rule, for other tools' temporaries).
pub fn is_skipped_temp(name: &str) -> bool {
    #[allow(clippy::case_sensitive_file_extension_comparisons)]
    let tmp = name.ends_with(".tmp");
    barman_fs::is_temp_name(name) || tmp
}

/// Removes a file if it exists (no fsync: used for temporaries).
pub fn remove_quietly(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// A new temporary file (mode 0600) for `dest`, in its directory
/// ([`barman_fs::TempFile`]: unique to this writer, created exclusively,
/// removed when dropped unless installed).
pub fn create_temp(dest: &Path) -> Result<TempFile> {
    Ok(TempFile::create(dest, FILE_MODE)?)
}

/// The parent directory of `path` (`.` when there is none).
pub fn parent(path: &Path) -> &Path {
    barman_fs::parent_dir(path)
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
        match barman_fs::rename_durable(src, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                // Another file system: copy durably, then remove.
                copy_durable(src, &dest)?;
                std::fs::remove_file(src).map_err(|e| Error::io("cannot remove", src, e))?;
                fsync_dir(errors_dir)?;
                fsync_dir(parent(src))?;
            }
            Err(e) => {
                let (_, _, source) = e.into_parts();
                return Err(Error::io("cannot move to errors directory", src, source));
            }
        }
        return Ok(dest);
    }
}

/// Copies `src` to a new file `dest` (0600), durably (never replacing
/// an existing `dest`).
pub fn copy_durable(src: &Path, dest: &Path) -> Result<()> {
    let mut input = File::open(src).map_err(|e| Error::io("cannot open", src, e))?;
    let mut temp = create_temp(dest)?;
    io::copy(&mut input, &mut temp).map_err(|e| Error::io("cannot copy to", temp.path(), e))?;
    match temp.commit_no_replace()? {
        NoReplace::Installed => Ok(()),
        NoReplace::Exists(_) => Err(Error::io(
            "cannot create",
            dest,
            io::ErrorKind::AlreadyExists.into(),
        )),
    }
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
