//! The crate's error type.
//!
//! Rules: every variant names the file, option or object involved; I/O errors
//! are kept as `#[source]`, never flattened into strings.

use std::path::PathBuf;

/// Errors returned by `barman-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a path.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What was being done ("cannot read", "cannot rename to", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    // -- config errors (owned by config/) --
    // -- catalog errors (owned by catalog/) --
}

impl Error {
    /// Wraps an I/O error with the action and the path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
