//! Log sequence numbers: PostgreSQL's `X/Y` WAL positions.

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::segment_size::WalSegmentSize;

/// A WAL position (log sequence number), a byte offset in the WAL stream.
///
/// The text form is PostgreSQL's `X/Y`: the high and low 32 bits in
/// hexadecimal. [`FromStr`] accepts 1 to 8 hex digits of either case on each
/// side (as `pg_lsn_in` does); [`Display`](fmt::Display) prints upper case
/// without leading zeros, as PostgreSQL does (`16/B374D848`, `0/3000028`).
///
/// ```
/// use barman_wal::Lsn;
///
/// let lsn: Lsn = "16/b374d848".parse()?;
/// assert_eq!(lsn, Lsn(0x16_B374_D848));
/// assert_eq!(lsn.to_string(), "16/B374D848");
/// assert_eq!((lsn + 8) - lsn, 8);
/// # Ok::<(), barman_wal::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The invalid position `0/0` (`InvalidXLogRecPtr`).
    pub const ZERO: Lsn = Lsn(0);

    /// Builds an LSN from its two 32-bit halves (`X` and `Y` of `X/Y`).
    pub const fn from_parts(high: u32, low: u32) -> Lsn {
        Lsn(((high as u64) << 32) | low as u64)
    }

    /// The high 32 bits: the "log" (`xlogid`) part of a segment name.
    pub const fn high(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The low 32 bits.
    pub const fn low(self) -> u32 {
        // Truncation intended: the low half.
        (self.0 & 0xFFFF_FFFF) as u32
    }

    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<Lsn> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(Lsn(v)),
            None => None,
        }
    }

    /// `self - other` in bytes, or `None` if `other` is after `self`.
    pub const fn checked_sub(self, other: Lsn) -> Option<u64> {
        self.0.checked_sub(other.0)
    }

    /// The byte offset of this position inside its WAL segment
    /// (`XLogSegmentOffset`).
    pub const fn segment_offset(self, size: WalSegmentSize) -> u64 {
        self.0 & (size.bytes() - 1)
    }

    /// The position of the first byte of the segment containing `self`.
    #[must_use]
    pub const fn segment_start(self, size: WalSegmentSize) -> Lsn {
        Lsn(self.0 & !(size.bytes() - 1))
    }
}

impl Add<u64> for Lsn {
    type Output = Lsn;

    /// Advances by `bytes`.
    ///
    /// # Panics
    ///
    /// On overflow past `FFFFFFFF/FFFFFFFF`; use [`Lsn::checked_add`] to
    /// handle that case.
    fn add(self, bytes: u64) -> Lsn {
        self.checked_add(bytes).expect("LSN overflow")
    }
}

impl Sub<Lsn> for Lsn {
    type Output = u64;

    /// The distance in bytes from `other` to `self`.
    ///
    /// # Panics
    ///
    /// If `other > self`; use [`Lsn::checked_sub`] to handle that case.
    fn sub(self, other: Lsn) -> u64 {
        self.checked_sub(other).expect("LSN subtraction underflow")
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.high(), self.low())
    }
}

impl From<u64> for Lsn {
    fn from(value: u64) -> Lsn {
        Lsn(value)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> u64 {
        lsn.0
    }
}

impl FromStr for Lsn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Lsn> {
        let invalid = || Error::InvalidLsn {
            input: s.to_owned(),
        };
        let (high, low) = s.split_once('/').ok_or_else(invalid)?;
        let high = parse_hex_u32(high).ok_or_else(invalid)?;
        let low = parse_hex_u32(low).ok_or_else(invalid)?;
        Ok(Lsn::from_parts(high, low))
    }
}

/// Parses 1 to 8 hex digits (either case, nothing else: no sign, no spaces).
pub(crate) fn parse_hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_forms() {
        assert_eq!("0/3000028".parse::<Lsn>().unwrap(), Lsn(0x0300_0028));
        assert_eq!("16/B374D848".parse::<Lsn>().unwrap(), Lsn(0x16_B374_D848));
        assert_eq!("16/b374d848".parse::<Lsn>().unwrap(), Lsn(0x16_B374_D848));
        assert_eq!("00000000/00000000".parse::<Lsn>().unwrap(), Lsn::ZERO);
        assert_eq!("FFFFFFFF/FFFFFFFF".parse::<Lsn>().unwrap(), Lsn(u64::MAX));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0",
            "0/0/0",
            "+1/0",
            "1/+0",
            " 0/0",
            "0/0 ",
            "g/0",
            "123456789/0",
            "0/123456789",
            "0x1/0",
            "-1/0",
        ] {
            let err = bad.parse::<Lsn>().unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{bad}`")),
                "error for {bad:?} should name the input: {err}"
            );
        }
    }

    #[test]
    fn displays_like_postgres() {
        assert_eq!(Lsn(0x0300_0028).to_string(), "0/3000028");
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!(Lsn::ZERO.to_string(), "0/0");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
    }

    #[test]
    fn arithmetic() {
        let a = Lsn(0x1_0000_0000);
        assert_eq!(a + 5, Lsn(0x1_0000_0005));
        assert_eq!((a + 5) - a, 5);
        assert_eq!(a.checked_sub(a + 1), None);
        assert_eq!(Lsn(u64::MAX).checked_add(1), None);
        assert_eq!(Lsn(u64::MAX - 1).checked_add(1), Some(Lsn(u64::MAX)));
        assert!(a < a + 1);
    }

    #[test]
    #[should_panic(expected = "LSN overflow")]
    fn add_overflow_panics() {
        let _ = Lsn(u64::MAX) + 1;
    }

    #[test]
    fn segment_offset_and_start() {
        let size = WalSegmentSize::DEFAULT;
        let lsn: Lsn = "0/3000028".parse().unwrap();
        assert_eq!(lsn.segment_offset(size), 0x28);
        assert_eq!(lsn.segment_start(size), Lsn(0x0300_0000));
        let mib = WalSegmentSize::new(1 << 20).unwrap();
        assert_eq!(Lsn(0x0312_3456).segment_offset(mib), 0x2_3456);
    }
}
