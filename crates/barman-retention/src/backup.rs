//! The evaluator's own view of a backup: [`BackupSummary`] and its parts.
//!
//! These are deliberately small, plain types: the catalog (`barman-core`) builds
//! them from `backup.info` and `meta/<id>-keep`, and this crate never reads files.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Status of a backup, as written in `backup.info` (`status=DONE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupStatus {
    /// `DONE`: copy finished and every WAL it needs is archived.
    Done,
    /// `FAILED`: the backup failed and is not usable.
    Failed,
    /// `WAITING_FOR_WALS`: copy done, some WALs it needs are not archived yet.
    WaitingForWals,
    /// `STARTED`: the copy is under way (or was interrupted).
    Started,
    /// `EMPTY`: `backup.info` created, nothing copied yet.
    Empty,
    /// `SYNCING`: a passive node is copying the backup from its primary.
    Syncing,
}

impl BackupStatus {
    /// Every status, in Barman's lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Empty,
        Self::Started,
        Self::WaitingForWals,
        Self::Done,
        Self::Failed,
        Self::Syncing,
    ];

    /// The status as Barman writes it (`WAITING_FOR_WALS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::WaitingForWals => "WAITING_FOR_WALS",
            Self::Started => "STARTED",
            Self::Empty => "EMPTY",
            Self::Syncing => "SYNCING",
        }
    }

    /// WAITING_FOR_WALS or DONE: the copy is complete.
    pub fn is_copy_done(self) -> bool {
        matches!(self, Self::WaitingForWals | Self::Done)
    }

    /// STARTED, WAITING_FOR_WALS, DONE or SYNCING: the backup needs WAL archiving.
    pub fn is_archiving(self) -> bool {
        matches!(
            self,
            Self::Started | Self::WaitingForWals | Self::Done | Self::Syncing
        )
    }
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupStatus {
    type Err = Error;

    /// Parses the exact upper-case names Barman writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| Error::InvalidBackupStatus {
                value: s.to_owned(),
            })
    }
}

/// Target of a `barman keep` annotation (the content of `meta/<id>-keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepTarget {
    /// `full`: keep the backup and every WAL from it onwards (PITR stays possible).
    Full,
    /// `standalone`: keep the backup and only the WALs needed to make it consistent.
    Standalone,
}

impl KeepTarget {
    /// The target as written in the keep file and accepted by `barman keep --target`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Standalone => "standalone",
        }
    }
}

impl fmt::Display for KeepTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeepTarget {
    type Err = Error;

    /// Parses `full` or `standalone` (surrounding whitespace, such as the keep
    /// file's trailing newline, is ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "full" => Ok(Self::Full),
            "standalone" => Ok(Self::Standalone),
            _ => Err(Error::InvalidKeepTarget {
                value: s.to_owned(),
            }),
        }
    }
}

/// What retention needs to know about one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupSummary {
    /// The backup id (`20261122T041510`); ids sort chronologically as strings.
    pub id: String,
    /// `end_time` as seconds since the Unix epoch, if the backup recorded one.
    pub end_time: Option<i64>,
    /// The backup's status.
    pub status: BackupStatus,
    /// The keep annotation, if any.
    pub keep: Option<KeepTarget>,
    /// The parent backup for an incremental backup (`parent_backup_id`).
    pub parent_backup_id: Option<String>,
    /// `begin_wal`: the 24-hex name of the first WAL segment the backup needs.
    pub begin_wal: Option<String>,
    /// `end_wal`: the 24-hex name of the last WAL segment the backup needs.
    pub end_wal: Option<String>,
}

impl BackupSummary {
    /// A full (non-incremental) backup with no keep annotation and no end time.
    pub fn new(id: impl Into<String>, status: BackupStatus) -> Self {
        Self {
            id: id.into(),
            end_time: None,
            status,
            keep: None,
            parent_backup_id: None,
            begin_wal: None,
            end_wal: None,
        }
    }

    /// Sets `end_time` (seconds since the Unix epoch).
    #[must_use]
    pub fn end_time(mut self, epoch_secs: i64) -> Self {
        self.end_time = Some(epoch_secs);
        self
    }

