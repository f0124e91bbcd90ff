//! Backup identifiers (`YYYYMMDDTHHMMSS`) and backup statuses.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A backup id: the local time the backup started, `YYYYMMDDTHHMMSS`.
///
/// Ordering is the string order, which is chronological order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId(String);

impl BackupId {
    /// The id of a backup started at `time` (in `time`'s own time zone).
    pub fn from_timestamp(time: &jiff::Zoned) -> Self {
        Self(time.strftime("%Y%m%dT%H%M%S").to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The civil date-time the id encodes.
    pub fn datetime(&self) -> jiff::civil::DateTime {
        // Validated on construction, so parsing cannot fail.
        jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S", &self.0).unwrap_or_default()
    }
}

impl FromStr for BackupId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidCatalogValue {
            what: "backup id",
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let b = s.as_bytes();
        let shape_ok = b.len() == 15
            && b[8] == b'T'
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[9..].iter().all(u8::is_ascii_digit);
        if !shape_ok {
            return Err(invalid("expected YYYYMMDDTHHMMSS"));
        }
        jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S", s)
            .map_err(|_| invalid("not a valid date and time"))?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BackupId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Status of a backup (BARMAN-BEHAVIOUR.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupStatus {
    /// backup.info created, nothing copied yet.
    Empty,
    /// The copy has started.
    Started,
    /// Copy and stop-backup done; waiting for the WALs up to `end_wal`.
    WaitingForWals,
    /// Complete.
    Done,
    /// Failed (see `error`).
    Failed,
    /// Passive node: being copied from the primary.
    Syncing,
}

impl BackupStatus {
    /// Every status, in Barman's `STATUS_ALL` order.
    pub const ALL: [Self; 6] = [
        Self::Empty,
        Self::Started,
        Self::WaitingForWals,
        Self::Done,
        Self::Syncing,
        Self::Failed,
    ];

    /// Barman's spelling (`WAITING_FOR_WALS`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "EMPTY",
            Self::Started => "STARTED",
            Self::WaitingForWals => "WAITING_FOR_WALS",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Syncing => "SYNCING",
        }
    }

    /// WAITING_FOR_WALS or DONE (the copy is complete).
    pub fn is_copy_done(self) -> bool {
        matches!(self, Self::WaitingForWals | Self::Done)
    }

    /// STARTED, WAITING_FOR_WALS, DONE or SYNCING (the backup needs WAL archiving).
    pub fn is_archiving(self) -> bool {
        matches!(
            self,
            Self::Started | Self::WaitingForWals | Self::Done | Self::Syncing
        )
    }
}

impl FromStr for BackupStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::InvalidCatalogValue {
                what: "backup status",
                value: s.to_owned(),
                reason: "expected EMPTY, STARTED, WAITING_FOR_WALS, DONE, FAILED or SYNCING".into(),
            })
    }
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
