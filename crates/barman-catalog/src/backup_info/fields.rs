//! Typed accessors of backup.info fields.

use jiff::Zoned;

use super::{BackupInfo, DEFAULT_XLOG_SEGMENT_SIZE};
use barman_wal::{Lsn, SegmentName};

use crate::Result;
use crate::python::{PyValue, str_repr};
use crate::pytime::{parse_python_datetime, to_python_str, with_fixed_offset};
use crate::{BackupId, BackupStatus};

/// One tablespace of a backup: `(name, oid, location)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    /// Tablespace name.
    pub name: String,
    /// Tablespace OID (directory name under `base/<id>/`).
    pub oid: u32,
    /// Location on the PostgreSQL host.
    pub location: String,
}

macro_rules! str_fields {
    ($($get:ident, $set:ident, $key:literal, $doc:literal;)*) => {
        $(
            #[doc = concat!("`", $key, "`: ", $doc)]
            pub fn $get(&self) -> Option<&str> {
                self.raw($key)
            }

            #[doc = concat!("Sets `", $key, "` (`None` writes `None`); the value must be one line.")]
            pub fn $set(&mut self, value: Option<&str>) -> Result<()> {
                self.set_raw($key, value)
            }
        )*
    };
}

macro_rules! int_fields {
    ($($get:ident, $set:ident, $key:literal, $ty:ty, $doc:literal;)*) => {
        $(
            #[doc = concat!("`", $key, "`: ", $doc)]
            pub fn $get(&self) -> Result<Option<$ty>> {
                self.parsed($key, |s| s.parse::<$ty>().map_err(|e| e.to_string()))
            }

            #[doc = concat!("Sets `", $key, "`.")]
            pub fn $set(&mut self, value: Option<$ty>) {
                self.put($key, value.map(|v| v.to_string()));
            }
        )*
    };
}

impl BackupInfo {
    fn parsed<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>> {
        match self.raw(key) {
            None => Ok(None),
            Some(raw) => parse(raw)
                .map(Some)
                .map_err(|reason| self.invalid(key, raw, reason)),
        }
    }

    fn literal(&self, key: &str) -> Result<Option<PyValue>> {
        self.parsed(key, |s| PyValue::parse(s).map_err(|e| e.to_string()))
    }

    str_fields! {
        systemid, set_systemid, "systemid", "PostgreSQL system identifier (kept as text).";
        server_name, set_server_name, "server_name", "the server's name.";
        backup_name, set_backup_name, "backup_name", "friendly name (omitted from the file when unset).";
        mode, set_mode, "mode", "executor and strategy, e.g. `rsync-concurrent`, `postgres`.";
        error, set_error, "error", "failure message of a FAILED backup.";
        config_file, set_config_file, "config_file", "postgresql.conf path on the PostgreSQL host.";
        hba_file, set_hba_file, "hba_file", "pg_hba.conf path on the PostgreSQL host.";
        ident_file, set_ident_file, "ident_file", "pg_ident.conf path on the PostgreSQL host.";
        pgdata, set_pgdata, "pgdata", "PGDATA path on the PostgreSQL host.";
        compression, set_compression, "compression", "backup compression (postgres method).";
        encryption, set_encryption, "encryption", "`gpg` or unset.";
        data_checksums, set_data_checksums, "data_checksums", "`on` / `off`.";
        summarize_wal, set_summarize_wal, "summarize_wal", "`on` / `off` (PostgreSQL 17+).";
    }

    int_fields! {
        begin_offset, set_begin_offset, "begin_offset", u64, "offset of the begin LSN in its segment.";
        end_offset, set_end_offset, "end_offset", u64, "offset of the end LSN in its segment.";
        timeline, set_timeline, "timeline", u32, "timeline of the backup.";
        size, set_size, "size", u64, "bytes of the backup on disk.";
        deduplicated_size, set_deduplicated_size, "deduplicated_size", u64, "bytes actually written.";
        cluster_size, set_cluster_size, "cluster_size", u64, "estimated size of the cluster.";
        version, set_version, "version", u32, "PostgreSQL `server_version_num`.";
    }

