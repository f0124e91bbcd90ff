//! Durable, link-safe file writes: the one place in barman-rs where a file
//! is written under a temporary name and put into place.
//!
//! Every file barman-rs writes whole (catalog files, archived WALs, files
//! of a backup or of a restore, the WAL clients' spool; not the appends to
//! xlog.db nor receive-wal's growing `.partial` segment) is built as a
//! [`TempFile`] next to its target and committed:
//!
//! - the temporary file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`
//!   under a name unique to the writer, `.<name>.<pid>.<n>.barman-tmp`
//!   ([`is_temp_name`]), so neither a file nor a symbolic link planted at
//!   that name (in a restore destination, say) is ever opened, truncated or
//!   followed: a name that is taken is skipped for the next one;
//! - its mode is exactly the one asked for (the umask does not filter it);
//! - [`TempFile::commit`] fsyncs the file, renames it over the target (a
//!   rename replaces a link at the target, it never writes through it) and
//!   fsyncs the directory, so both the content and the name survive a crash;
//!   [`TempFile::commit_no_replace`] installs with a hard link instead and
//!   never replaces an existing target (the WAL archive's rule);
//! - a temporary file that is not committed is removed when it is dropped,
//!   on every error path and when a thread unwinds, so a failed or
//!   interrupted write leaves nothing (a killed process can still leave one:
//!   [`remove_stale_temps`] and [`is_temp_name`] find them).
//!
//! Two writers of the same target (two `put-wal` of one WAL, say) never
//! share a temporary file: the name carries the process id and a
//! per-process counter, and creation is exclusive.
//!
//! ```
//! use std::io::Write;
//! use barman_fs::{TempFile, is_temp_name, write_atomic};
//!
//! let dir = tempfile::tempdir()?;
//! let target = dir.path().join("backup.info");
//! write_atomic(&target, b"status=DONE\n", 0o600)?;
//!
//! let mut temp = TempFile::create(&target, 0o600)?;
//! let temp_name = temp.path().file_name().unwrap().to_str().unwrap().to_owned();
//! assert!(temp_name.starts_with(".backup.info.") && is_temp_name(&temp_name));
//! temp.write_all(b"status=FAILED\n")?;
//! drop(temp); // not committed: removed, the target is unchanged
//! assert_eq!(std::fs::read(&target)?, b"status=DONE\n");
//! assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The suffix of every temporary file: `.<name>.<pid>.<n>.barman-tmp`.
pub const TEMP_SUFFIX: &str = ".barman-tmp";

/// Mode of private files (catalog, logs, WAL archive): owner read/write.
pub const FILE_MODE: u32 = 0o600;

/// Mode of the directories [`create_dir_secure`] creates: owner only.
pub const DIR_MODE: u32 = 0o700;

/// Longest part of the target's name kept in a temporary name, so that the
/// temporary name stays within `NAME_MAX` (255 bytes).
const MAX_NAME_IN_TEMP: usize = 200;

/// Names tried before creation gives up (each taken name is skipped).
const MAX_ATTEMPTS: u32 = 1000;

/// The per-process counter of temporary names.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file-system operation that failed, with the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct Error {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl Error {
    /// An error of `action` ("cannot fsync", ...) on `path`.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            action,
            path: path.into(),
            source,
        }
    }

    /// What was being done ("cannot create temporary file", "cannot fsync", ...).
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// The file or directory involved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The action, the path and the underlying I/O error.
    pub fn into_parts(self) -> (&'static str, PathBuf, io::Error) {
        (self.action, self.path, self.source)
    }
}

impl From<Error> for io::Error {
    /// The same kind, with the action and the path in the message.
    fn from(e: Error) -> Self {
        io::Error::new(e.kind(), e)
    }
}

/// An I/O error on a path as the catalog, the configuration and
/// barman-core show it: the path in backticks (``cannot read `/x`: ...``),
/// where [`Error`] shows it bare. The same action, path and cause; its
/// [`source`](std::error::Error::source) is the underlying I/O error.
#[derive(Debug)]
pub struct PathIoError(Error);

impl PathIoError {
    /// An error of `action` ("cannot read", ...) on `path`.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self(Error::new(action, path, source))
    }

    /// What was being done ("cannot read", "cannot rename to", ...).
    pub fn action(&self) -> &'static str {
        self.0.action
    }

    /// The file or directory involved.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> io::ErrorKind {
        self.0.kind()
    }
}

impl From<Error> for PathIoError {
    /// The same action, path and cause.
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for PathIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Error {
            action,
            path,
            source,
        } = &self.0;
        write!(f, "{action} `{}`: {source}", path.display())
    }
}

