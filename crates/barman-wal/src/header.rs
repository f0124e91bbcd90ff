//! The long page header at the start of every WAL segment file.

use std::io::Read;

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::segment::{SegmentName, WalSegmentSize};
use crate::timeline::TimelineId;

/// `XLP_LONG_HEADER`: the `xlp_info` flag marking a long page header.
pub const XLP_LONG_HEADER: u16 = 0x0002;

/// `XLOG_PAGE_MAGIC` of each supported PostgreSQL major version.
const KNOWN_MAGICS: [(u16, u32); 6] = [
    (0xD106, 13),
    (0xD10D, 14),
    (0xD110, 15),
    (0xD113, 16),
    (0xD116, 17),
    (0xD118, 18),
];

/// `XLogLongPageHeaderData`, the 40-byte header of a WAL segment's first
/// page (little-endian, as written on x86 and ARM hosts).
///
/// [`LongPageHeader::parse`] only decodes; [`LongPageHeader::validate`]
/// checks it against what the caller expects before a file is archived.
///
/// ```
/// use barman_wal::{HeaderExpectations, LongPageHeader};
///
/// let mut bytes = [0u8; 40];
/// bytes[0..2].copy_from_slice(&0xD110u16.to_le_bytes()); // PostgreSQL 15
/// bytes[2..4].copy_from_slice(&2u16.to_le_bytes()); // XLP_LONG_HEADER
/// bytes[4..8].copy_from_slice(&1u32.to_le_bytes()); // timeline 1
/// bytes[8..16].copy_from_slice(&0x0300_0000u64.to_le_bytes());
/// bytes[24..32].copy_from_slice(&7u64.to_le_bytes()); // system identifier
/// bytes[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
/// bytes[36..40].copy_from_slice(&8192u32.to_le_bytes());
///
/// let header = LongPageHeader::parse(&bytes)?;
/// assert_eq!(header.pg_major(), Some(15));
/// assert_eq!(header.segment_name().to_string(), "000000010000000000000003");
/// header.validate(&HeaderExpectations { system_identifier: Some(7), ..Default::default() })?;
/// assert!(header.validate(&HeaderExpectations { system_identifier: Some(8), ..Default::default() }).is_err());
/// # Ok::<(), barman_wal::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LongPageHeader {
    /// `xlp_magic`: the WAL format version.
    pub magic: u16,
    /// `xlp_info`: flag bits.
    pub info: u16,
    /// `xlp_tli`: timeline of the first record on the page.
    pub timeline: TimelineId,
    /// `xlp_pageaddr`: WAL position of the page.
    pub page_address: Lsn,
    /// `xlp_rem_len`: bytes of a record continued from the previous segment.
    pub remaining_length: u32,
    /// `xlp_sysid`: the cluster's system identifier (from `pg_control`).
    pub system_identifier: u64,
    /// `xlp_seg_size`: the cluster's WAL segment size.
    pub segment_size: WalSegmentSize,
    /// `xlp_xlog_blcksz`: the WAL page size.
    pub block_size: u32,
}

/// What [`LongPageHeader::validate`] compares the header with; `None` fields
/// are not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderExpectations {
    /// The cluster's system identifier.
    pub system_identifier: Option<u64>,
    /// The cluster's WAL segment size.
    pub segment_size: Option<WalSegmentSize>,
    /// The segment the file is named after.
    pub name: Option<SegmentName>,
}

impl LongPageHeader {
    /// Size of the header in bytes (`SizeOfXLogLongPHD`).
    pub const SIZE: usize = 40;

    /// Decodes the first 40 bytes of `bytes`.
    ///
    /// Fails if there are fewer than 40 bytes, or if the timeline is 0 or the
    /// segment size is not one PostgreSQL allows (these cannot be
    /// represented); everything else is left to [`LongPageHeader::validate`].
    pub fn parse(bytes: &[u8]) -> Result<LongPageHeader> {
        let b: &[u8; Self::SIZE] = bytes
            .get(..Self::SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::HeaderTooShort {
                expected: Self::SIZE,
                found: bytes.len(),
            })?;
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);

