//! The crate's error type.

/// Errors returned by `barman-wal`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A compression algorithm name that Barman does not know.
    #[error("unknown compression algorithm `{name}` (allowed: {allowed})")]
    UnknownCompression {
        /// The name given.
        name: String,
        /// The allowed names, comma separated.
        allowed: &'static str,
    },
    /// A compression level that is neither low/medium/high nor an integer.
    #[error("invalid compression level `{value}` (allowed: low, medium, high or an integer)")]
    InvalidCompressionLevel {
        /// The value given.
        value: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