impl std::error::Error for PathIoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.source)
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `file_name` is a temporary file of barman-rs
/// (`.<name>.<pid>.<n>.barman-tmp`, or `.<name>.barman-tmp` as earlier
/// versions named the copy engine's ones).
///
/// The copy engine leaves these out of a backup's listing and the WAL
/// archiver skips them in `incoming/`.
pub fn is_temp_name(file_name: &str) -> bool {
    file_name.len() > 1 + TEMP_SUFFIX.len()
        && file_name.starts_with('.')
        && file_name.ends_with(TEMP_SUFFIX)
}

/// Whether `file_name` is a temporary file of barman-rs for a target named
/// `name` (see [`is_temp_name`]).
pub fn is_temp_of(file_name: &str, name: &str) -> bool {
    is_temp_name(file_name)
        && file_name
            .strip_prefix('.')
            .and_then(|rest| rest.strip_prefix(truncated(name)))
            .is_some_and(|rest| rest.starts_with('.'))
}

/// `name` cut to [`MAX_NAME_IN_TEMP`] bytes (at a character boundary).
fn truncated(name: &str) -> &str {
    let mut end = name.len().min(MAX_NAME_IN_TEMP);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The directory holding `path`: its parent, or `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The next temporary name for `target`: `<dir>/.<name>.<pid>.<n>.barman-tmp`.
fn next_temp_path(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Error::new(
                "cannot name a temporary file for",
                target,
                io::Error::new(io::ErrorKind::InvalidInput, "no UTF-8 file name"),
            )
        })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ok(parent_dir(target).join(format!(".{}.{pid}.{n}{TEMP_SUFFIX}", truncated(name))))
}

/// `O_NOFOLLOW` for [`OpenOptionsExt::custom_flags`].
fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits().cast_signed()
}

/// Creates a new file at `path` for reading and writing, with mode exactly
/// `mode & 0o777`: `O_CREAT | O_EXCL | O_NOFOLLOW`, so an existing file or
/// symbolic link at `path` is an `AlreadyExists` error and is never opened.
pub fn create_new(path: &Path, mode: u32) -> Result<File> {
    let mode = mode & 0o777;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(no_follow())
        .mode(mode)
        .open(path)
        .map_err(|e| Error::new("cannot create", path, e))?;
    // The umask may have filtered the mode.
    if let Err(e) = file.set_permissions(Permissions::from_mode(mode)) {
        let _ = fs::remove_file(path);
        return Err(Error::new("cannot set permissions of", path, e));
    }
    Ok(file)
}

/// Tries names from [`next_temp_path`] until `make` succeeds on one that is
/// not taken.
fn with_new_name<T>(
    target: &Path,
    mut make: impl FnMut(&Path) -> Result<T>,
) -> Result<(PathBuf, T)> {
    let mut attempt = 0;
    loop {
        let path = next_temp_path(target)?;
        match make(&path) {
            Ok(value) => return Ok((path, value)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < MAX_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A temporary name next to a target, removed when dropped unless it was
/// renamed into place (see [`TempFile`] for one with an open file).
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    target: PathBuf,
    armed: bool,
}

impl TempPath {
    /// Hard-links `source` at a new temporary name for `target` (a link
    /// planted at a taken name is skipped, never replaced or followed; a
    /// symbolic link at `source` is linked itself, not followed).
    pub fn hard_link(source: &Path, target: &Path) -> Result<Self> {
        let (path, ()) = with_new_name(target, |tmp| {
            fs::hard_link(source, tmp).map_err(|e| Error::new("cannot link", tmp, e))
        })?;
        Ok(Self {
            path,
            target: target.to_path_buf(),
            armed: true,
        })
    }

    /// The temporary name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file it is meant to become.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the file over the target, without fsync of the file or of
    /// the directory: the caller makes both durable (one `syncfs`, or its
    /// own fsyncs).
    pub fn rename_unsynced(mut self) -> Result<()> {
        fs::rename(&self.path, &self.target)
            .map_err(|e| Error::new("cannot rename temporary file to", &self.target, e))?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            // unlink never follows a link: whatever holds the name goes.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What [`TempFile::commit_no_replace`] did.
#[derive(Debug)]
pub enum NoReplace {
    /// The file is at the target, durably; the temporary name is gone.
    Installed,
    /// The target exists and was left alone; the temporary file is given
    /// back (removed when dropped).
    Exists(TempFile),
}

/// A new file being written under a temporary name next to its target.
///
/// Created exclusively ([`create_new`]) at a name unique to the writer;
/// removed when dropped unless committed. Writes go to the file
/// ([`Write`] is implemented, unbuffered).
#[derive(Debug)]
pub struct TempFile {
    file: File,
    temp: TempPath,
}

impl TempFile {
    /// Creates the temporary file for `target` in its directory, readable
    /// and writable, mode exactly `mode & 0o777`.
    pub fn create(target: impl AsRef<Path>, mode: u32) -> Result<Self> {
        let target = target.as_ref();
        let (path, file) = with_new_name(target, |tmp| {
            create_new(tmp, mode).map_err(|e| Error {
                action: "cannot create temporary file",
                ..e
            })
        })?;
        Ok(Self {
            file,
            temp: TempPath {
                path,
                target: target.to_path_buf(),
                armed: true,
            },
        })
    }

    /// The temporary name.
    pub fn path(&self) -> &Path {
        &self.temp.path
    }

    /// The file it is meant to become.
    pub fn target(&self) -> &Path {
        &self.temp.target
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The open file, mutably.
    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// fsyncs the file (content and metadata).
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::new("cannot fsync", &self.temp.path, e))
    }

    /// Puts the file into place durably: fsync of the file, rename over the
    /// target, fsync of the directory.
    pub fn commit(self) -> Result<()> {
        self.sync()?;
        let dir = parent_dir(&self.temp.target).to_path_buf();
        self.rename_unsynced()?;
        fsync_dir(&dir)
    }

    /// Renames the file over the target, without any fsync: the caller
    /// makes the file and the directory durable (one `syncfs`, or its own
    /// fsyncs, as the copy engine does).
    pub fn rename_unsynced(self) -> Result<()> {
        let Self { file, temp } = self;
        drop(file);
        temp.rename_unsynced()
    }

    /// Installs the file at the target unless the target exists: fsync of
    /// the file, a hard link at the target (which never replaces anything),
    /// removal of the temporary name, fsync of the directory.
    pub fn commit_no_replace(self) -> Result<NoReplace> {
        self.sync()?;
        match fs::hard_link(&self.temp.path, &self.temp.target) {
            Ok(()) => {
                let dir = parent_dir(&self.temp.target).to_path_buf();
                drop(self);
                fsync_dir(&dir)?;
                Ok(NoReplace::Installed)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(NoReplace::Exists(self)),
            Err(e) => Err(Error::new("cannot link into place", &self.temp.target, e)),
        }
    }

    /// Closes the file, keeping the temporary name (and its removal on drop).
    pub fn into_temp_path(self) -> TempPath {
        self.temp
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes `bytes` to `path` atomically and durably ([`TempFile::commit`]);
/// the file gets exactly `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, mode, |w| w.write_all(bytes))
}

