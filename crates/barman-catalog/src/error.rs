//! The catalog's error type.
//!
//! Rules: every variant names the file or value involved; I/O errors are
//! kept as `#[source]`, never flattened into strings.

use std::path::PathBuf;

/// Errors returned by `barman-catalog`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a path (``{action} `{path}`: {cause}``).
    #[error(transparent)]
    Io(#[from] barman_fs::PathIoError),
    /// A line of a catalog file (backup.info, xlog.db, keep, identity.json) is malformed.
    #[error("{}:{line}: {message}", path.display())]
    CatalogSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when the whole file is concerned).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A backup.info file contains a key this version does not know.
    #[error(
        "{}:{line}: unknown key `{key}` in backup.info (created with a newer version of Barman?)",
        path.display()
    )]
    UnknownBackupInfoKey {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The unknown key.
        key: String,
    },
    /// A backup.info field holds a value that cannot be interpreted.
    #[error("{}: invalid value for `{key}`: `{value}`: {reason}", path.display())]
    InvalidBackupField {
        /// The backup.info file (or `<new backup>` when not read from disk).
        path: PathBuf,
        /// The key.
        key: String,
        /// The raw value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A value of a catalog type (backup id, status, WAL name, Python literal, ...) is invalid.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidCatalogValue {
        /// The kind of value ("backup id", "backup status", "WAL name", ...).
        what: &'static str,
        /// The offending text (possibly shortened).
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// No backup.info exists for a backup id.
    #[error("backup `{backup_id}` not found (looked for `{}`)", path.display())]
    BackupNotFound {
        /// The backup id.
        backup_id: String,
        /// The path looked at first (meta/).
        path: PathBuf,
    },
    /// A backup barman-rs cannot restore or synchronise yet (tar format,
    /// encrypted, incremental, snapshot: see
    /// [`BackupInfo::restore_obstacle`](crate::BackupInfo::restore_obstacle));
    /// refused before anything is written.
    #[error(
        "backup {backup_id} of server `{server}` cannot be {action} by barman-rs yet: {reason} (not implemented)"
    )]
    BackupNotSupported {
        /// The server.
        server: String,
        /// The backup id.
        backup_id: String,
        /// What was refused (`restored`, `synchronised`).
        action: &'static str,
        /// Why (the backup's kind).
        reason: String,
    },
    /// A WAL file name, segment name or LSN is invalid (from `barman-wal`).
    #[error(transparent)]
    Wal(#[from] barman_wal::Error),
    /// A lock file is held by another process (or another handle in this process).
    #[error("lock `{}` is busy{}", path.display(), pid.map(|p| format!(" (held by pid {p})")).unwrap_or_default())]
    LockBusy {
        /// The lock file.
        path: PathBuf,
        /// The PID written by the holder, if readable.
        pid: Option<u32>,
    },
}

impl Error {
    /// Wraps an I/O error with the action and the path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io(barman_fs::PathIoError::new(action, path, source))
    }
}

impl From<barman_fs::Error> for Error {
    /// The same [`Error::Io`]: action, path and cause.
    fn from(e: barman_fs::Error) -> Self {
        Self::Io(e.into())
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// An I/O error shows its path in backticks, however it was made, and
    /// keeps the I/O error as its source.
    #[test]
    fn io_errors_quote_the_path() {
        let cause = || std::io::Error::other("gone");
        let made = Error::io("cannot read", "/c/backup.info", cause());
        let converted = Error::from(barman_fs::Error::new(
            "cannot read",
            "/c/backup.info",
            cause(),
        ));
        for e in [made, converted] {
            assert_eq!(e.to_string(), "cannot read `/c/backup.info`: gone");
            let source = std::error::Error::source(&e).unwrap();
            assert!(source.downcast_ref::<std::io::Error>().is_some());
        }
    }
}