    /// Sets the keep annotation.
    #[must_use]
    pub fn keep(mut self, target: KeepTarget) -> Self {
        self.keep = Some(target);
        self
    }

    /// Makes this an incremental backup of `parent`.
    #[must_use]
    pub fn parent(mut self, parent: impl Into<String>) -> Self {
        self.parent_backup_id = Some(parent.into());
        self
    }

    /// Sets `begin_wal` and `end_wal` (24-hex segment names, as in `backup.info`).
    #[must_use]
    pub fn wals(mut self, begin: impl Into<String>, end: impl Into<String>) -> Self {
        self.begin_wal = Some(begin.into());
        self.end_wal = Some(end.into());
        self
    }

    /// Whether this is an incremental backup (it has a parent).
    pub fn is_incremental(&self) -> bool {
        self.parent_backup_id.is_some()
    }

    /// The backup's timeline: the first 8 hex digits of `begin_wal` (of
    /// `end_wal` when there is no `begin_wal`). `None` when neither is set or
    /// the name does not start with 8 hex digits.
    ///
    /// Barman reads `timeline=` from `backup.info`; it is the timeline of
    /// `begin_wal`, since a backup spanning two timelines is marked FAILED.
    pub fn timeline(&self) -> Option<u32> {
        let name = self.begin_wal.as_deref().or(self.end_wal.as_deref())?;
        crate::wal_name::timeline_of(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_barman_names() {
        let names: Vec<String> = BackupStatus::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "EMPTY",
                "STARTED",
                "WAITING_FOR_WALS",
                "DONE",
                "FAILED",
                "SYNCING"
            ]
        );
        for status in BackupStatus::ALL {
            assert_eq!(status.as_str().parse::<BackupStatus>().unwrap(), status);
        }
    }

    #[test]
    fn refuses_unknown_or_lower_case_status() {
        for bad in ["done", "OK", "", "WAITING FOR WALS"] {
            let err = bad.parse::<BackupStatus>().unwrap_err();
            assert!(err.to_string().contains("backup status"), "{err}");
        }
    }

    #[test]
    fn keep_target_reads_the_keep_file_content() {
        assert_eq!(
            "standalone".parse::<KeepTarget>().unwrap(),
            KeepTarget::Standalone
        );
        assert_eq!("full\n".parse::<KeepTarget>().unwrap(), KeepTarget::Full);
        assert_eq!(KeepTarget::Standalone.to_string(), "standalone");
        assert!("FULL".parse::<KeepTarget>().is_err());
        assert!("".parse::<KeepTarget>().is_err());
    }

    #[test]
    fn builder_sets_fields() {
        let b = BackupSummary::new("20240102T000000", BackupStatus::Done)
            .end_time(1_700_000_000)
            .keep(KeepTarget::Full)
            .parent("20240101T000000")
            .wals("00000002000000000000000A", "00000002000000000000000C");
        assert_eq!(b.end_time, Some(1_700_000_000));
        assert_eq!(b.begin_wal.as_deref(), Some("00000002000000000000000A"));
        assert_eq!(b.end_wal.as_deref(), Some("00000002000000000000000C"));
        assert_eq!(b.timeline(), Some(2));
        assert_eq!(b.keep, Some(KeepTarget::Full));
        assert!(b.is_incremental());
        assert!(!BackupSummary::new("x", BackupStatus::Failed).is_incremental());
    }

    #[test]
    fn timeline_is_the_first_eight_hex_digits() {
        let mut b = BackupSummary::new("x", BackupStatus::Started);
        assert_eq!(b.timeline(), None);
        b.end_wal = Some("0000000A0000000000000003".into());
        assert_eq!(b.timeline(), Some(10), "falls back to end_wal");
        b.begin_wal = Some("000000FF0000000000000001".into());
        assert_eq!(b.timeline(), Some(255));
        b.begin_wal = Some("garbage".into());
        assert_eq!(b.timeline(), None);
    }
}
