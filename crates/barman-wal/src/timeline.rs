//! Timeline IDs.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::lsn::parse_hex_u32;

/// A PostgreSQL timeline ID: a positive 32-bit number (0 is invalid).
///
/// The text form ([`FromStr`]/[`Display`](fmt::Display)) is decimal, as in
/// `backup.info` (`timeline=1`) and history files; WAL file names carry it as
/// 8 upper-case hex digits ([`TimelineId::to_hex`], [`TimelineId::from_hex`]).
///
/// ```
/// use barman_wal::TimelineId;
///
/// let tli: TimelineId = "26".parse()?;
/// assert_eq!(tli.get(), 26);
/// assert_eq!(tli.to_hex(), "0000001A");
/// assert!(TimelineId::new(0).is_err());
/// # Ok::<(), barman_wal::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimelineId(NonZeroU32);

impl TimelineId {
    /// Timeline 1, the timeline of a freshly initialised cluster.
    pub const ONE: TimelineId = TimelineId(NonZeroU32::MIN);

    /// A timeline ID; fails for 0.
    pub fn new(id: u32) -> Result<TimelineId> {
        NonZeroU32::new(id)
            .map(TimelineId)
            .ok_or_else(|| Error::InvalidTimeline {
                input: id.to_string(),
                reason: "timeline 0 is not valid",
            })
    }

    /// The numeric value.
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// The 8-digit upper-case hex form used in WAL file names (`00000001`).
    pub fn to_hex(self) -> String {
        format!("{:08X}", self.get())
    }

    /// Parses exactly 8 hex digits (either case), as in WAL file names.
    pub fn from_hex(s: &str) -> Result<TimelineId> {
        if s.len() != 8 {
            return Err(Error::InvalidTimeline {
                input: s.to_owned(),
                reason: "expected 8 hexadecimal digits",
            });
        }
        let id = parse_hex_u32(s).ok_or_else(|| Error::InvalidTimeline {
            input: s.to_owned(),
            reason: "expected 8 hexadecimal digits",
        })?;
        TimelineId::new(id).map_err(|_| Error::InvalidTimeline {
            input: s.to_owned(),
            reason: "timeline 0 is not valid",
        })
    }
}

impl fmt::Display for TimelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl FromStr for TimelineId {
    type Err = Error;

    /// Parses a decimal timeline ID (ASCII digits only; no sign, no spaces).
    fn from_str(s: &str) -> Result<TimelineId> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidTimeline {
                input: s.to_owned(),
                reason: "expected a decimal number",
            });
        }
        let id: u32 = s.parse().map_err(|_| Error::InvalidTimeline {
            input: s.to_owned(),
            reason: "out of range (maximum 4294967295)",
        })?;
        TimelineId::new(id).map_err(|_| Error::InvalidTimeline {
            input: s.to_owned(),
            reason: "timeline 0 is not valid",
        })
    }
}

impl TryFrom<u32> for TimelineId {
    type Error = Error;

    fn try_from(id: u32) -> Result<TimelineId> {
        TimelineId::new(id)
    }
}

impl From<TimelineId> for u32 {
    fn from(tli: TimelineId) -> u32 {
        tli.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rejects_zero() {
        assert!(TimelineId::new(0).is_err());
        assert_eq!(TimelineId::new(1).unwrap(), TimelineId::ONE);
        assert_eq!(TimelineId::new(u32::MAX).unwrap().get(), u32::MAX);
    }

    #[test]
    fn decimal_text() {
        assert_eq!("1".parse::<TimelineId>().unwrap().get(), 1);
        assert_eq!("4294967295".parse::<TimelineId>().unwrap().get(), u32::MAX);
        assert_eq!(TimelineId::new(26).unwrap().to_string(), "26");
        for bad in ["", "0", "-1", "+1", " 1", "1a", "4294967296", "0x1"] {
            let err = bad.parse::<TimelineId>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn hex_form() {
        let tli = TimelineId::new(0x1A).unwrap();
        assert_eq!(tli.to_hex(), "0000001A");
        assert_eq!(TimelineId::from_hex("0000001a").unwrap(), tli);
        assert!(TimelineId::from_hex("00000000").is_err());
        assert!(TimelineId::from_hex("1A").is_err());
        assert!(TimelineId::from_hex("+000001A").is_err());
    }

    #[test]
    fn ordering_is_numeric() {
        assert!(TimelineId::new(2).unwrap() < TimelineId::new(10).unwrap());
    }
}
