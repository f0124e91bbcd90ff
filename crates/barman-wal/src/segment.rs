//! WAL segment names (`TTTTTTTTLLLLLLLLSSSSSSSS`) and their arithmetic.

mod range;

use std::fmt;
use std::str::FromStr;

pub use crate::segment_size::WalSegmentSize;
pub use range::SegmentRange;

use crate::error::{Error, Result};
use crate::lsn::{Lsn, parse_hex_u32};
use crate::timeline::TimelineId;

/// The name of a WAL segment file: timeline, log (`xlogid`, the high 32 bits
/// of its LSNs) and segment number within the log, each as 8 hex digits.
///
/// [`FromStr`] accepts exactly 24 hex digits of either case;
/// [`Display`](fmt::Display) writes upper case. [`Ord`] is the order of the
/// canonical 24-character string, which is how Barman compares names
/// (timeline first, then log, then segment).
///
/// Arithmetic follows Barman (`xlog.py`): segment numbers run from 0 to
/// [`WalSegmentSize::segments_per_log`] inclusive and then wrap to segment 0
/// of the next log; the timeline never changes.
///
/// ```
/// use barman_wal::{Lsn, SegmentName, TimelineId, WalSegmentSize};
///
/// let size = WalSegmentSize::DEFAULT;
/// let name: SegmentName = "0000000100000000000000FF".parse()?;
/// assert_eq!(name.next(size).to_string(), "000000010000000100000000");
///
/// let lsn: Lsn = "0/3000028".parse()?;
/// let seg = SegmentName::from_lsn(TimelineId::ONE, lsn, size);
/// assert_eq!(seg.to_string(), "000000010000000000000003");
/// assert_eq!(seg.hash_dir(), "0000000100000000");
/// # Ok::<(), barman_wal::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    // Field order matters: the derived Ord is the canonical string order.
    timeline: TimelineId,
    log: u32,
    seg: u32,
}

impl SegmentName {
    /// Length of a segment name (24).
    pub const LEN: usize = 24;

    /// A segment name from its three parts.
    ///
    /// `seg` is not checked against a segment size (names do not carry it);
    /// PostgreSQL never produces `seg > size.segments_per_log()`.
    pub const fn new(timeline: TimelineId, log: u32, seg: u32) -> SegmentName {
        SegmentName { timeline, log, seg }
    }

    /// The timeline.
    pub const fn timeline(&self) -> TimelineId {
        self.timeline
    }

    /// The log number (high 32 bits of the segment's LSNs).
    pub const fn log(&self) -> u32 {
        self.log
    }

    /// The segment number within the log.
    pub const fn seg(&self) -> u32 {
        self.seg
    }

