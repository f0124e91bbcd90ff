//! One value for "how this server compresses WAL": a built-in algorithm and
//! level, or custom filter commands with the spawner that runs them.

use std::io::{Read, Write};
use std::sync::Arc;

use super::custom::{CustomFilter, FilterSpawner, ShellSpawner};
use super::{Compression, CompressionLevel, Decoder, Encoder, detect_custom};
use crate::error::{Error, Result};

/// A configured WAL compression (Barman's `compression`,
/// `compression_level` and `custom_*` options resolved together). "No
/// compression" is `Option<Codec>::None`; see [`Encoder::plain`] and
/// [`Decoder::plain`].
#[derive(Debug, Clone)]
pub enum Codec {
    /// An in-process algorithm.
    Builtin {
        /// The algorithm (never [`Compression::Custom`]).
        compression: Compression,
        /// The requested level, mapped by [`Compression::level_for`].
        level: CompressionLevel,
    },
    /// External filter commands.
    Custom {
        /// The commands and magic.
        filter: CustomFilter,
        /// What runs the commands.
        spawner: Arc<dyn FilterSpawner>,
    },
}

impl Codec {
    /// A built-in algorithm; [`Error::CustomFilterRequired`] for
    /// [`Compression::Custom`].
    pub fn builtin(compression: Compression, level: CompressionLevel) -> Result<Self> {
        if compression == Compression::Custom {
            return Err(Error::CustomFilterRequired);
        }
        Ok(Self::Builtin { compression, level })
    }

    /// Custom filters run with `sh -c` ([`ShellSpawner`]).
    pub fn custom(filter: CustomFilter) -> Self {
        Self::Custom {
            filter,
            spawner: Arc::new(ShellSpawner::new()),
        }
    }

    /// The algorithm recorded in xlog.db for files written by this codec.
    pub fn compression(&self) -> Compression {
        match self {
            Self::Builtin { compression, .. } => *compression,
            Self::Custom { .. } => Compression::Custom,
        }
    }

    /// Detects the algorithm of a stored file from its first bytes, checking
    /// the custom magic first when this codec has one.
    pub fn detect(&self, prefix: &[u8]) -> Option<Compression> {
        match self {
            Self::Custom { filter, .. } => detect_custom(prefix, filter.magic.as_deref()),
            Self::Builtin { .. } => detect_custom(prefix, None),
        }
    }

    /// A compressing writer into `inner`; finish it with [`Encoder::finish`].
    pub fn writer<W: Write + Send + 'static>(&self, inner: W) -> Result<Encoder<W>> {
        match self {
            Self::Builtin { compression, level } => compression.writer(inner, *level),
            Self::Custom { filter, spawner } => filter.writer(spawner.as_ref(), inner),
        }
    }

    /// A decompressing reader over a file written by this codec.
    pub fn reader<R: Read + Send + 'static>(&self, inner: R) -> Result<Decoder<R>> {
        self.reader_for(Some(self.compression()), inner)
    }

    /// A decompressing reader for a file stored as `stored` (from xlog.db or
    /// [`detect`](Self::detect); `None` = not compressed), which may differ
    /// from this codec when the configuration changed. Files stored as
    /// [`Compression::Custom`] need this codec to be custom.
    pub fn reader_for<R: Read + Send + 'static>(
        &self,
        stored: Option<Compression>,
        inner: R,
    ) -> Result<Decoder<R>> {
        match (stored, self) {
            (Some(Compression::Custom), Self::Custom { filter, spawner }) => {
                filter.reader(spawner.as_ref(), inner)
            }
            (stored, _) => Decoder::for_detected(stored, inner),
        }
    }
}
