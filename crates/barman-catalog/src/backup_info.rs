//! backup.info: Barman's per-backup metadata file (BARMAN-BEHAVIOUR.md §3.3).
//!
//! The file is kept as an ordered map of key → raw value text, so a file
//! Barman wrote reads and writes back byte-identically; typed accessors
//! (in `fields`) parse and format values on demand.

mod fields;
mod sync_json;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use fields::Tablespace;

use super::python::PyValue;
use super::pytime::{parse_python_datetime, to_python_isoformat};
use super::{BackupId, ServerLayout};
use crate::fs::{FILE_MODE, create_dir_secure, read_optional, write_atomic};
use crate::{Error, Result};

/// Every key Barman 3.20 writes, sorted (the order of the file).
pub const KNOWN_KEYS: [&str; 35] = [
    "backup_label",
    "backup_name",
    "begin_offset",
    "begin_time",
    "begin_wal",
    "begin_xlog",
    "children_backup_ids",
    "cluster_size",
    "compression",
    "config_file",
    "copy_stats",
    "data_checksums",
    "deduplicated_size",
    "encryption",
    "end_offset",
    "end_time",
    "end_wal",
    "end_xlog",
    "error",
    "hba_file",
    "ident_file",
    "included_files",
    "mode",
    "parent_backup_id",
    "pgdata",
    "server_name",
    "size",
    "snapshots_info",
    "status",
    "summarize_wal",
    "systemid",
    "tablespaces",
    "timeline",
    "version",
    "xlog_segment_size",
];

/// Keys omitted from the file when they are null.
const HIDE_IF_NULL: [&str; 2] = ["backup_name", "snapshots_info"];
/// Keys Barman loads with `int`.
const INT_KEYS: [&str; 8] = [
    "begin_offset",
    "cluster_size",
    "deduplicated_size",
    "end_offset",
    "size",
    "timeline",
    "version",
    "xlog_segment_size",
];
/// Keys whose Python value (not its repr) appears in Barman's JSON.
const LITERAL_JSON_KEYS: [&str; 4] = [
    "copy_stats",
    "included_files",
    "snapshots_info",
    "tablespaces",
];
/// The null value as written in the file.
const NONE: &str = "None";
/// Default segment size (`xlog_segment_size` when unset).
pub const DEFAULT_XLOG_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// The metadata of one backup.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupInfo {
    backup_id: BackupId,
    origin: Option<PathBuf>,
    fields: BTreeMap<&'static str, String>,
}

impl BackupInfo {
    /// A fresh backup.info for a new backup: status EMPTY, `server_name` set.
    pub fn new(server_name: &str, backup_id: BackupId) -> Self {
        let mut info = Self {
            backup_id,
            origin: None,
            fields: BTreeMap::new(),
        };
        info.put("status", Some("EMPTY".into()));
        info.put("server_name", Some(server_name.to_owned()));
        info
    }

