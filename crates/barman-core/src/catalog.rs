//! The on-disk catalog: backup.info, xlog.db, identity.json, keep marks, locks.
//!
//! Everything here reads and writes Barman 3.20's formats (BARMAN-BEHAVIOUR.md
//! §3): files Barman wrote read back and, when rewritten unchanged, are
//! byte-identical. [`Catalog`] is a small facade over one server's layout.
//!
//! WAL names and LSNs are validated with `barman-wal`'s [`WalFileName`],
//! [`SegmentName`](barman_wal::SegmentName) and [`Lsn`](barman_wal::Lsn);
//! catalog files keep the text exactly as written so they round-trip.
//!
//! [`WalFileName`]: barman_wal::WalFileName

mod backup_id;
mod backup_info;
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

use crate::{Error, Result};

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
