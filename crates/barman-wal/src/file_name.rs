//! The WAL file names Barman archives: segments, `.partial`, `.history` and
//! `.backup` files.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::lsn::parse_hex_u32;
use crate::segment::SegmentName;
use crate::timeline::TimelineId;

/// A file name Barman accepts in its WAL archive.
///
/// [`FromStr`] accepts exactly the names of Barman's `_xlog_re`:
/// `T{8}L{8}S{8}`, optionally followed by `.XXXXXXXX.backup` or `.partial`,
/// or `T{8}.history`, hex digits of either case. Unlike Barman it also
/// refuses timeline 0, which PostgreSQL never uses.
/// [`Display`](fmt::Display) writes the canonical upper-case name, and
/// [`Ord`] is the byte order of those canonical names — the order Barman
/// sorts and compares them in.
///
/// ```
/// use barman_wal::WalFileName;
///
/// let f: WalFileName = "000000010000000000000003.00000028.backup".parse()?;
/// assert!(f.is_backup_label());
/// assert_eq!(f.segment().unwrap().to_string(), "000000010000000000000003");
/// assert_eq!(f.archive_subdir().as_deref(), Some("0000000100000000"));
///
/// let h: WalFileName = "00000002.history".parse()?;
/// assert_eq!(h.archive_subdir(), None); // stored at the top of wals/
/// # Ok::<(), barman_wal::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalFileName {
    /// A complete WAL segment, `000000010000000000000003`.
    Segment(SegmentName),
    /// A partial segment, `000000010000000000000003.partial` (from
    /// `pg_receivewal` or the end of archive recovery).
    Partial(SegmentName),
    /// A timeline history file, `00000002.history`.
    History(TimelineId),
    /// A backup history ("backup label") file,
    /// `000000010000000000000003.00000028.backup`.
    BackupLabel {
        /// The segment the backup started in.
        segment: SegmentName,
        /// The start position's offset within that segment.
        offset: u32,
    },
}

impl WalFileName {
    /// The segment this file belongs to; `None` for a history file.
    ///
    /// This is the 24-character prefix Barman uses for range comparisons.
    pub const fn segment(&self) -> Option<SegmentName> {
        match *self {
            WalFileName::Segment(s)
            | WalFileName::Partial(s)
            | WalFileName::BackupLabel { segment: s, .. } => Some(s),
            WalFileName::History(_) => None,
        }
    }

    /// The timeline in the name.
    pub const fn timeline(&self) -> TimelineId {
        match *self {
            WalFileName::Segment(s)
            | WalFileName::Partial(s)
            | WalFileName::BackupLabel { segment: s, .. } => s.timeline(),
            WalFileName::History(t) => t,
        }
    }

    /// A plain 24-hex-digit segment (Barman's `is_wal_file`).
    pub const fn is_segment(&self) -> bool {
        matches!(self, WalFileName::Segment(_))
    }

    /// A `.partial` segment.
    pub const fn is_partial(&self) -> bool {
        matches!(self, WalFileName::Partial(_))
    }

    /// A `.history` file.
    pub const fn is_history(&self) -> bool {
        matches!(self, WalFileName::History(_))
    }

    /// A `.backup` file.
    pub const fn is_backup_label(&self) -> bool {
        matches!(self, WalFileName::BackupLabel { .. })
    }

    /// The hash directory under Barman's `wals/` holding this file (the first
    /// 16 characters of the name); `None` for history files, which live at
    /// the top of `wals/`.
    pub fn archive_subdir(&self) -> Option<String> {
        self.segment().map(|s| s.hash_dir())
    }

    /// A key whose order is the order of the canonical names as strings.
    ///
    /// After the 8-digit timeline, `.history` comes first (`.` sorts before
    /// hex digits); then log and segment; then the plain segment (shortest),
    /// `.XXXXXXXX.backup` (`0`-`F` sort before `p`), `.partial`.
    fn order_key(&self) -> (u32, u8, u32, u32, u8, u32) {
        match *self {
            WalFileName::History(t) => (t.get(), 0, 0, 0, 0, 0),
            WalFileName::Segment(s) => (s.timeline().get(), 1, s.log(), s.seg(), 0, 0),
            WalFileName::BackupLabel { segment: s, offset } => {
                (s.timeline().get(), 1, s.log(), s.seg(), 1, offset)
            }
            WalFileName::Partial(s) => (s.timeline().get(), 1, s.log(), s.seg(), 2, 0),
        }
    }
}

impl Ord for WalFileName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

impl PartialOrd for WalFileName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<SegmentName> for WalFileName {
    fn from(segment: SegmentName) -> Self {
        WalFileName::Segment(segment)
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalFileName::Segment(s) => write!(f, "{s}"),
            WalFileName::Partial(s) => write!(f, "{s}.partial"),
            WalFileName::History(t) => write!(f, "{:08X}.history", t.get()),
            WalFileName::BackupLabel { segment, offset } => {
                write!(f, "{segment}.{offset:08X}.backup")
            }
        }
    }
}

