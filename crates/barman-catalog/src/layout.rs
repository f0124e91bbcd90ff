//! Where a server's catalog lives on disk (BARMAN-BEHAVIOUR.md §3.1).

use std::path::{Path, PathBuf};

use barman_wal::WalFileName;

use super::BackupId;
use crate::Result;
use crate::fs::create_dir_secure;

/// The directories of one server's catalog.
///
/// Built from plain paths: [`ServerLayout::new`] applies Barman's defaults
/// under `backup_directory`; the `with_*` methods override single entries
/// (as the `basebackups_directory`, `wals_directory`, ... options do).
// Field names mirror Barman's option names (`wals_directory`, ...).
#[allow(clippy::struct_field_names)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLayout {
    backup_directory: PathBuf,
    basebackups_directory: PathBuf,
    wals_directory: PathBuf,
    incoming_directory: PathBuf,
    streaming_directory: PathBuf,
    errors_directory: PathBuf,
    xlogdb_directory: PathBuf,
    meta_directory: PathBuf,
}

macro_rules! dir_accessors {
    ($($field:ident, $with:ident, $doc:literal;)*) => {
        $(
            #[doc = concat!("The ", $doc, " directory.")]
            pub fn $field(&self) -> &Path {
                &self.$field
            }

            #[doc = concat!("Overrides the ", $doc, " directory.")]
            #[must_use]
            pub fn $with(mut self, path: impl Into<PathBuf>) -> Self {
                self.$field = path.into();
                self
            }
        )*
    };
}

impl ServerLayout {
    /// Barman's default layout under `backup_directory` (`<home>/<server>`):
    /// `base/`, `wals/` (also holding xlog.db), `incoming/`, `streaming/`,
    /// `errors/`, `meta/`.
    pub fn new(backup_directory: impl Into<PathBuf>) -> Self {
        let root: PathBuf = backup_directory.into();
        let wals = root.join("wals");
        Self {
            basebackups_directory: root.join("base"),
            xlogdb_directory: wals.clone(),
            wals_directory: wals,
            incoming_directory: root.join("incoming"),
            streaming_directory: root.join("streaming"),
            errors_directory: root.join("errors"),
            meta_directory: root.join("meta"),
            backup_directory: root,
        }
    }

    dir_accessors! {
        backup_directory, with_backup_directory, "server's backup";
        basebackups_directory, with_basebackups_directory, "base backups (`base/`)";
        wals_directory, with_wals_directory, "WAL archive (`wals/`)";
        incoming_directory, with_incoming_directory, "archive_command landing (`incoming/`)";
        streaming_directory, with_streaming_directory, "pg_receivewal (`streaming/`)";
        errors_directory, with_errors_directory, "rejected WAL files (`errors/`)";
        xlogdb_directory, with_xlogdb_directory, "xlog.db";
        meta_directory, with_meta_directory, "backup metadata (`meta/`)";
    }

    /// Creates every directory (mode 0700, parents fsync'ed) that is missing.
    pub fn ensure(&self) -> Result<()> {
        for dir in [
            &self.backup_directory,
            &self.basebackups_directory,
            &self.wals_directory,
            &self.incoming_directory,
            &self.streaming_directory,
            &self.errors_directory,
            &self.xlogdb_directory,
            &self.meta_directory,
        ] {
            create_dir_secure(dir)?;
        }
        Ok(())
    }

    /// `meta/<id>-backup.info` (where backup.info is written).
    pub fn backup_info_path(&self, id: &BackupId) -> PathBuf {
        self.meta_directory.join(format!("{id}-backup.info"))
    }

    /// `base/<id>/backup.info` (pre-3.13.2 location, read only).
    pub fn legacy_backup_info_path(&self, id: &BackupId) -> PathBuf {
        self.backup_dir(id).join("backup.info")
    }

    /// `meta/<id>-keep`.
    pub fn keep_path(&self, id: &BackupId) -> PathBuf {
        self.meta_directory.join(format!("{id}-keep"))
    }

    /// `base/<id>/annotations/keep` (pre-3.13.3 location).
    pub fn legacy_keep_path(&self, id: &BackupId) -> PathBuf {
        self.backup_dir(id).join("annotations").join("keep")
    }

    /// `meta/<id>-delete_this`: the "delete in progress" marker.
    pub fn delete_marker_path(&self, id: &BackupId) -> PathBuf {
        self.meta_directory.join(format!("{id}-delete_this"))
    }

    /// `base/<id>`.
    pub fn backup_dir(&self, id: &BackupId) -> PathBuf {
        self.basebackups_directory.join(id.as_str())
    }

    /// `<xlogdb_directory>/<server>-xlog.db`.
    pub fn xlogdb_path(&self, server: &str) -> PathBuf {
        self.xlogdb_directory.join(format!("{server}-xlog.db"))
    }

    /// Where an archived WAL file lives: `wals/<first 16 hex>/<name>`, or
    /// `wals/<name>` for history files.
    ///
    /// The name is the canonical (upper-case) one, as PostgreSQL writes it.
    pub fn wal_path(&self, name: &WalFileName) -> PathBuf {
        let file = name.to_string();
        match name.archive_subdir() {
            Some(hash) => self.wals_directory.join(hash).join(file),
            None => self.wals_directory.join(file),
        }
    }

    /// `identity.json`.
    pub fn identity_path(&self) -> PathBuf {
        self.backup_directory.join("identity.json")
    }
}
