//! Barman's on-disk catalog: `backup.info`, xlog.db, `identity.json`,
//! keep marks, lock files and the directory layout of one server, with the
//! Python-literal and time formats they are written in, and the durable
//! writes ([`fs`]) every catalog file goes through.
//!
//! Everything here reads and writes Barman 3.20's formats (BARMAN-BEHAVIOUR.md
//! §3): files Barman wrote read back and, when rewritten unchanged, are
//! byte-identical. [`Catalog`] is a small facade over one server's layout.
//! No PostgreSQL access, no async runtime: an embedder that only reads a
//! catalog compiles this crate, `barman-wal` and `barman-fs`.
//!
//! WAL names and LSNs are validated with `barman-wal`'s [`WalFileName`],
//! [`SegmentName`](barman_wal::SegmentName) and [`Lsn`](barman_wal::Lsn);
//! catalog files keep the text exactly as written so they round-trip.
//!
//! # Invariants
//!
//! - **Atomic writes.** A catalog file MUST be replaced by writing a
//!   temporary file next to it (created exclusively, never through a link),
//!   fsync'ing it, renaming it over the target and fsync'ing the directory
//!   ([`fs::write_atomic`], on `barman-fs`): an interrupted write leaves
//!   either the old or the new file, never half of one. xlog.db appends are
//!   fsync'ed.
//! - **Private modes.** Files MUST be created 0600, directories 0700.
//! - **Byte-identical round trips.** Files written by Barman 3.x
//!   (`backup.info`, xlog.db, `identity.json`, keep marks) are read and, when
//!   rewritten unchanged, are byte-for-byte what Barman wrote; files written
//!   here are what Barman would write.
//!
//! # Example
//!
//! Listing a server's backups from a `barman.conf` (parsed by
//! `barman-config`):
//!
//! ```
//! use std::path::Path;
//!
//! use barman_catalog::{BackupInfo, BackupStatus};
//!
//! let home = tempfile::tempdir()?;
//! let conf = format!("[barman]\nbarman_home = {}\n\n[pg]\nconninfo = host=pg\n", home.path().display());
//! let config = barman_config::Config::parse_str(&conf, Path::new("/etc/barman.conf"))?;
//! let server = config.server("pg").expect("[pg] is configured");
//! server.layout().ensure()?;
//! let mut info = BackupInfo::new("pg", "20240901T103000".parse()?);
//! info.set_status(BackupStatus::Done);
//! info.write(&server.layout())?; // meta/20240901T103000-backup.info, atomically
//!
//! for backup in server.catalog().backups()? {
//!     println!("{} {}", backup.backup_id(), backup.status()?);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`WalFileName`]: barman_wal::WalFileName

#![deny(missing_docs)]

mod backup_id;
mod backup_info;
mod error;
pub mod fs;
mod identity;
mod keep;
mod layout;
pub mod lock;
pub mod python;
pub mod pytime;
mod xlogdb;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use backup_id::{BackupId, BackupStatus};
pub use backup_info::{BackupInfo, DEFAULT_XLOG_SEGMENT_SIZE, KNOWN_KEYS, Tablespace};
pub use identity::Identity;
pub use keep::{KeepTarget, read_keep, remove_keep, write_keep};
pub use layout::ServerLayout;
pub use lock::{LockGuard, LockKind, acquire_blocking, read_owner, try_acquire};
pub use python::{PyFloat, PyValue};
pub use xlogdb::{XlogDb, XlogEntry};

pub use error::{Error, Result};

/// One server's catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    layout: ServerLayout,
    server_name: String,
}

impl Catalog {
    /// A catalog over `layout` for `server_name` (no I/O).
    pub fn open(layout: ServerLayout, server_name: impl Into<String>) -> Self {
        Self {
            layout,
            server_name: server_name.into(),
        }
    }

    /// The layout.
    pub fn layout(&self) -> &ServerLayout {
        &self.layout
    }

    /// The server's name.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Every backup, sorted by id: `meta/*-backup.info` plus legacy
    /// `base/<id>/backup.info` (meta/ wins when both exist).
    pub fn backups(&self) -> Result<Vec<BackupInfo>> {
        let mut found: BTreeMap<BackupId, PathBuf> = BTreeMap::new();
        for name in list_dir(self.layout.basebackups_directory())? {
            if let Ok(id) = name.parse::<BackupId>() {
                let path = self.layout.legacy_backup_info_path(&id);
                if path.is_file() {
                    found.insert(id, path);
                }
            }
        }
        for name in list_dir(self.layout.meta_directory())? {
            let id = name
                .strip_suffix("-backup.info")
                .and_then(|id| id.parse::<BackupId>().ok());
            if let Some(id) = id {
                let path = self.layout.backup_info_path(&id);
                found.insert(id, path);
            }
        }
        found
            .into_iter()
            .map(|(id, path)| BackupInfo::read_file(&path, id))
            .collect()
    }

    /// The backup.info of `id` (meta/ first, then legacy).
    pub fn backup(&self, id: &BackupId) -> Result<BackupInfo> {
        BackupInfo::read(&self.layout, id)
    }

    /// The server's xlog.db.
    pub fn xlogdb(&self) -> XlogDb {
        XlogDb::new(self.layout.xlogdb_path(&self.server_name))
    }

    /// identity.json, if written.
    pub fn identity(&self) -> Result<Option<Identity>> {
        Identity::read(&self.layout.identity_path())
    }

    /// The keep mark of `id`.
    pub fn keep(&self, id: &BackupId) -> Result<Option<KeepTarget>> {
        read_keep(&self.layout, id)
    }
}

/// File names in `dir` (an absent directory is empty).
fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Compiles and runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
