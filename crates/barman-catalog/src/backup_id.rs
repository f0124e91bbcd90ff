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

/// Status of a backup (BARMAN-BEHAVIOUR.md §5.1); shared with the retention evaluator.
pub use barman_retention::BackupStatus;
