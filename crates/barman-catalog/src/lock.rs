//! Barman's lock files (BARMAN-BEHAVIOUR.md §3.6): `flock(LOCK_EX)` on a
//! file in `barman_lock_directory`, the holder's PID written inside.
//!
//! The same names and the same kind of lock as Barman, so Barman and
//! barman-rs working on one catalog exclude each other. A lock is per open
//! file description: two guards in one process on the same file conflict.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::BackupId;
use crate::fs::FILE_MODE;
use crate::{Error, Result};

/// Which lock: determines the file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// `.cron.lock`: the global cron.
    Cron,
    /// `.config-update.lock`: config-update queue processing.
    ConfigUpdate,
    /// `.<srv>-cron.lock`: per-server cron section.
    ServerCron(String),
    /// `.<srv>-backup.lock`: backup and delete.
    Backup(String),
    /// `.<srv>-archive-wal.lock`: archive-wal.
    ArchiveWal(String),
    /// `.<srv>-receive-wal.lock`: receive-wal.
    ReceiveWal(String),
    /// `.<srv>-xlogdb.lock`: any xlog.db read-modify-write.
    XlogDb(String),
    /// `.<srv>-<backup_id>.lock`: check-backup / retention delete of one backup.
    BackupId(String, BackupId),
    /// `.<srv>-<backup_id>-sync-backup.lock`: passive sync of one backup.
    SyncBackup(String, BackupId),
    /// `.<srv>-sync-wal.lock`: passive WAL sync.
    SyncWal(String),
}

impl LockKind {
    /// The lock file's name.
    pub fn file_name(&self) -> String {
        match self {
            Self::Cron => ".cron.lock".into(),
            Self::ConfigUpdate => ".config-update.lock".into(),
            Self::ServerCron(s) => format!(".{s}-cron.lock"),
            Self::Backup(s) => format!(".{s}-backup.lock"),
            Self::ArchiveWal(s) => format!(".{s}-archive-wal.lock"),
            Self::ReceiveWal(s) => format!(".{s}-receive-wal.lock"),
            Self::XlogDb(s) => format!(".{s}-xlogdb.lock"),
            Self::BackupId(s, id) => format!(".{s}-{id}.lock"),
            Self::SyncBackup(s, id) => format!(".{s}-{id}-sync-backup.lock"),
            Self::SyncWal(s) => format!(".{s}-sync-wal.lock"),
        }
    }

    /// The lock file's path in `lock_dir`.
    pub fn path(&self, lock_dir: &Path) -> PathBuf {
        lock_dir.join(self.file_name())
    }
}

/// A held lock; released (not deleted, like Barman) when dropped.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Closing the file releases the flock anyway; unlock explicitly first.
        let _ = self.file.unlock();
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| Error::io("cannot open lock file", path, e))
}

fn record_owner(mut file: File, path: PathBuf) -> Result<LockGuard> {
    let pid = std::process::id();
    let write = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(format!("{pid}\n").as_bytes())?;
        file.flush()
    };
    write(&mut file).map_err(|e| Error::io("cannot write pid to lock file", &path, e))?;
    Ok(LockGuard { file, path })
}

/// Takes the lock without waiting; `Error::LockBusy` (with the holder's PID
/// when readable) if someone holds it.
pub fn try_acquire(lock_dir: &Path, kind: &LockKind) -> Result<LockGuard> {
    let path = kind.path(lock_dir);
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => record_owner(file, path),
        Err(TryLockError::WouldBlock) => {
            let pid = read_pid(&path);
            Err(Error::LockBusy { path, pid })
        }
        Err(TryLockError::Error(e)) => Err(Error::io("cannot lock", path, e)),
    }
}

/// Takes the lock, waiting for the holder to release it.
pub fn acquire_blocking(lock_dir: &Path, kind: &LockKind) -> Result<LockGuard> {
    let path = kind.path(lock_dir);
    let file = open_lock_file(&path)?;
    file.lock()
        .map_err(|e| Error::io("cannot lock", &path, e))?;
    record_owner(file, path)
}

/// The PID of the process holding the lock at `path`, `None` if the lock is
/// free (a stale PID left in a released lock file is ignored) or missing.
pub fn read_owner(path: &Path) -> Option<u32> {
    let file = OpenOptions::new().read(true).open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(_) => read_pid(path),
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
