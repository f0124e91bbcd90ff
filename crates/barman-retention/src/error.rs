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
    /// A backup status that is not one Barman writes (`DONE`, `FAILED`, ...).
    #[error(
        "invalid backup status `{value}` (allowed: EMPTY, STARTED, WAITING_FOR_WALS, DONE, FAILED, SYNCING)"
    )]
    InvalidBackupStatus {
        /// The value given.
        value: String,
    },
    /// A keep target that is not `full` or `standalone`.
    #[error("invalid keep target `{value}` (allowed: full, standalone)")]
    InvalidKeepTarget {
        /// The value given.
        value: String,
    },
    /// A retention label that is not one Barman prints.
    #[error(
        "invalid retention status `{value}` (allowed: VALID, OBSOLETE, OBSOLETE*, KEEP:FULL, KEEP:STANDALONE, -)"
    )]
    InvalidRetentionStatus {
        /// The value given.
        value: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
