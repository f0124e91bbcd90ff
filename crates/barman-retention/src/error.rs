//! The crate's error type.

/// Errors returned by `barman-retention`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A retention policy string that is not `REDUNDANCY n` or
    /// `RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS`.
    #[error(
        "invalid retention policy `{value}` (allowed: `REDUNDANCY <n>` or `RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS`)"
    )]
    InvalidPolicy {
        /// The value given.
        value: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