/// Writes `path` atomically and durably with the content `fill` writes
/// (into a buffered [`TempFile`]); nothing is left if anything fails.
pub fn write_atomic_with<F>(path: &Path, mode: u32, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut temp = TempFile::create(path, mode)?;
    let mut writer = io::BufWriter::new(temp.file_mut());
    let written = fill(&mut writer).and_then(|()| writer.flush());
    drop(writer);
    written.map_err(|e| Error::new("cannot write", temp.path(), e))?;
    temp.commit()
}

/// fsyncs a directory, so that the names created, renamed or removed in it
/// survive a crash.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .map_err(|e| Error::new("cannot open directory", dir, e))?
        .sync_all()
        .map_err(|e| Error::new("cannot fsync directory", dir, e))
}

/// Moves the file `from` (already fsync'ed by whoever wrote it) to `to`
/// by a rename, and makes the move durable: the directory of `to` is
/// fsync'ed, and the directory of `from` too when it is another one. `to`
/// is replaced if it exists. Across file systems the rename fails with
/// [`io::ErrorKind::CrossesDevices`]; the caller then copies through a
/// [`TempFile`].
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::new("cannot rename", from, e))?;
    let (from_dir, to_dir) = (parent_dir(from), parent_dir(to));
    fsync_dir(to_dir)?;
    if from_dir != to_dir {
        fsync_dir(from_dir)?;
    }
    Ok(())
}

/// Creates `path` and any missing parents with mode 0700 (exactly),
/// fsyncing the parent of every directory created. Existing directories
/// are left as they are.
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
                fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
                    .map_err(|e| Error::new("cannot set permissions of", dir, e))?;
                fsync_dir(parent_dir(dir))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(Error::new("cannot create directory", dir, e)),
        }
    }
    Ok(())
}