impl FromStr for WalFileName {
    type Err = Error;

    fn from_str(s: &str) -> Result<WalFileName> {
        let invalid = |reason| Error::InvalidWalFileName {
            input: s.to_owned(),
            reason,
        };
        if let Some(tli) = s.strip_suffix(".history") {
            if tli.len() != 8 {
                return Err(invalid("expected 8 hexadecimal digits before .history"));
            }
            let id = parse_hex_u32(tli)
                .ok_or_else(|| invalid("expected 8 hexadecimal digits before .history"))?;
            let tli = TimelineId::new(id).map_err(|_| invalid("timeline 0 is not valid"))?;
            return Ok(WalFileName::History(tli));
        }
        let segment = SegmentName::parse_prefix(s).map_err(invalid)?;
        // `parse_prefix` checked 24 ASCII hex digits, so this is a char boundary.
        match &s[SegmentName::LEN..] {
            "" => Ok(WalFileName::Segment(segment)),
            ".partial" => Ok(WalFileName::Partial(segment)),
            rest => {
                let offset = rest
                    .strip_prefix('.')
                    .and_then(|r| r.strip_suffix(".backup"))
                    .filter(|hex| hex.len() == 8)
                    .and_then(parse_hex_u32)
                    .ok_or_else(|| {
                        invalid("expected nothing, .partial or .XXXXXXXX.backup after the segment")
                    })?;
                Ok(WalFileName::BackupLabel { segment, offset })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> WalFileName {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_kind() {
        let seg: SegmentName = "000000010000000000000003".parse().unwrap();
        assert_eq!(parse("000000010000000000000003"), WalFileName::Segment(seg));
        assert_eq!(
            parse("000000010000000000000003.partial"),
            WalFileName::Partial(seg)
        );
        assert_eq!(
            parse("000000010000000000000003.00000028.backup"),
            WalFileName::BackupLabel {
                segment: seg,
                offset: 0x28
            }
        );
        assert_eq!(
            parse("0000000a.history"),
            WalFileName::History(TimelineId::new(10).unwrap())
        );
    }

    #[test]
    fn displays_canonical_upper_case() {
        for (input, canonical) in [
            ("0000000a0000000b000000cc", "0000000A0000000B000000CC"),
            (
                "0000000a0000000b000000cc.partial",
                "0000000A0000000B000000CC.partial",
            ),
            ("0000000a.history", "0000000A.history"),
            (
                "000000010000000000000003.0000002a.backup",
                "000000010000000000000003.0000002A.backup",
            ),
        ] {
            assert_eq!(parse(input).to_string(), canonical);
        }
    }

    #[test]
    fn rejects_names_outside_barmans_regex() {
        for bad in [
            "",
            "00000001",
            "00000001.history.gz",
            "0000001.history",
            "000000001.history",
            "00000000.history",
            "000000010000000000000003.gz",
            "000000010000000000000003.PARTIAL",
            "000000010000000000000003.partial.tmp",
            "000000010000000000000003.0000028.backup",
            "000000010000000000000003.00000028.backu",
            "000000010000000000000003.+0000028.backup",
            "000000010000000000000003.00000028",
            "000000010000000000000003.00000028.backup.gz",
            "0000000100000000000000031",
            "00000001000000000000003",
            "000000000000000000000003",
            "x00000010000000000000003",
            "000000010000000000000003\n",
        ] {
            let err = bad.parse::<WalFileName>().unwrap_err().to_string();
            assert!(err.contains("invalid WAL file name"), "{err}");
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn predicates() {
        let seg = parse("000000010000000000000003");
        assert!(
            seg.is_segment() && !seg.is_partial() && !seg.is_history() && !seg.is_backup_label()
        );
        assert!(parse("000000010000000000000003.partial").is_partial());
        assert!(parse("00000001.history").is_history());
        assert!(parse("000000010000000000000003.00000028.backup").is_backup_label());
        assert_eq!(parse("00000003.history").timeline().get(), 3);
        assert_eq!(
            parse("000000030000000000000001.partial").timeline().get(),
            3
        );
        assert_eq!(parse("00000003.history").segment(), None);
    }

    #[test]
    fn archive_subdir() {
        assert_eq!(
            parse("0000000100000002000000FF.partial")
                .archive_subdir()
                .as_deref(),
            Some("0000000100000002")
        );
        assert_eq!(parse("00000001.history").archive_subdir(), None);
    }

    #[test]
    fn order_matches_string_order() {
        let mut names: Vec<WalFileName> = [
            "000000010000000000000003.partial",
            "00000002.history",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000003",
            "00000001.history",
            "000000010000000000000002",
            "000000010000000000000003.00000020.backup",
            "000000020000000000000001",
        ]
        .iter()
        .map(|s| parse(s))
        .collect();
        names.sort();
        let got: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut expected = got.clone();
        expected.sort();
        assert_eq!(got, expected);
        assert_eq!(got[0], "00000001.history");
    }
}
