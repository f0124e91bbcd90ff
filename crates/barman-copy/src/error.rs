//! The crate's error type.

/// Errors returned by `barman-copy`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An exclusion rule whose pattern is not a single, non-empty path component.
    #[error("invalid exclusion pattern `{pattern}`: expected one non-empty file name without `/`")]
    InvalidPattern {
        /// The pattern given.
        pattern: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