    /// The segment on `timeline` that contains `lsn`.
    pub const fn from_lsn(timeline: TimelineId, lsn: Lsn, size: WalSegmentSize) -> SegmentName {
        // Barman: seg = (lsn & (seg_size * segments_per_log)) / seg_size, which
        // for a power-of-two size is the low 32 bits divided by the size.
        let seg = (lsn.low() as u64) / size.bytes();
        #[expect(
            clippy::cast_possible_truncation,
            reason = "low 32 bits / size fits in u32"
        )]
        SegmentName {
            timeline,
            log: lsn.high(),
            seg: seg as u32,
        }
    }

    /// The LSN of the first byte of this segment.
    ///
    /// For a name whose `seg` exceeds `size.segments_per_log()` (never written
    /// by PostgreSQL) the result is `(log << 32) + seg * size`, wrapping.
    pub const fn start_lsn(&self, size: WalSegmentSize) -> Lsn {
        let base = (self.log as u64) << 32;
        Lsn(base.wrapping_add(self.seg as u64 * size.bytes()))
    }

    /// The LSN just past the last byte of this segment (the next segment's
    /// start), or `None` at the very end of the WAL address space.
    pub const fn end_lsn(&self, size: WalSegmentSize) -> Option<Lsn> {
        self.start_lsn(size).checked_add(size.bytes())
    }

    /// The next segment, or `None` after the last possible one
    /// (log `FFFFFFFF`, last segment).
    pub const fn checked_next(&self, size: WalSegmentSize) -> Option<SegmentName> {
        // Barman's generator: seg += 1; if seg > segments_per_log: wrap.
        if (self.seg as u64) < size.segments_per_log() {
            Some(SegmentName {
                seg: self.seg + 1,
                ..*self
            })
        } else if self.log < u32::MAX {
            Some(SegmentName {
                log: self.log + 1,
                seg: 0,
                ..*self
            })
        } else {
            None
        }
    }

    /// The next segment, wrapping to segment 0 of the next log after
    /// segment `size.segments_per_log()`.
    ///
    /// After the last possible segment (log `FFFFFFFF`) it wraps to log 0;
    /// use [`SegmentName::checked_next`] to detect that.
    #[must_use]
    pub const fn next(&self, size: WalSegmentSize) -> SegmentName {
        match self.checked_next(size) {
            Some(next) => next,
            None => SegmentName {
                log: 0,
                seg: 0,
                ..*self
            },
        }
    }

    /// The previous segment, or `None` for the first one (`log 0, seg 0`).
    ///
    /// Segment 0 of a log is preceded by segment `size.segments_per_log()` of
    /// the previous log, so `prev` is the inverse of [`SegmentName::next`].
    pub const fn prev(&self, size: WalSegmentSize) -> Option<SegmentName> {
        if self.seg > 0 {
            Some(SegmentName {
                seg: self.seg - 1,
                ..*self
            })
        } else if self.log > 0 {
            #[expect(clippy::cast_possible_truncation, reason = "at most 0xFFF")]
            let last = size.segments_per_log() as u32;
            Some(SegmentName {
                log: self.log - 1,
                seg: last,
                ..*self
            })
        } else {
            None
        }
    }

    /// The hash directory of this segment in Barman's `wals/`: the first 16
    /// characters of the name (timeline and log).
    pub fn hash_dir(&self) -> String {
        format!("{:08X}{:08X}", self.timeline.get(), self.log)
    }

    /// The segments from `begin` to `end` inclusive, as Barman's
    /// `generate_segment_names`.
    ///
    /// Empty if `end < begin` or if the two names are on different timelines
    /// (Barman refuses such a range; callers that must report it should check
    /// the timelines first).
    pub fn range(begin: &SegmentName, end: &SegmentName, size: WalSegmentSize) -> SegmentRange {
        SegmentRange::new(*begin, *end, size)
    }

    /// Same as [`SegmentName::range`]: `begin..=end`.
    pub fn range_inclusive(
        begin: &SegmentName,
        end: &SegmentName,
        size: WalSegmentSize,
    ) -> SegmentRange {
        SegmentRange::new(*begin, *end, size)
    }

    /// Parses the 24-hex-digit segment name at the start of `s` (the rest is
    /// left to the caller). Shared with `file_name`.
    pub(crate) fn parse_prefix(s: &str) -> std::result::Result<SegmentName, &'static str> {
        let bytes = s.as_bytes();
        if bytes.len() < Self::LEN || !bytes[..Self::LEN].iter().all(u8::is_ascii_hexdigit) {
            return Err("expected 24 hexadecimal digits");
        }
        let part = |range: std::ops::Range<usize>| parse_hex_u32(&s[range]);
        let (Some(tli), Some(log), Some(seg)) = (part(0..8), part(8..16), part(16..24)) else {
            return Err("expected 24 hexadecimal digits");
        };
        let timeline = TimelineId::new(tli).map_err(|_| "timeline 0 is not valid")?;
        Ok(SegmentName { timeline, log, seg })
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:08X}{:08X}{:08X}",
            self.timeline.get(),
            self.log,
            self.seg
        )
    }
}

impl FromStr for SegmentName {
    type Err = Error;