    /// Parses backup.info text. `origin` names the file in errors.
    ///
    /// A truncated file — an unterminated last line, or no `status` line
    /// (Barman and barman-rs always write one, newline-terminated), as a
    /// crashed non-atomic writer or a copy onto a full disk leaves it — is an
    /// error naming the file, so that nothing reads (or rewrites) a backup
    /// whose metadata is incomplete.
    pub fn parse(text: &str, backup_id: BackupId, origin: &Path) -> Result<Self> {
        let truncated = |line: usize, what: &str| Error::CatalogSyntax {
            path: origin.to_path_buf(),
            line,
            message: format!(
                "truncated backup.info ({what}: an interrupted write or a full disk?); \
                 the file is left as it is: restore it from a copy, or move it away to drop the backup"
            ),
        };
        if !text.is_empty() && !text.ends_with('\n') {
            return Err(truncated(
                text.lines().count(),
                "the last line is unterminated",
            ));
        }
        let mut fields = BTreeMap::new();
        for (idx, line) in text.lines().enumerate() {
            let lineno = idx + 1;
            if line.trim().is_empty() || line.trim_end().starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(Error::CatalogSyntax {
                    path: origin.to_path_buf(),
                    line: lineno,
                    message: format!("invalid line `{}` (expected key=value)", line.trim()),
                });
            };
            let key = key.trim();
            let Some(known) = known_key(key) else {
                return Err(Error::UnknownBackupInfoKey {
                    path: origin.to_path_buf(),
                    line: lineno,
                    key: key.to_owned(),
                });
            };
            fields.insert(known, value.trim().to_owned());
        }
        if !fields.contains_key("status") {
            return Err(truncated(0, "it has no `status` line"));
        }
        Ok(Self {
            backup_id,
            origin: Some(origin.to_path_buf()),
            fields,
        })
    }

    /// Reads a backup.info file.
    pub fn read_file(path: &Path, backup_id: BackupId) -> Result<Self> {
        let text = crate::fs::read_to_string(path)?;
        Self::parse(&text, backup_id, path)
    }

    /// Reads the backup.info of `id`: `meta/<id>-backup.info`, else the legacy
    /// `base/<id>/backup.info`.
    pub fn read(layout: &ServerLayout, id: &BackupId) -> Result<Self> {
        let meta = layout.backup_info_path(id);
        for path in [&meta, &layout.legacy_backup_info_path(id)] {
            if let Some(text) = read_optional(path)? {
                return Self::parse(&text, id.clone(), path);
            }
        }
        Err(Error::BackupNotFound {
            backup_id: id.to_string(),
            path: meta,
        })
    }

    /// Writes `meta/<id>-backup.info` atomically (mode 0600) and returns its path.
    pub fn write(&self, layout: &ServerLayout) -> Result<PathBuf> {
        let path = layout.backup_info_path(&self.backup_id);
        create_dir_secure(layout.meta_directory())?;
        self.write_to(&path)?;
        Ok(path)
    }

    /// Writes the file atomically at `path` (mode 0600).
    pub fn write_to(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_file_string().as_bytes(), FILE_MODE)
    }

    /// The file content: every known key, sorted, `None` when unset, except
    /// `backup_name` and `snapshots_info`, omitted when null.
    pub fn to_file_string(&self) -> String {
        let mut out = String::with_capacity(2048);
        for key in KNOWN_KEYS {
            let value = self.effective(key);
            if value == NONE && HIDE_IF_NULL.contains(&key) {
                continue;
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        }
        out
    }

    /// The backup id.
    pub fn backup_id(&self) -> &BackupId {
        &self.backup_id
    }

    /// The file this was read from, if any.
    pub fn origin(&self) -> Option<&Path> {
        self.origin.as_deref()
    }

    /// The raw text of `key` (`None` when unset or `None`).
    pub fn raw(&self, key: &str) -> Option<&str> {
        let value = self.effective(key);
        (value != NONE).then_some(value)
    }

    /// Sets the raw text of a known key (`None` writes `None`). The text must
    /// be one line.
    pub fn set_raw(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        let Some(known) = known_key(key) else {
            return Err(Error::InvalidCatalogValue {
                what: "backup.info key",
                value: key.to_owned(),
                reason: "not a key Barman knows".into(),
            });
        };
        if let Some(v) = value
            && (v.contains(['\n', '\r']) || v.trim() != v)
        {
            return Err(self.invalid(
                key,
                v,
                "a backup.info value must be one line without surrounding spaces",
            ));
        }
        self.put(known, value.map(str::to_owned));
        Ok(())
    }

    /// Stores a value for a known key (callers guarantee a one-line value).
    fn put(&mut self, key: &'static str, value: Option<String>) {
        self.fields
            .insert(key, value.unwrap_or_else(|| NONE.to_owned()));
    }

    /// The value Barman would write for `key` (applying its defaults).
    fn effective(&self, key: &str) -> &str {
        match self.fields.get(key) {
            Some(v) => v,
            None => match key {
                "status" => "EMPTY",
                "xlog_segment_size" => "16777216",
                _ => NONE,
            },
        }
    }

    fn invalid(&self, key: &str, value: &str, reason: impl Into<String>) -> Error {
        Error::InvalidBackupField {
            path: self
                .origin
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("<backup {}>", self.backup_id))),
            key: key.to_owned(),
            value: super::python::shorten(value),
            reason: reason.into(),
        }
    }

    /// Barman's JSON form of the backup (as in `diagnose`'s `backups.<id>`):
    /// ints as numbers, datetimes in ISO form, `tablespaces`/`copy_stats`/
    /// `included_files` as JSON values, `backup_label` as its repr string,
    /// plus `backup_id`. Keys are sorted.
    pub fn to_json(&self) -> Result<Value> {
        let local = jiff::tz::TimeZone::system();
        let mut map = Map::new();
        map.insert(
            "backup_id".into(),
            Value::String(self.backup_id.to_string()),
        );
        for key in KNOWN_KEYS {
            let raw = self.effective(key);
            if raw == NONE {
                if !HIDE_IF_NULL.contains(&key) {
                    map.insert(key.into(), Value::Null);
                }
                continue;
            }
            let value = if INT_KEYS.contains(&key) {
                let n: i64 = raw
                    .parse()
                    .map_err(|_| self.invalid(key, raw, "not an integer"))?;
                Value::from(n)
            } else if key == "begin_time" || key == "end_time" {
                let t = parse_python_datetime(raw, &local)
                    .map_err(|e| self.invalid(key, raw, e.to_string()))?;
                Value::String(to_python_isoformat(&t))
            } else if LITERAL_JSON_KEYS.contains(&key) {
                PyValue::parse(raw)
                    .map_err(|e| self.invalid(key, raw, e.to_string()))?
                    .to_json()
            } else {
                Value::String(raw.to_owned())
            };
            map.insert(key.into(), value);
        }
        Ok(Value::Object(map))
    }
}

