//! Compression algorithms for archived WAL files.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

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
            _ => t.parse::<i32>().map(Self::Level).map_err(|_| Error::InvalidCompressionLevel {
                value: s.to_owned(),
            }),
        }
    }
}
