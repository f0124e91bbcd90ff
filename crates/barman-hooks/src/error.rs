//! The crate's error type.

/// Errors returned by `barman-hooks`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration key that is not one of the 20 hook script keys.
    #[error(
        "`{key}` is not a hook script option (expected `<pre|post>_<event>_[retry_]script`, event one of backup, archive, delete, recovery, wal_delete)"
    )]
    InvalidConfigKey {
        /// The key given.
        key: String,
    },
    /// A hook event name that Barman does not know.
    #[error("unknown hook event `{name}` (allowed: backup, archive, delete, recovery, wal_delete)")]
    InvalidEvent {
        /// The name given.
        name: String,
    },
    /// The environment of a hook lacks the variables its event requires.
    #[error("{hook} hook environment is missing the {needed} variables")]
    MissingVariables {
        /// The hook (`pre_backup_script`).
        hook: String,
        /// Which set is missing: `backup`, `recovery` or `WAL`.
        needed: &'static str,
    },
    /// The environment of a hook carries variables that do not belong to its event.
    #[error("{hook} hook environment must not carry {unexpected} variables")]
    UnexpectedVariables {
        /// The hook (`pre_archive_script`).
        hook: String,
        /// Which set does not belong: `backup`, `recovery` or `WAL`.
        unexpected: &'static str,
    },
    /// A variable value containing a NUL byte, which no process environment can hold.
    #[error("value of {name} contains a NUL byte")]
    NulInValue {
        /// The variable name.
        name: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