        let tli = u32_at(4);
        let timeline = TimelineId::new(tli).map_err(|_| Error::InvalidHeader {
            field: "xlp_tli",
            expected: "a timeline > 0".to_owned(),
            found: "0".to_owned(),
        })?;
        let seg_size = u32_at(32);
        let segment_size =
            WalSegmentSize::new(u64::from(seg_size)).map_err(|_| Error::InvalidHeader {
                field: "xlp_seg_size",
                expected: "a power of two from 1 MiB to 1 GiB".to_owned(),
                found: seg_size.to_string(),
            })?;
        Ok(LongPageHeader {
            magic: u16_at(0),
            info: u16_at(2),
            timeline,
            page_address: Lsn(u64_at(8)),
            remaining_length: u32_at(16),
            system_identifier: u64_at(24),
            segment_size,
            block_size: u32_at(36),
        })
    }

    /// Reads exactly the first 40 bytes of `r` and decodes them.
    pub fn read_from<R: Read>(r: &mut R) -> Result<LongPageHeader> {
        let mut buf = [0u8; Self::SIZE];
        r.read_exact(&mut buf)
            .map_err(|source| Error::HeaderRead { source })?;
        Self::parse(&buf)
    }

    /// The PostgreSQL major version whose `XLOG_PAGE_MAGIC` this is (13 to
    /// 18), or `None` for an unknown magic.
    pub fn pg_major(&self) -> Option<u32> {
        KNOWN_MAGICS
            .iter()
            .find(|(m, _)| *m == self.magic)
            .map(|&(_, v)| v)
    }

    /// Whether `xlp_info` has the [`XLP_LONG_HEADER`] flag.
    pub const fn is_long(&self) -> bool {
        self.info & XLP_LONG_HEADER != 0
    }

    /// The name of the segment this header starts (from its timeline, page
    /// address and segment size).
    pub const fn segment_name(&self) -> SegmentName {
        SegmentName::from_lsn(self.timeline, self.page_address, self.segment_size)
    }

    /// Checks that this is the long header of a WAL segment from a supported
    /// PostgreSQL version and, where `expected` says so, from the expected
    /// cluster, segment size and segment. The first mismatch is returned,
    /// naming the field, what was expected and what was found.
    ///
    /// For `expected.name`, the page address must be the start of that
    /// segment and `xlp_tli` must not exceed its timeline. A lower `xlp_tli`
    /// is accepted: when PostgreSQL switches timeline it starts the new
    /// timeline's first segment from a copy of the parent's, whose header
    /// keeps the parent's timeline. (A recycled segment that PostgreSQL has
    /// not written yet is still refused, by its page address.)
    pub fn validate(&self, expected: &HeaderExpectations) -> Result<()> {
        let mismatch = |field, expected: String, found: String| {
            Err(Error::InvalidHeader {
                field,
                expected,
                found,
            })
        };
        if self.pg_major().is_none() {
            let known: Vec<String> = KNOWN_MAGICS
                .iter()
                .map(|(m, v)| format!("{m:#06X} (PostgreSQL {v})"))
                .collect();
            return mismatch(
                "xlp_magic",
                format!("one of {}", known.join(", ")),
                format!("{:#06X}", self.magic),
            );
        }
        if !self.is_long() {
            return mismatch(
                "xlp_info",
                "the XLP_LONG_HEADER flag (0x0002)".to_owned(),
                format!("{:#06X}", self.info),
            );
        }
        if self.page_address.segment_offset(self.segment_size) != 0 {
            return mismatch(
                "xlp_pageaddr",
                format!("the start of a {} segment", self.segment_size),
                self.page_address.to_string(),
            );
        }
        if let Some(sysid) = expected.system_identifier
            && sysid != self.system_identifier
        {
            return mismatch(
                "xlp_sysid",
                sysid.to_string(),
                self.system_identifier.to_string(),
            );
        }
        if let Some(size) = expected.segment_size
            && size != self.segment_size
        {
            return mismatch(
                "xlp_seg_size",
                size.bytes().to_string(),
                self.segment_size.bytes().to_string(),
            );
        }
        if let Some(name) = expected.name {
            // The first segment of a new timeline is a copy of its parent's
            // segment up to the switchpoint, so its first page still carries
            // the parent's (lower) timeline: only a higher one is wrong.
            if self.timeline > name.timeline() {
                return mismatch(
                    "xlp_tli",
                    format!("at most {} (the timeline of {name})", name.timeline()),
                    self.timeline.to_string(),
                );
            }
            let found =
                SegmentName::from_lsn(name.timeline(), self.page_address, self.segment_size);
            if name != found {
                return mismatch(
                    "xlp_pageaddr",
                    format!("{} (start of {name})", name.start_lsn(self.segment_size)),
                    format!("{} (start of {found})", self.page_address),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