    fn from_str(s: &str) -> Result<SegmentName> {
        let invalid = |reason| Error::InvalidSegmentName {
            input: s.to_owned(),
            reason,
        };
        if s.len() != Self::LEN {
            return Err(invalid("expected 24 hexadecimal digits"));
        }
        SegmentName::parse_prefix(s).map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SegmentName {
        s.parse().unwrap()
    }

    fn size(bytes: u64) -> WalSegmentSize {
        WalSegmentSize::new(bytes).unwrap()
    }

    #[test]
    fn parse_and_display() {
        let n = name("0000000A0000001b000000fe");
        assert_eq!((n.timeline().get(), n.log(), n.seg()), (10, 0x1B, 0xFE));
        assert_eq!(n.to_string(), "0000000A0000001B000000FE");
    }

    #[test]
    fn parse_rejects() {
        for bad in [
            "",
            "00000001000000000000000",
            "0000000100000000000000001",
            "00000001000000000000000G",
            "000000000000000000000001",
            "+00000010000000000000001",
            "000000010000000000000001.partial",
        ] {
            let err = bad.parse::<SegmentName>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn barman_next_examples() {
        let s16 = WalSegmentSize::DEFAULT;
        assert_eq!(
            name("0000000100000000000000FE").next(s16),
            name("0000000100000000000000FF")
        );
        assert_eq!(
            name("0000000100000000000000FF").next(s16),
            name("000000010000000100000000")
        );
        assert_eq!(
            name("000000010000000100000000").prev(s16),
            Some(name("0000000100000000000000FF"))
        );
        assert_eq!(name("000000010000000000000000").prev(s16), None);
        let gib = size(1 << 30);
        assert_eq!(
            name("000000020000000500000003").next(gib),
            name("000000020000000600000000")
        );
        let mib = size(1 << 20);
        assert_eq!(
            name("000000020000000500000FFF").next(mib),
            name("000000020000000600000000")
        );
        assert_eq!(
            name("000000020000000500000FFE").next(mib),
            name("000000020000000500000FFF")
        );
    }

    #[test]
    fn next_at_end_of_address_space() {
        let last = name("00000001FFFFFFFF000000FF");
        assert_eq!(last.checked_next(WalSegmentSize::DEFAULT), None);
        assert_eq!(
            last.next(WalSegmentSize::DEFAULT),
            name("000000010000000000000000")
        );
        assert_eq!(last.end_lsn(WalSegmentSize::DEFAULT), None);
    }

    #[test]
    fn out_of_range_seg_wraps_like_barman() {
        // Barman's generator wraps when seg > segments_per_log, even for a
        // name PostgreSQL would never write.
        let odd = name("000000010000000000000100");
        assert_eq!(
            odd.next(WalSegmentSize::DEFAULT),
            name("000000010000000100000000")
        );
    }

    #[test]
    fn from_lsn_and_start_lsn() {
        let s16 = WalSegmentSize::DEFAULT;
        let lsn: Lsn = "0/3000028".parse().unwrap();
        let seg = SegmentName::from_lsn(TimelineId::ONE, lsn, s16);
        assert_eq!(seg, name("000000010000000000000003"));
        assert_eq!(lsn.segment_offset(s16), 0x28);
        assert_eq!(seg.start_lsn(s16), Lsn(0x0300_0000));
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        let tli = TimelineId::new(2).unwrap();
        assert_eq!(
            SegmentName::from_lsn(tli, lsn, s16),
            name("0000000200000016000000B3")
        );
        let s64 = size(64 << 20);
        assert_eq!(
            SegmentName::from_lsn(tli, lsn, s64),
            name("00000002000000160000002C")
        );
        assert_eq!(
            name("00000002000000160000002C").start_lsn(s64).to_string(),
            "16/B0000000"
        );
    }

    #[test]
    fn hash_dir_is_first_16_chars() {
        let n = name("0000000300000A1F000000C0");
        assert_eq!(n.hash_dir(), "0000000300000A1F");
        assert_eq!(n.hash_dir(), n.to_string()[..16]);
    }

    #[test]
    fn order_is_string_order() {
        let mut names = [
            name("000000020000000000000001"),
            name("0000000100000001000000A0"),
            name("000000010000000000000010"),
            name("0000000100000000000000FF"),
        ];
        names.sort();
        let strings: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut sorted = strings.clone();
        sorted.sort();
        assert_eq!(strings, sorted);
    }
}