/// Removes, in `dir`, the temporary files of target `name` a killed
/// process left behind ([`is_temp_of`], and the `.<name>.….tmp` names
/// earlier versions of barman-rs used); returns the paths removed.
///
/// Only for a directory whose writers are serialised by the caller (a lock
/// held): a temporary file in use by another writer would go too.
pub fn remove_stale_temps(dir: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let legacy_prefix = format!(".{name}.");
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        #[allow(clippy::case_sensitive_file_extension_comparisons)]
        let legacy = file.starts_with(&legacy_prefix) && file.ends_with(".tmp");
        if (is_temp_of(file, name) || legacy) && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// Runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The two ways to show an I/O error on a path: bare ([`Error`]) and
    /// with the path in backticks ([`PathIoError`]); both keep the I/O
    /// error as their source.
    #[test]
    fn path_errors_show_the_action_the_path_and_the_cause() {
        let cause = || io::Error::new(io::ErrorKind::NotFound, "gone");
        let bare = Error::new("cannot read", "/x/y", cause());
        assert_eq!(bare.to_string(), "cannot read /x/y: gone");
        let quoted = PathIoError::from(bare);
        assert_eq!(quoted.to_string(), "cannot read `/x/y`: gone");
        assert_eq!(
            PathIoError::new("cannot read", "/x/y", cause()).to_string(),
            quoted.to_string()
        );
        assert_eq!(
            (quoted.action(), quoted.path(), quoted.kind()),
            ("cannot read", Path::new("/x/y"), io::ErrorKind::NotFound)
        );
        let source = std::error::Error::source(&quoted).unwrap();
        assert_eq!(source.to_string(), "gone");
        assert!(source.downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn temp_names() {
        let target = Path::new("/x/000000010000000000000001");
        let tmp = next_temp_path(target).unwrap();
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".000000010000000000000001."), "{name}");
        assert!(name.ends_with(".barman-tmp"), "{name}");
        assert!(is_temp_name(name));
        assert!(is_temp_of(name, "000000010000000000000001"));
        assert!(!is_temp_of(name, "00000001000000000000000"));
        assert_eq!(tmp.parent(), Some(Path::new("/x")));
        assert_ne!(next_temp_path(target).unwrap(), tmp, "unique per call");

        assert!(is_temp_name(".16384.barman-tmp"));
        assert!(is_temp_of(".16384.barman-tmp", "16384"));
        for no in [
            ".barman-tmp",
            "16384.barman-tmp",
            "x.tmp",
            ".x.tmp",
            "postgresql.auto.conf.tmp",
            ".x.barman-tmp.1",
        ] {
            assert!(!is_temp_name(no), "{no}");
        }
        assert_eq!(
            next_temp_path(Path::new("plain")).unwrap().parent(),
            Some(Path::new("."))
        );
        assert!(next_temp_path(Path::new("/")).is_err());
    }

    /// Symbolic links planted at the next temporary names (and a regular
    /// file among them) are skipped: never opened, truncated or followed.
    #[test]
    fn planted_links_at_the_next_temp_names_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"untouched").unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        let target = data.join("PG_VERSION");
        let pid = std::process::id();
        let next = COUNTER.load(Ordering::Relaxed);
        // Other tests of this binary may take names meanwhile: plant a wide window.
        let planted: Vec<PathBuf> = (next..next + 200)
            .map(|n| data.join(format!(".PG_VERSION.{pid}.{n}.barman-tmp")))
            .collect();
        for (i, path) in planted.iter().enumerate() {
            if i == 3 {
                fs::write(path, b"someone else's").unwrap();
            } else {
                std::os::unix::fs::symlink(&victim, path).unwrap();
            }
        }
        let mut temp = TempFile::create(&target, 0o600).unwrap();
        assert!(!planted.contains(&temp.path().to_path_buf()));
        temp.write_all(b"15\n").unwrap();
        temp.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"15\n");
        assert!(!fs::symlink_metadata(&target).unwrap().is_symlink());
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        for (i, path) in planted.iter().enumerate() {
            let meta = fs::symlink_metadata(path).unwrap();
            assert_eq!(meta.is_symlink(), i != 3, "{}", path.display());
        }
        assert_eq!(fs::read(&planted[3]).unwrap(), b"someone else's");
    }

    #[test]
    fn long_names_are_cut_in_temp_names() {
        let long = "é".repeat(127);
        let tmp = next_temp_path(&Path::new("/d").join(&long)).unwrap();
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= 255, "{}", name.len());
        assert!(is_temp_of(name, &long));
    }
}
