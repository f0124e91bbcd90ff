//! The compressing side of the stream filter.

use std::fmt;
use std::io::{self, Write};

use lz4_flex::frame::{BlockSize, FrameInfo};

use super::custom::FilterWriter;
use super::{Compression, CompressionLevel};
use crate::error::{Error, Result};

/// A compressing [`Write`] adapter for one of the [`Compression`]
/// algorithms (or a pass-through for "no compression", see
/// [`Encoder::plain`]).
///
/// Bytes written are compressed into the inner writer. The stream is only
/// complete once [`finish`](Self::finish) has returned `Ok`: it writes the
/// trailer, flushes, and (for custom filters) waits for the filter command
/// and reports its failure. Dropping an unfinished encoder leaves a truncated
/// stream and discards errors.
pub struct Encoder<W: Write> {
    /// The algorithm `inner` encodes, `None` for [`plain`](Self::plain).
    compression: Option<Compression>,
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Bzip2(bzip2::write::BzEncoder<W>),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Lz4(lz4_flex::frame::FrameEncoder<W>),
    Snappy(Box<snap::write::FrameEncoder<W>>),
    Custom(FilterWriter<W>),
}

/// A level that [`Compression::level_for`] clamped to a non-negative range.
fn unsigned(level: i32) -> u32 {
    u32::try_from(level).unwrap_or(0)
}

impl<W: Write> Encoder<W> {
    /// A pass-through "encoder" that writes bytes unchanged (no compression),
    /// so callers can use one type whether or not compression is configured.
    pub fn plain(inner: W) -> Self {
        Self {
            compression: None,
            inner: Inner::Plain(inner),
        }
    }

    /// Starts a `compression` stream into `inner`; see
    /// [`Compression::writer`].
    pub fn new(compression: Compression, inner: W, level: CompressionLevel) -> Result<Self> {
        let n = compression.level_for(level);
        let inner = match compression {
            Compression::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(unsigned(n.unwrap_or(6))),
            )),
            Compression::Bzip2 => Inner::Bzip2(bzip2::write::BzEncoder::new(
                inner,
                bzip2::Compression::new(unsigned(n.unwrap_or(5))),
            )),
            Compression::Xz => Inner::Xz(liblzma::write::XzEncoder::new(
                inner,
                unsigned(n.unwrap_or(3)),
            )),
            Compression::Zstd => {
                let init = |e: io::Error| Error::CodecInit {
                    compression,
                    source: e,
                };
                let mut enc =
                    zstd::stream::write::Encoder::new(inner, n.unwrap_or(4)).map_err(init)?;
                // The zstd CLI writes a content checksum by default; so do we.
                enc.include_checksum(true).map_err(init)?;
                Inner::Zstd(enc)
            }
            // lz4_flex implements the fast LZ4 compressor only: every level
            // produces the same valid frame (the CLI's `-1`), readable by any
            // LZ4 decoder. Content checksum and 4 MiB blocks as the CLI does.
            Compression::Lz4 => Inner::Lz4(lz4_flex::frame::FrameEncoder::with_frame_info(
                FrameInfo::new()
                    .block_size(BlockSize::Max4MB)
                    .content_checksum(true),
                inner,
            )),
            Compression::Snappy => Inner::Snappy(Box::new(snap::write::FrameEncoder::new(inner))),
            Compression::Custom => return Err(Error::CustomFilterRequired),
        };
        Ok(Self {
            compression: Some(compression),
            inner,
        })
    }

    pub(super) fn custom(writer: FilterWriter<W>) -> Self {
        Self {
            compression: Some(Compression::Custom),
            inner: Inner::Custom(writer),
        }
    }

    /// The algorithm, or `None` for [`plain`](Self::plain).
    pub fn compression(&self) -> Option<Compression> {
        self.compression
    }

    /// Completes the stream (trailer, flush; for custom filters: closes the
    /// command's input and checks its exit status) and returns the inner
    /// writer. The inner writer is flushed but not synced to disk.
    pub fn finish(self) -> io::Result<W> {
        let mut out = match self.inner {
            Inner::Plain(w) => w,
            Inner::Gzip(e) => e.finish()?,
            Inner::Bzip2(e) => e.finish()?,
            Inner::Xz(e) => e.finish()?,
            Inner::Zstd(e) => e.finish()?,
            Inner::Lz4(e) => e.finish()?,
            Inner::Snappy(mut e) => {
                e.flush()?;
                e.into_inner()
                    .map_err(snap::write::IntoInnerError::into_error)?
            }
            Inner::Custom(f) => f.finish()?,
        };
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(w) => w.write(buf),
            Inner::Gzip(e) => e.write(buf),
            Inner::Bzip2(e) => e.write(buf),
            Inner::Xz(e) => e.write(buf),
            Inner::Zstd(e) => e.write(buf),
            Inner::Lz4(e) => e.write(buf),
            Inner::Snappy(e) => e.write(buf),
            Inner::Custom(f) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.write_all(buf),
            Inner::Gzip(e) => e.write_all(buf),
            Inner::Bzip2(e) => e.write_all(buf),
            Inner::Xz(e) => e.write_all(buf),
            Inner::Zstd(e) => e.write_all(buf),
            Inner::Lz4(e) => e.write_all(buf),
            Inner::Snappy(e) => e.write_all(buf),
            Inner::Custom(f) => f.write_all(buf),
        }
    }

    /// Flushes what the codec can emit without ending the stream. Some
    /// codecs (gzip, zstd) emit a sync block here, which costs ratio: flush
    /// only when needed.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.flush(),
            Inner::Gzip(e) => e.flush(),
            Inner::Bzip2(e) => e.flush(),
            Inner::Xz(e) => e.flush(),
            Inner::Zstd(e) => e.flush(),
            Inner::Lz4(e) => e.flush(),
            Inner::Snappy(e) => e.flush(),
            Inner::Custom(f) => f.flush(),
        }
    }
}

impl<W: Write> fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("compression", &self.compression())
            .finish_non_exhaustive()
    }
}
