//! File-system helpers shared by the WAL clients: private directories that
//! are safe to trust. Temporary files and durable writes are `barman-fs`'s
//! (as everywhere in barman-rs).
//!
//! The prefetch cache of `barman-wal-archive` lives in `/tmp` and the spool
//! of `barman-wal-restore` in `/var/tmp`, both world-writable places with
//! predictable names. A marker or spooled WAL planted there by another user
//! would make the archiver skip a WAL or a standby replay foreign data, so a
//! directory is used only when it is a real directory (not a symlink) owned
//! by the user running the client and writable by nobody else.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

/// The mode of directories the clients create.
pub const DIR_MODE: u32 = 0o700;

/// The effective user id of this process, read from the owner of an
/// anonymous temporary file (std has no `geteuid`, and we use no `unsafe`).
pub fn own_uid() -> io::Result<u32> {
    Ok(tempfile::tempfile()?.metadata()?.uid())
}

/// Makes sure `dir` is a private directory of ours.
///
/// When it does not exist it is created (with missing parents, mode 0700)
/// if `create` is set, and `Ok(false)` is returned otherwise. An existing
/// path must be a directory, not a symlink, owned by the current user and
/// not writable by group or others; anything else is an error saying why.
/// `Ok(true)` means the directory exists and may be trusted.
pub fn private_dir(dir: &Path, create: bool) -> io::Result<bool> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !create {
                return Ok(false);
            }
            match DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir) {
                Ok(()) => {}
                // Someone (a concurrent run) created it meanwhile: check it below.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let meta = fs::symlink_metadata(dir)?;
    let untrusted = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not trusted: {why}", dir.display()),
        ))
    };
    if !meta.is_dir() {
        return untrusted("not a directory (or a symlink)");
    }
    let me = own_uid()?;
    if meta.uid() != me {
        return untrusted(&format!("owned by uid {}, not {me}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return untrusted(&format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(true)
}
