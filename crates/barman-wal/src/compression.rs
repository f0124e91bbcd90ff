//! Compression algorithms for archived WAL files.
//!
//! Compression is a stream filter: [`Compression::writer`] wraps any
//! [`Write`] in an [`Encoder`] (which must be [`finish`](Encoder::finish)ed),
//! [`Compression::reader`] wraps any [`Read`] in a [`Decoder`]. Archived WAL
//! files carry no extension, so the algorithm of a stored file is found from
//! its first bytes with [`detect`]. Barman's deprecated custom filters
//! (`custom_compression_filter`, …) are shell commands run through an
//! injectable [`FilterSpawner`]; [`Codec`] puts both kinds behind one type.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use crate::error::{Error, Result};

mod codec;
mod custom;
mod decoder;
mod encoder;
mod lz4;
mod magic;
mod stream;

pub use codec::Codec;
pub use custom::{CustomFilter, FilterChild, FilterProcess, FilterSpawner, ShellSpawner};
pub use decoder::Decoder;
pub use encoder::Encoder;
pub use magic::{MAX_MAGIC_LEN, detect, detect_custom};
pub use stream::{COPY_BUFFER_SIZE, compress, copy_stream, decompress};

/// A WAL compression algorithm, as named by Barman's `compression` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// gzip (also Barman's `pigz` and deprecated `pygzip`).
    Gzip,
    /// bzip2 (also Barman's deprecated `pybzip2`).
    Bzip2,
    /// xz / LZMA2.
    Xz,
    /// Zstandard.
    Zstd,
    /// LZ4 frame format.
    Lz4,
    /// Snappy framed format.
    Snappy,
    /// External filter commands (`custom_compression_filter`).
    Custom,
}

impl Compression {
    /// Names accepted by [`FromStr`], comma separated (for error messages).
    pub const ALLOWED: &'static str =
        "gzip, pigz, pygzip, bzip2, pybzip2, xz, zstd, lz4, snappy, custom";

    /// The canonical name, as written in xlog.db.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
            Self::Snappy => "snappy",
            Self::Custom => "custom",
        }
    }

    /// The algorithms implemented in-process (all but [`Custom`](Self::Custom)).
    pub const BUILTIN: [Self; 6] = [
        Self::Gzip,
        Self::Bzip2,
        Self::Xz,
        Self::Zstd,
        Self::Lz4,
        Self::Snappy,
    ];

    /// The inclusive range of numeric levels Barman accepts for this
    /// algorithm, or `None` when it has no level (snappy, custom).
    pub fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Self::Gzip | Self::Bzip2 | Self::Xz => Some((1, 9)),
            Self::Zstd => Some((-22, 22)),
            Self::Lz4 => Some((0, 16)),
            Self::Snappy | Self::Custom => None,
        }
    }

    /// The numeric level Barman would use: `low`/`medium`/`high` mapped per
    /// algorithm (gzip 1/6/9, bzip2 1/5/9, xz 1/3/5, zstd 1/4/9, lz4 0/6/10)
    /// and explicit integers clamped to [`level_range`](Self::level_range).
    /// `None` for algorithms without levels (snappy, custom).
    ///
    /// ```
    /// use barman_wal::{Compression, CompressionLevel};
    /// assert_eq!(Compression::Xz.level_for(CompressionLevel::High), Some(5));
    /// assert_eq!(Compression::Gzip.level_for(CompressionLevel::Level(42)), Some(9));
    /// assert_eq!(Compression::Snappy.level_for(CompressionLevel::Low), None);
    /// ```
    pub fn level_for(self, level: CompressionLevel) -> Option<i32> {
        let (min, max) = self.level_range()?;
        let (low, medium, high) = match self {
            Self::Gzip => (1, 6, 9),
            Self::Bzip2 => (1, 5, 9),
            Self::Xz => (1, 3, 5),
            Self::Zstd => (1, 4, 9),
            Self::Lz4 => (0, 6, 10),
            Self::Snappy | Self::Custom => return None,
        };
        Some(match level {
            CompressionLevel::Low => low,
            CompressionLevel::Medium => medium,
            CompressionLevel::High => high,
            CompressionLevel::Level(n) => n.clamp(min, max),
        })
    }

    /// The magic bytes that start a stream of this algorithm (see [`detect`]);
    /// empty for [`Custom`](Self::Custom), whose magic is configured.
    pub fn magic(self) -> &'static [u8] {
        magic::magic_of(self)
    }

    /// Wraps `inner` in a compressing [`Encoder`] at `level` (see
    /// [`level_for`](Self::level_for)). Call [`Encoder::finish`] when done.
    ///
    /// Fails with [`Error::CustomFilterRequired`] for
    /// [`Custom`](Self::Custom): use [`Codec::Custom`] or
    /// [`CustomFilter::writer`].
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use barman_wal::{Compression, CompressionLevel};
    ///
    /// let mut enc = Compression::Zstd.writer(Vec::new(), CompressionLevel::Low)?;
    /// enc.write_all(b"some WAL bytes")?;
    /// let stored = enc.finish()?;
    /// assert_eq!(barman_wal::detect(&stored), Some(Compression::Zstd));
    ///
    /// let mut plain = Vec::new();
    /// Compression::Zstd.reader(stored.as_slice())?.read_to_end(&mut plain)?;
    /// assert_eq!(plain, b"some WAL bytes");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn writer<W: Write>(self, inner: W, level: CompressionLevel) -> Result<Encoder<W>> {
        Encoder::new(self, inner, level)
    }

    /// Wraps `inner` in a decompressing [`Decoder`]. Concatenated streams
    /// (multi-member gzip, multi-stream bzip2/xz/zstd/lz4) are read through,
    /// like the command-line tools do.
    ///
    /// Fails with [`Error::CustomFilterRequired`] for
    /// [`Custom`](Self::Custom): use [`Codec::Custom`] or
    /// [`CustomFilter::reader`].
    pub fn reader<R: Read>(self, inner: R) -> Result<Decoder<R>> {
        Decoder::new(self, inner)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "gzip" | "pigz" | "pygzip" => Self::Gzip,
            "bzip2" | "pybzip2" => Self::Bzip2,
            "xz" => Self::Xz,
            "zstd" => Self::Zstd,
            "lz4" => Self::Lz4,
            "snappy" => Self::Snappy,
            "custom" => Self::Custom,
            _ => {
                return Err(Error::UnknownCompression {
                    name: s.to_owned(),
                    allowed: Self::ALLOWED,
                });
            }
        })
    }
}

/// Barman's `compression_level`: `low`, `medium`, `high` or an integer
/// (clamped to the algorithm's range when used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressionLevel {
    /// Fastest useful level.
    Low,
    /// Barman's default.
    #[default]
    Medium,
    /// Best ratio at a sane cost.
    High,
    /// An explicit level.
    Level(i32),
}

impl fmt::Display for CompressionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Low => f.write_str("low"),
            Self::Medium => f.write_str("medium"),
            Self::High => f.write_str("high"),
            Self::Level(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for CompressionLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => t
                .parse::<i32>()
                .map(Self::Level)
                .map_err(|_| Error::InvalidCompressionLevel {
                    value: s.to_owned(),
                }),
        }
    }
}
