//! The crate's error type.

use std::path::PathBuf;

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
    /// A path (from a peer, a manifest or a caller) that could leave its root.
    #[error("unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file disappeared between the listing and the copy (a dropped table).
    #[error("{path}: vanished during the copy")]
    Vanished {
        /// The file, relative to the backup directory.
        path: String,
    },
    /// A malformed manifest.
    #[error("{path}:{line}: bad manifest: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The peer broke the agent protocol (bad frame, unexpected message, version mismatch).
    #[error("agent protocol error: {0}")]
    Protocol(String),
    /// The agent reported an error for a request.
    #[error("agent: {0}")]
    Agent(String),
    /// The agent could not be started or went away.
    #[error("agent session: {0}")]
    Session(String),
    /// A file's content does not match its checksum.
    #[error("{path}: checksum mismatch (expected {expected}, got {actual})")]
    Checksum {
        /// The file.
        path: String,
        /// Expected blake3 hex.
        expected: String,
        /// Actual blake3 hex.
        actual: String,
    },
    /// An incremental backup chain that cannot be combined: a malformed
    /// `INCREMENTAL.*` file, a file missing from an older backup of the
    /// chain, an incremental file in the full backup.
    #[error("{path}: {reason}")]
    Incremental {
        /// The file at fault (or the one that is missing).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A restore destination holds files and delta restore is off.
    #[error(
        "the destination tree `{tree}` is not empty ({example} exists); use --delta-restore to restore into it"
    )]
    NotEmpty {
        /// The tree (`data` or a tablespace OID).
        tree: String,
        /// One entry found there.
        example: String,
    },
    /// The copy was cancelled (Ctrl-C, SIGTERM).
    #[error("copy cancelled")]
    Cancelled,
    /// A file too large for an rsync delta (fast_rsync needs the whole file
    /// in memory): use a page delta or a full copy.
    #[error(
        "{path}: {size} bytes is too large for an rsync delta (limit {limit}); use a page delta or a full copy"
    )]
    DeltaTooLarge {
        /// The file, relative to the backup directory.
        path: String,
        /// Its size.
        size: u64,
        /// The largest size accepted.
        limit: u64,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<barman_fs::Error> for Error {
    /// An [`Error::Io`] on the file the durable write was about.
    fn from(e: barman_fs::Error) -> Self {
        let (_, path, source) = e.into_parts();
        Self::Io { path, source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
