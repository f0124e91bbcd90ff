//! Parsing and printing of Barman's retention policy syntax.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Unit of a recovery window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowUnit {
    /// Days.
    Days,
    /// Weeks (7 days).
    Weeks,
    /// Months (31 days, as Barman counts them).
    Months,
}

impl WindowUnit {
    /// Number of days in one unit.
    pub fn days(self) -> u32 {
        match self {
            Self::Days => 1,
            Self::Weeks => 7,
            Self::Months => 31,
        }
    }
}

/// A retention policy: `REDUNDANCY n` or `RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionPolicy {
    /// Keep the newest `n` full backups.
    Redundancy(u32),
    /// Keep what is needed to recover to any point in the window.
    RecoveryWindow {
        /// Number of units.
        count: u32,
        /// The unit.
        unit: WindowUnit,
    },
}

/// Seconds in a day, as Barman's `timedelta(days=1)` counts them.
const SECS_PER_DAY: i64 = 86_400;

impl RetentionPolicy {
    /// The length of a recovery window in days (`None` for `REDUNDANCY`).
    ///
    /// A month counts as 31 days, as in Barman.
    pub fn window_days(&self) -> Option<u64> {
        match self {
            Self::Redundancy(_) => None,
            Self::RecoveryWindow { count, unit } => {
                Some(u64::from(*count) * u64::from(unit.days()))
            }
        }
    }

    /// The point of recoverability (PoR) of a recovery window: `now` minus the
    /// window, in seconds since the Unix epoch. `None` for `REDUNDANCY`.
    ///
    /// The newest DONE backup that ended before this instant is the one needed
    /// to recover to it; older backups fall outside the policy.
    ///
    /// Barman subtracts the window from the local wall-clock time, so when the
    /// window spans a daylight-saving change its PoR differs from this one
    /// (which counts 86 400 s per day) by the size of the shift.
    pub fn point_of_recoverability(&self, now_epoch_secs: i64) -> Option<i64> {
        match self {
            Self::Redundancy(_) => None,
            Self::RecoveryWindow { count, unit } => {
                Some(window_start(*count, *unit, now_epoch_secs))
            }
        }
    }
}

/// `now` minus `count` units, saturating at `i64::MIN`.
pub(crate) fn window_start(count: u32, unit: WindowUnit, now_epoch_secs: i64) -> i64 {
    let days = i64::from(count) * i64::from(unit.days());
    now_epoch_secs.saturating_sub(days.saturating_mul(SECS_PER_DAY))
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redundancy(n) => write!(f, "REDUNDANCY {n}"),
            Self::RecoveryWindow { count, unit } => {
                let u = match unit {
                    WindowUnit::Days => "DAYS",
                    WindowUnit::Weeks => "WEEKS",
                    WindowUnit::Months => "MONTHS",
                };
                write!(f, "RECOVERY WINDOW OF {count} {u}")
            }
        }
    }
}

impl FromStr for RetentionPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::InvalidPolicy {
            value: s.to_owned(),
        };
        let upper = s.trim().to_ascii_uppercase();
        let words: Vec<&str> = upper.split_whitespace().collect();
        match words.as_slice() {
            ["REDUNDANCY", n] => {
                let n: u32 = n.parse().map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                Ok(Self::Redundancy(n))
            }
            ["RECOVERY", "WINDOW", "OF", n, unit] => {
                let count: u32 = n.parse().map_err(|_| bad())?;
                if count == 0 {
                    return Err(bad());
                }
                let unit = match *unit {
                    "DAY" | "DAYS" | "D" => WindowUnit::Days,
                    "WEEK" | "WEEKS" | "W" => WindowUnit::Weeks,
                    "MONTH" | "MONTHS" | "M" => WindowUnit::Months,
                    _ => return Err(bad()),
                };
                Ok(Self::RecoveryWindow { count, unit })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_barman_syntax() {
        for (input, printed) in [
            ("REDUNDANCY 2", "REDUNDANCY 2"),
            ("redundancy 7", "REDUNDANCY 7"),
            ("RECOVERY WINDOW OF 4 WEEKS", "RECOVERY WINDOW OF 4 WEEKS"),
            ("recovery window of 1 day", "RECOVERY WINDOW OF 1 DAYS"),
            ("RECOVERY WINDOW OF 3 MONTHS", "RECOVERY WINDOW OF 3 MONTHS"),
        ] {
            let p: RetentionPolicy = input.parse().unwrap();
            assert_eq!(p.to_string(), printed);
            assert_eq!(printed.parse::<RetentionPolicy>().unwrap(), p);
        }
    }

    #[test]
    fn point_of_recoverability_subtracts_the_window() {
        let now = 1_800_000_000;
        let day = 86_400;
        for (policy, expected) in [
            ("RECOVERY WINDOW OF 1 DAYS", Some(now - day)),
            ("RECOVERY WINDOW OF 2 WEEKS", Some(now - 14 * day)),
            ("RECOVERY WINDOW OF 3 MONTHS", Some(now - 93 * day)),
            ("REDUNDANCY 3", None),
        ] {
            let p: RetentionPolicy = policy.parse().unwrap();
            assert_eq!(p.point_of_recoverability(now), expected, "{policy}");
        }
    }

    #[test]
    fn point_of_recoverability_saturates_instead_of_overflowing() {
        let p = RetentionPolicy::RecoveryWindow {
            count: u32::MAX,
            unit: WindowUnit::Months,
        };
        assert_eq!(p.window_days(), Some(u64::from(u32::MAX) * 31));
        assert_eq!(p.point_of_recoverability(i64::MIN + 5), Some(i64::MIN));
        let por = p.point_of_recoverability(0).unwrap();
        assert_eq!(por, -(i64::from(u32::MAX) * 31 * 86_400));
    }

    #[test]
    fn refuses_bad_policies() {
        for bad in [
            "REDUNDANCY x",
            "REDUNDANCY",
            "REDUNDANCY 0",
            "RECOVERY WINDOW 4 WEEKS",
            "KEEP 3",
            "",
        ] {
            let err = bad.parse::<RetentionPolicy>().unwrap_err();
            assert!(err.to_string().contains("REDUNDANCY <n>"), "{err}");
        }
    }
}
