//! [`RetentionWarning`]: the warnings Barman's retention report logs.

use std::fmt;

/// A warning Barman logs (at WARNING level) while computing a retention
/// report, from `retention_policies.py`.
///
/// [`Display`](fmt::Display) prints Barman's text without the server name,
/// which this crate does not know; [`message`](Self::message) prints it with
/// one. A point of recoverability is printed in UTC as Python prints an aware
/// `datetime` (`2027-01-08 08:00:00+00:00`); Barman prints local time.
///
/// Barman also logs, at INFO level, "Keeping obsolete backup … due to keep
/// status" for a keep-annotated backup older than the recovery window and
/// "Reporting backup … as OBSOLETE": those are not warnings and are not
/// collected; the [`Reason`](crate::Reason) of each decision carries the same
/// facts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetentionWarning {
    /// `REDUNDANCY n` with `n < minimum_redundancy`: Barman enforces the
    /// minimum. Logged at every evaluation, whatever the backups.
    RedundancyBelowMinimum {
        /// The policy's `n`.
        redundancy: u32,
        /// `minimum_redundancy`, which is applied instead.
        minimum_redundancy: u32,
    },
    /// `RECOVERY WINDOW`: a backup older than the one needed for the point of
    /// recoverability is kept (`OBSOLETE*`) because fewer than
    /// `minimum_redundancy` backups would remain. One per such backup.
    KeptForMinimumRedundancy {
        /// The backup kept.
        backup_id: String,
        /// The point of recoverability, seconds since the Unix epoch.
        point_of_recoverability: i64,
        /// `minimum_redundancy`.
        minimum_redundancy: u32,
    },
}

impl RetentionWarning {
    /// Barman's text with the server name, as it appears in Barman's log.
    pub fn message(&self, server: &str) -> String {
        match self {
            Self::RedundancyBelowMinimum { .. } => self.to_string(),
            Self::KeptForMinimumRedundancy {
                backup_id,
                point_of_recoverability,
                minimum_redundancy,
            } => format!(
                "Keeping obsolete backup {backup_id} for server {server} (older than {}) \
                 due to minimum redundancy requirements ({minimum_redundancy})",
                PythonUtc(*point_of_recoverability)
            ),
        }
    }
}

impl fmt::Display for RetentionWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RedundancyBelowMinimum {
                redundancy,
                minimum_redundancy,
            } => write!(
                f,
                "Retention policy redundancy ({redundancy}) is lower than the required \
                 minimum redundancy ({minimum_redundancy}). Enforce {minimum_redundancy}."
            ),
            Self::KeptForMinimumRedundancy {
                backup_id,
                point_of_recoverability,
                minimum_redundancy,
            } => write!(
                f,
                "Keeping obsolete backup {backup_id} (older than {}) due to minimum \
                 redundancy requirements ({minimum_redundancy})",
                PythonUtc(*point_of_recoverability)
            ),
        }
    }
}

/// Seconds since the epoch printed as Python's `str()` of a UTC-aware
/// `datetime` with no microseconds: `YYYY-MM-DD HH:MM:SS+00:00`.
struct PythonUtc(i64);

impl fmt::Display for PythonUtc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}+00:00",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_barman() {
        let w = RetentionWarning::RedundancyBelowMinimum {
            redundancy: 1,
            minimum_redundancy: 3,
        };
        assert_eq!(
            w.to_string(),
            "Retention policy redundancy (1) is lower than the required minimum redundancy (3). Enforce 3."
        );
        assert_eq!(w.message("pg"), w.to_string());

        let w = RetentionWarning::KeptForMinimumRedundancy {
            backup_id: "20260101T000000".into(),
            // 2027-01-15T08:00:00Z
            point_of_recoverability: 1_800_000_000 - 7 * 86_400,
            minimum_redundancy: 4,
        };
        assert_eq!(
            w.message("pg"),
            "Keeping obsolete backup 20260101T000000 for server pg (older than 2027-01-08 08:00:00+00:00) due to minimum redundancy requirements (4)"
        );
        assert_eq!(
            w.to_string(),
            "Keeping obsolete backup 20260101T000000 (older than 2027-01-08 08:00:00+00:00) due to minimum redundancy requirements (4)"
        );
    }

    #[test]
    fn dates_print_in_utc() {
        for (epoch, text) in [
            (0, "1970-01-01 00:00:00+00:00"),
            (951_782_400, "2000-02-29 00:00:00+00:00"),
            (1_709_251_199, "2024-02-29 23:59:59+00:00"),
            (-1, "1969-12-31 23:59:59+00:00"),
            (253_402_300_799, "9999-12-31 23:59:59+00:00"),
        ] {
            assert_eq!(PythonUtc(epoch).to_string(), text, "{epoch}");
        }
    }
}