    /// `xlog_segment_size` (16 MiB when unset, as in Barman).
    pub fn xlog_segment_size(&self) -> Result<u64> {
        Ok(self
            .parsed("xlog_segment_size", |s| {
                s.parse::<u64>().map_err(|e| e.to_string())
            })?
            .unwrap_or(DEFAULT_XLOG_SEGMENT_SIZE))
    }

    /// Sets `xlog_segment_size`.
    pub fn set_xlog_segment_size(&mut self, value: u64) {
        self.put("xlog_segment_size", Some(value.to_string()));
    }

    /// `status` (EMPTY when unset).
    pub fn status(&self) -> Result<BackupStatus> {
        let raw = self.effective("status");
        raw.parse()
            .map_err(|e: barman_retention::Error| self.invalid("status", raw, e.to_string()))
    }

    /// Sets `status`.
    pub fn set_status(&mut self, status: BackupStatus) {
        self.put("status", Some(status.as_str().to_owned()));
    }

    /// `begin_time`: naive values get the local time zone, as in Barman.
    pub fn begin_time(&self) -> Result<Option<Zoned>> {
        self.time("begin_time")
    }

    /// `end_time`: naive values get the local time zone, as in Barman.
    pub fn end_time(&self) -> Result<Option<Zoned>> {
        self.time("end_time")
    }

    /// Sets `begin_time` (written as Python's `str(datetime)`, microseconds).
    pub fn set_begin_time(&mut self, time: Option<&Zoned>) {
        self.put("begin_time", time.map(to_python_str));
    }

    /// Sets `end_time` (written as Python's `str(datetime)`, microseconds).
    pub fn set_end_time(&mut self, time: Option<&Zoned>) {
        self.put("end_time", time.map(to_python_str));
    }

    fn time(&self, key: &str) -> Result<Option<Zoned>> {
        let local = jiff::tz::TimeZone::system();
        self.parsed(key, |s| {
            parse_python_datetime(s, &local)
                .map(|t| with_fixed_offset(&t))
                .map_err(|e| e.to_string())
        })
    }

    /// `begin_wal`: 24-hex segment of the begin LSN.
    pub fn begin_wal(&self) -> Option<&str> {
        self.raw("begin_wal")
    }

    /// `end_wal`: 24-hex segment of the end LSN.
    pub fn end_wal(&self) -> Option<&str> {
        self.raw("end_wal")
    }

    /// Sets `begin_wal` (must parse as a [`SegmentName`]; stored as given).
    pub fn set_begin_wal(&mut self, name: Option<&str>) -> Result<()> {
        check_parses::<SegmentName>(name)?;
        self.set_raw("begin_wal", name)
    }

    /// Sets `end_wal` (must parse as a [`SegmentName`]; stored as given).
    pub fn set_end_wal(&mut self, name: Option<&str>) -> Result<()> {
        check_parses::<SegmentName>(name)?;
        self.set_raw("end_wal", name)
    }

    /// `begin_xlog`: the begin LSN `X/Y`.
    pub fn begin_xlog(&self) -> Option<&str> {
        self.raw("begin_xlog")
    }

    /// `end_xlog`: the end LSN `X/Y`.
    pub fn end_xlog(&self) -> Option<&str> {
        self.raw("end_xlog")
    }

    /// Sets `begin_xlog` (must parse as an `X/Y` [`Lsn`]; stored as given).
    pub fn set_begin_xlog(&mut self, lsn: Option<&str>) -> Result<()> {
        check_parses::<Lsn>(lsn)?;
        self.set_raw("begin_xlog", lsn)
    }

    /// Sets `end_xlog` (must parse as an `X/Y` [`Lsn`]; stored as given).
    pub fn set_end_xlog(&mut self, lsn: Option<&str>) -> Result<()> {
        check_parses::<Lsn>(lsn)?;
        self.set_raw("end_xlog", lsn)
    }

