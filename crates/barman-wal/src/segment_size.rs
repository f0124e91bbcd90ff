//! WAL segment size (`wal_segment_size`).

use std::fmt;

use crate::error::{Error, Result};

/// The size of a WAL segment file: a power of two from 1 MiB to 1 GiB
/// (PostgreSQL's `IsValidWalSegSize`).
///
/// Every computation that depends on it takes it as a parameter; PostgreSQL's
/// default is available as [`WalSegmentSize::DEFAULT`] for callers that know
/// they need it.
///
/// ```
/// use barman_wal::WalSegmentSize;
///
/// let size = WalSegmentSize::new(64 << 20)?;
/// assert_eq!(size.bytes(), 67_108_864);
/// assert_eq!(size.segments_per_log(), 63); // segment numbers 0x00..=0x3F
/// assert_eq!(WalSegmentSize::DEFAULT.segments_per_log(), 255);
/// assert!(WalSegmentSize::new(3 << 20).is_err());
/// # Ok::<(), barman_wal::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalSegmentSize(u64);

impl WalSegmentSize {
    /// 16 MiB, PostgreSQL's default `wal_segment_size`.
    pub const DEFAULT: WalSegmentSize = WalSegmentSize(16 << 20);
    /// The smallest size PostgreSQL allows (1 MiB).
    pub const MIN: WalSegmentSize = WalSegmentSize(1 << 20);
    /// The largest size PostgreSQL allows (1 GiB).
    pub const MAX: WalSegmentSize = WalSegmentSize(1 << 30);

    /// A segment size of `bytes`; fails unless it is a power of two from
    /// 1 MiB to 1 GiB.
    pub const fn new(bytes: u64) -> Result<WalSegmentSize> {
        if bytes.is_power_of_two() && bytes >= Self::MIN.0 && bytes <= Self::MAX.0 {
            Ok(WalSegmentSize(bytes))
        } else {
            Err(Error::InvalidSegmentSize { bytes })
        }
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// `0xFFFFFFFF / size`, as Barman computes it (`xlog_segments_per_file`).
    ///
    /// This is the **highest segment number** of a log: segment numbers run
    /// from 0 to this value inclusive (0x00..=0xFF for 16 MiB), one less than
    /// PostgreSQL's `XLogSegmentsPerXLogId`.
    pub const fn segments_per_log(self) -> u64 {
        0xFFFF_FFFF / self.0
    }
}

impl Default for WalSegmentSize {
    /// [`WalSegmentSize::DEFAULT`] (16 MiB).
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for WalSegmentSize {
    /// `16 MiB`, `1 GiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 30 {
            write!(f, "{} GiB", self.0 >> 30)
        } else {
            write!(f, "{} MiB", self.0 >> 20)
        }
    }
}

impl TryFrom<u64> for WalSegmentSize {
    type Error = Error;

    fn try_from(bytes: u64) -> Result<WalSegmentSize> {
        WalSegmentSize::new(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_powers_of_two_in_range() {
        for shift in 20..=30 {
            let size = WalSegmentSize::new(1 << shift).unwrap();
            assert_eq!(size.bytes(), 1 << shift);
        }
    }

    #[test]
    fn rejects_others() {
        for bytes in [0, 1, 512 << 10, (1 << 20) + 1, 3 << 20, 2 << 30, u64::MAX] {
            let err = WalSegmentSize::new(bytes).unwrap_err();
            assert!(err.to_string().contains(&bytes.to_string()), "{err}");
        }
    }

    #[test]
    fn segments_per_log_as_barman() {
        let spl = |bytes: u64| WalSegmentSize::new(bytes).unwrap().segments_per_log();
        assert_eq!(spl(1 << 20), 0xFFF);
        assert_eq!(spl(16 << 20), 0xFF);
        assert_eq!(spl(64 << 20), 0x3F);
        assert_eq!(spl(1 << 30), 3);
    }

    #[test]
    fn display() {
        assert_eq!(WalSegmentSize::DEFAULT.to_string(), "16 MiB");
        assert_eq!(WalSegmentSize::MAX.to_string(), "1 GiB");
    }
}
