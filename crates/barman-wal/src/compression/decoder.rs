//! The decompressing side of the stream filter.

use std::fmt;
use std::io::{self, BufReader, Read};

use super::Compression;
use super::custom::FilterReader;
use super::lz4::Lz4Reader;
use crate::error::{Error, Result};

/// A decompressing [`Read`] adapter for one of the [`Compression`]
/// algorithms (or a pass-through, see [`Decoder::plain`]).
///
/// Concatenated streams are decoded one after the other, as `gzip -dc`,
/// `bzip2 -dc`, `xz -dc`, `zstd -dc` and `lz4 -dc` do. Corrupt input is an
/// [`io::Error`] from `read`. For custom filters, a non-zero exit of the
/// command is reported as an error when its output ends (the
/// [`io::Error`] wraps an [`Error::FilterFailed`]).
pub struct Decoder<R: Read> {
    /// The algorithm `inner` decodes, `None` for [`plain`](Self::plain).
    compression: Option<Compression>,
    inner: Inner<R>,
}

enum Inner<R: Read> {
    Plain(R),
    Gzip(flate2::read::MultiGzDecoder<R>),
    Bzip2(bzip2::read::MultiBzDecoder<R>),
    Xz(liblzma::read::XzDecoder<R>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
    Lz4(Lz4Reader<R>),
    Snappy(snap::read::FrameDecoder<R>),
    Custom(FilterReader),
}

impl<R: Read> Decoder<R> {
    /// A pass-through "decoder" returning the bytes of `inner` unchanged.
    pub fn plain(inner: R) -> Self {
        Self {
            compression: None,
            inner: Inner::Plain(inner),
        }
    }

    /// Starts decoding a `compression` stream from `inner`; see
    /// [`Compression::reader`].
    pub fn new(compression: Compression, inner: R) -> Result<Self> {
        let inner = match compression {
            Compression::Gzip => Inner::Gzip(flate2::read::MultiGzDecoder::new(inner)),
            Compression::Bzip2 => Inner::Bzip2(bzip2::read::MultiBzDecoder::new(inner)),
            Compression::Xz => Inner::Xz(liblzma::read::XzDecoder::new_multi_decoder(inner)),
            // zstd's streaming decoder reads concatenated frames by default.
            Compression::Zstd => {
                Inner::Zstd(zstd::stream::read::Decoder::new(inner).map_err(|e| {
                    Error::CodecInit {
                        compression,
                        source: e,
                    }
                })?)
            }
            Compression::Lz4 => Inner::Lz4(Lz4Reader::new(inner)),
            Compression::Snappy => Inner::Snappy(snap::read::FrameDecoder::new(inner)),
            Compression::Custom => return Err(Error::CustomFilterRequired),
        };
        Ok(Self {
            compression: Some(compression),
            inner,
        })
    }

    /// Like [`new`](Self::new) with `None` meaning [`plain`](Self::plain):
    /// the shape of [`detect`](super::detect)'s answer.
    pub fn for_detected(compression: Option<Compression>, inner: R) -> Result<Self> {
        match compression {
            Some(c) => Self::new(c, inner),
            None => Ok(Self::plain(inner)),
        }
    }

    pub(super) fn custom(reader: FilterReader) -> Self {
        Self {
            compression: Some(Compression::Custom),
            inner: Inner::Custom(reader),
        }
    }

    /// The algorithm, or `None` for [`plain`](Self::plain).
    pub fn compression(&self) -> Option<Compression> {
        self.compression
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(r) => r.read(buf),
            Inner::Gzip(d) => d.read(buf),
            Inner::Bzip2(d) => d.read(buf),
            Inner::Xz(d) => d.read(buf),
            Inner::Zstd(d) => d.read(buf),
            Inner::Lz4(d) => d.read(buf),
            Inner::Snappy(d) => d.read(buf),
            Inner::Custom(d) => d.read(buf),
        }
    }
}

impl<R: Read> fmt::Debug for Decoder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("compression", &self.compression())
            .finish_non_exhaustive()
    }
}
