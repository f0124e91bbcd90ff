//! PostgreSQL WAL naming, positions, timelines, page headers and compression,
//! compatible with Barman's WAL archive.
//!
//! The naming half is pure (no I/O except [`LongPageHeader::read_from`]):
//!
//! - [`Lsn`]: a WAL position, parsed from and printed as PostgreSQL's `X/Y`.
//! - [`TimelineId`]: a positive timeline number.
//! - [`WalSegmentSize`]: `wal_segment_size`, a power of two from 1 MiB to
//!   1 GiB. Every computation takes it explicitly; [`WalSegmentSize::DEFAULT`]
//!   is PostgreSQL's 16 MiB.
//! - [`SegmentName`]: a 24-hex-digit segment name, with Barman's
//!   `next`/`prev` arithmetic, LSN conversions, its `wals/` hash directory and
//!   [`SegmentName::range`] (a [`SegmentRange`] iterator).
//! - [`WalFileName`]: any name Barman accepts in its archive — segment,
//!   `.partial`, `.history` or `.backup` — ordered as Barman compares them.
//! - [`TimelineHistory`]: the parsed contents of a `.history` file.
//! - [`LongPageHeader`]: the 40-byte header opening each segment, checked
//!   against [`HeaderExpectations`] before a file is archived.
//!
//! [`put_wal_stream`] is the tar stream `barman-wal-archive` sends and
//! `barman put-wal` reads (WAL members, `SHA256SUMS`/`MD5SUMS`, limits):
//! its writer and its reader.
//!
//! # Example
//!
//! ```
//! use barman_wal::{Lsn, SegmentName, TimelineId, WalFileName, WalSegmentSize};
//!
//! let size = WalSegmentSize::DEFAULT;
//!
//! // Segment names and Barman's arithmetic (segments 0x00..=0xFF per log).
//! let last: SegmentName = "0000000100000000000000ff".parse()?;
//! assert_eq!(last.next(size).to_string(), "000000010000000100000000");
//!
//! // The segment holding an LSN, and the offset inside it.
//! let lsn: Lsn = "0/3000028".parse()?;
//! let seg = SegmentName::from_lsn(TimelineId::ONE, lsn, size);
//! assert_eq!(seg.to_string(), "000000010000000000000003");
//! assert_eq!(lsn.segment_offset(size), 0x28);
//!
//! // Every segment a backup needs, from its begin to its end WAL.
//! let end = SegmentName::from_lsn(TimelineId::ONE, "0/5000100".parse()?, size);
//! let needed: Vec<String> = SegmentName::range(&seg, &end, size).map(|s| s.to_string()).collect();
//! assert_eq!(needed, ["000000010000000000000003", "000000010000000000000004", "000000010000000000000005"]);
//!
//! // Archive file names and where Barman stores them.
//! let label: WalFileName = "000000010000000000000003.00000028.backup".parse()?;
//! assert_eq!(label.segment(), Some(seg));
//! assert_eq!(label.archive_subdir().as_deref(), Some("0000000100000000"));
//! # Ok::<(), barman_wal::Error>(())
//! ```

mod compression;
mod error;
mod file_name;
mod header;
mod history;
mod lsn;
pub mod put_wal_stream;
mod segment;
mod segment_size;
mod timeline;

pub use compression::{
    COPY_BUFFER_SIZE, Codec, Compression, CompressionLevel, CustomFilter, Decoder, Encoder,
    FilterChild, FilterProcess, FilterSpawner, MAX_MAGIC_LEN, ShellSpawner, compress, copy_stream,
    decompress, detect, detect_custom,
};
pub use error::{Error, Result};
pub use file_name::WalFileName;
pub use header::{HeaderExpectations, LongPageHeader, XLP_LONG_HEADER};
pub use history::{HistoryEntry, TimelineHistory};
pub use lsn::Lsn;
pub use segment::{SegmentName, SegmentRange, WalSegmentSize};
pub use timeline::TimelineId;

/// Compiles and runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