fn known_key(key: &str) -> Option<&'static str> {
    KNOWN_KEYS.binary_search(&key).ok().map(|i| KNOWN_KEYS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> BackupId {
        "20261122T041510".parse().unwrap()
    }

    const PATH: &str = "/b/pg/meta/20261122T041510-backup.info";

    #[test]
    fn a_truncated_file_is_an_error_naming_it() {
        let full = BackupInfo::new("pg", id()).to_file_string();
        assert!(BackupInfo::parse(&full, id(), Path::new(PATH)).is_ok());
        // Cut in the middle of a line (a torn write), at a line boundary
        // before `status` (a short copy), and nothing at all.
        let status_at = full.find("\nstatus=").unwrap() + 1;
        for cut in [&full[..full.len() - 3], &full[..status_at], ""] {
            let err = BackupInfo::parse(cut, id(), Path::new(PATH)).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(PATH) && msg.contains("truncated backup.info"),
                "{msg}"
            );
        }
        let err = BackupInfo::parse(&full[..full.len() - 1], id(), Path::new(PATH)).unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
    }

    #[test]
    fn backups_barman_rs_cannot_restore_say_why() {
        let plain = BackupInfo::new("pg", id());
        assert_eq!(plain.restore_obstacle(), None);
        let mut rsync = plain.clone();
        rsync.set_mode(Some("rsync-concurrent")).unwrap();
        rsync.set_encryption(Some("none")).unwrap();
        assert_eq!(rsync.restore_obstacle(), None);
        for (key, value, needle) in [
            (
                "compression",
                "gzip",
                "compressed tar backup (compression = gzip)",
            ),
            ("compression", "none", "tar format (compression = none)"),
            ("encryption", "gpg", "encrypted (encryption = gpg)"),
            (
                "parent_backup_id",
                "20261121T000000",
                "incremental backup (parent_backup_id = 20261121T000000)",
            ),
            ("mode", "snapshot-concurrent", "snapshot backup"),
            ("snapshots_info", "{'provider': 'gcp'}", "snapshot backup"),
        ] {
            let mut info = plain.clone();
            info.set_raw(key, Some(value)).unwrap();
            let why = info.restore_obstacle().unwrap_or_default();
            assert!(why.contains(needle), "{key}={value}: {why}");
        }
    }
}