    /// `tablespaces`: list of `(name, oid, location)`.
    pub fn tablespaces(&self) -> Result<Option<Vec<Tablespace>>> {
        let Some(value) = self.literal("tablespaces")? else {
            return Ok(None);
        };
        let raw = self.effective("tablespaces");
        let bad = || {
            self.invalid(
                "tablespaces",
                raw,
                "expected a list of (name, oid, location)",
            )
        };
        let items = value.as_seq().ok_or_else(bad)?;
        items
            .iter()
            .map(|item| match item.as_seq() {
                Some(
                    [
                        PyValue::Str(name),
                        PyValue::Int(oid),
                        PyValue::Str(location),
                    ],
                ) => Ok(Tablespace {
                    name: name.clone(),
                    oid: u32::try_from(*oid).map_err(|_| bad())?,
                    location: location.clone(),
                }),
                _ => Err(bad()),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Sets `tablespaces` (an empty list writes `None`, as Barman does).
    pub fn set_tablespaces(&mut self, tablespaces: &[Tablespace]) {
        let value = (!tablespaces.is_empty()).then(|| {
            PyValue::List(
                tablespaces
                    .iter()
                    .map(|t| {
                        PyValue::Tuple(vec![
                            PyValue::Str(t.name.clone()),
                            PyValue::Int(i128::from(t.oid)),
                            PyValue::Str(t.location.clone()),
                        ])
                    })
                    .collect(),
            )
            .to_repr()
        });
        self.put("tablespaces", value);
    }

    /// `included_files`: PostgreSQL configuration files pulled in by `include`.
    pub fn included_files(&self) -> Result<Option<Vec<String>>> {
        let Some(value) = self.literal("included_files")? else {
            return Ok(None);
        };
        let raw = self.effective("included_files");
        let items = value
            .as_seq()
            .ok_or_else(|| self.invalid("included_files", raw, "expected a list of str"))?;
        items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.invalid("included_files", raw, "expected a list of str"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Sets `included_files` (an empty list writes `None`).
    pub fn set_included_files(&mut self, files: &[String]) {
        let value = (!files.is_empty()).then(|| {
            PyValue::List(files.iter().map(|f| PyValue::Str(f.clone())).collect()).to_repr()
        });
        self.put("included_files", value);
    }

    /// `backup_label`: the content of the backup_label file.
    pub fn backup_label(&self) -> Result<Option<String>> {
        let raw = self.effective("backup_label");
        match self.literal("backup_label")? {
            None => Ok(None),
            Some(PyValue::Str(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid("backup_label", raw, "expected a str")),
        }
    }

    /// Sets `backup_label` (stored as its Python repr; empty writes `None`).
    pub fn set_backup_label(&mut self, label: Option<&str>) {
        self.put(
            "backup_label",
            label.filter(|l| !l.is_empty()).map(str_repr),
        );
    }

    /// `copy_stats`: dict of copy timings.
    pub fn copy_stats(&self) -> Result<Option<PyValue>> {
        self.literal("copy_stats")
    }

    /// Sets `copy_stats` (stored as its repr; an empty dict writes `None`).
    pub fn set_copy_stats(&mut self, stats: Option<&PyValue>) {
        let value = stats
            .filter(|s| !matches!(s, PyValue::Dict(p) if p.is_empty()))
            .map(PyValue::to_repr);
        self.put("copy_stats", value);
    }

    /// `parent_backup_id`: the parent of a PostgreSQL 17 incremental backup.
    pub fn parent_backup_id(&self) -> Result<Option<BackupId>> {
        self.parsed("parent_backup_id", |s| {
            s.parse().map_err(|e: crate::Error| e.to_string())
        })
    }

    /// Sets `parent_backup_id`.
    pub fn set_parent_backup_id(&mut self, id: Option<&BackupId>) {
        self.put("parent_backup_id", id.map(ToString::to_string));
    }

    /// `children_backup_ids`: the incremental children (comma-separated in the file).
    pub fn children_backup_ids(&self) -> Result<Option<Vec<BackupId>>> {
        self.parsed("children_backup_ids", |s| {
            s.split(',')
                .map(|id| id.trim().parse().map_err(|e: crate::Error| e.to_string()))
                .collect()
        })
    }

    /// Sets `children_backup_ids` (an empty list writes `None`).
    pub fn set_children_backup_ids(&mut self, ids: &[BackupId]) {
        let value = (!ids.is_empty()).then(|| {
            ids.iter()
                .map(BackupId::as_str)
                .collect::<Vec<_>>()
                .join(",")
        });
        self.put("children_backup_ids", value);
    }

    /// True when the backup has a parent (PostgreSQL 17 incremental).
    pub fn is_incremental(&self) -> bool {
        self.raw("parent_backup_id").is_some()
    }

    /// Why barman-rs cannot restore (or synchronise) this backup yet, `None`
    /// for a plain-format backup it can: a tar-format (`compression` set,
    /// `none` included), encrypted, incremental or snapshot backup taken by
    /// Barman 3.x. The reasons are joined with `; `.
    pub fn restore_obstacle(&self) -> Option<String> {
        let mut why: Vec<String> = self.restore_obstacle_with(false).into_iter().collect();
        if let Some(parent) = self.raw("parent_backup_id") {
            why.push(format!(
                "it is an incremental backup (parent_backup_id = {parent}): its chain is not synchronised yet"
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// What stops a recovery: [`restore_obstacle`](Self::restore_obstacle)
    /// but an incremental backup's chain (a recovery combines it), and a
    /// tar-format backup when `tar_ok` (a recovery unpacks it).
    pub fn restore_obstacle_with(&self, tar_ok: bool) -> Option<String> {
        let mut why = Vec::new();
        if let Some(e) = self
            .encryption()
            .filter(|e| !e.eq_ignore_ascii_case("none"))
        {
            why.push(format!("it is encrypted (encryption = {e})"));
        }
        match self.compression().filter(|_| !tar_ok) {
            Some(c) if c.eq_ignore_ascii_case("none") => {
                why.push("it is in tar format (compression = none)".to_owned());
            }
            Some(c) => why.push(format!("it is a compressed tar backup (compression = {c})")),
            None => {}
        }
        if self.backup_type() == "snapshot" || self.raw("snapshots_info").is_some() {
            why.push("it is a snapshot backup".to_owned());
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// [`Error::BackupNotSupported`](crate::Error::BackupNotSupported) when
    /// [`restore_obstacle`](Self::restore_obstacle) finds one; `action` is
    /// what is refused (`restored`, `synchronised`).
    /// Recovery (`action` = `restored`) combines incremental chains, so a
    /// parent is no obstacle there; a passive node does not synchronise
    /// incremental backups yet.
    pub fn ensure_restorable(&self, server: &str, action: &'static str) -> Result<()> {
        self.ensure_restorable_with(server, action, false)
    }

    /// [`ensure_restorable`](Self::ensure_restorable), a tar-format backup
    /// accepted when `tar_ok`.
    pub fn ensure_restorable_with(
        &self,
        server: &str,
        action: &'static str,
        tar_ok: bool,
    ) -> Result<()> {
        let obstacle = if action == "restored" {
            self.restore_obstacle_with(tar_ok)
        } else {
            self.restore_obstacle()
        };
        match obstacle {
            None => Ok(()),
            Some(reason) => Err(crate::Error::BackupNotSupported {
                server: server.to_owned(),
                backup_id: self.backup_id().to_string(),
                action,
                reason,
            }),
        }
    }

    /// Barman's backup type label: `snapshot`, `rsync`, `incremental` or `full`.
    ///
    /// Barman records `local-rsync` backups with the mode `rsync-...`; our
    /// backups record `local-rsync-concurrent`, which is an rsync backup too.
    pub fn backup_type(&self) -> &'static str {
        let mode = self.mode().unwrap_or("");
        if mode.starts_with("snapshot") {
            "snapshot"
        } else if mode.starts_with("rsync") || mode.starts_with("local-rsync") {
            "rsync"
        } else if self.is_incremental() {
            "incremental"
        } else {
            "full"
        }
    }
}

/// Checks that `value`, if set, parses as `T` (a barman-wal name or LSN).
fn check_parses<T>(value: Option<&str>) -> Result<()>
where
    T: std::str::FromStr<Err = barman_wal::Error>,
{
    match value {
        Some(text) => text.parse::<T>().map(drop).map_err(Into::into),
        None => Ok(()),
    }
}
