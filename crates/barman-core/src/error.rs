//! The crate's error type.
//!
//! Rules: every variant names the file, option or object involved; I/O errors
//! are kept as `#[source]`, never flattened into strings.

use std::path::PathBuf;

/// Errors returned by `barman-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a path (``{action} `{path}`: {cause}``).
    #[error(transparent)]
    Io(#[from] barman_fs::PathIoError),
    /// A configuration error (from `barman-config`).
    #[error(transparent)]
    Config(#[from] barman_config::Error),
    /// A catalog error: a malformed or missing catalog file, an invalid
    /// value, a busy lock (from `barman-catalog`).
    #[error(transparent)]
    Catalog(#[from] barman_catalog::Error),
    /// A WAL file name, segment name or LSN is invalid (from `barman-wal`).
    #[error(transparent)]
    Wal(#[from] barman_wal::Error),
    // -- PostgreSQL access (owned by postgres/) --
    /// A PostgreSQL connection or query failed (from `barman-pg`). The
    /// message never holds a password: conninfo strings are redacted.
    #[error(transparent)]
    Postgres(#[from] barman_pg::Error),
    /// A replication-protocol connection or command failed (owned by
    /// replication/; the SQLSTATE is available from the inner error).
    #[error(transparent)]
    Replication(#[from] barman_pg::replication::Error),
    /// The server takes no replication connection at all.
    #[error(
        "server `{server}` accepts no replication connection ({detail}): streaming needs \
         wal_level = replica (or logical) and max_wal_senders > 0 on the PostgreSQL server"
    )]
    ReplicationDisabled {
        /// The server.
        server: String,
        /// What PostgreSQL said.
        detail: String,
    },
    // -- WAL archiving (owned by archive/) --
    /// A WAL file was refused (bad name, truncated, foreign cluster, bad
    /// checksum, ...). Nothing was written to the archive.
    #[error("WAL file `{name}` refused: {reason}")]
    WalRejected {
        /// The file name as received.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A put-wal stream is malformed (not a tar, unsupported member, missing
    /// or bad checksum file).
    #[error("put-wal: {0}")]
    PutWalStream(String),
    /// A WAL file is not in the archive.
    #[error("WAL file `{name}` not found in the archive of server `{server}`")]
    WalNotFound {
        /// The server.
        server: String,
        /// The WAL name asked for.
        name: String,
    },
    /// An archived WAL file is encrypted (Barman 3.14+'s `encryption = gpg`):
    /// barman-rs cannot decrypt it yet, so it is never served or staged as
    /// if it were a WAL (PostgreSQL would end recovery at it).
    #[error(
        "WAL file `{}` is encrypted (Barman's `encryption = gpg`): barman-rs cannot decrypt WAL files yet (not implemented)",
        path.display()
    )]
    EncryptedWal {
        /// The archived file.
        path: std::path::PathBuf,
    },
    /// The operation is not allowed on a passive node.
    #[error(
        "server `{server}` is a passive node (primary_ssh_command is set): {action} is not allowed"
    )]
    PassiveServer {
        /// The server.
        server: String,
        /// The refused operation.
        action: &'static str,
    },
    /// A timeout expired while waiting for something.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The copy engine failed.
    #[error(transparent)]
    Copy(#[from] barman_copy::Error),
    /// A backup was refused before it started (a failed check, a bad option).
    #[error("{0}")]
    BackupRefused(String),
    /// An incremental backup was refused before it started (Barman's
    /// checks of `--incremental` and its parent); nothing was written.
    #[error("failed to start backup: {0}")]
    IncrementalRefused(String),
    /// A delete was refused (kept backup, minimum redundancy, a busy lock);
    /// nothing was changed.
    #[error("{0}")]
    DeleteRefused(String),
    /// A keep annotation was refused (the backup is not DONE, or is
    /// incremental); nothing was changed.
    #[error("{0}")]
    KeepRefused(String),
    /// A pre retry hook script exited 63 (`ABORT_STOP`), or the cancel flag
    /// interrupted a hook: the operation did not run (or stopped where it was).
    #[error(transparent)]
    HookAborted(#[from] barman_hooks::HookAbort),
    /// A hook script option that barman-hooks does not know.
    #[error(transparent)]
    Hooks(barman_hooks::Error),
    /// A passive-node synchronisation was refused or could not go on
    /// (not a passive node, a busy lock, differing compression, a file
    /// that does not match the primary's manifest, ...).
    #[error("server `{server}`: {message}")]
    Sync {
        /// The server.
        server: String,
        /// What happened.
        message: String,
    },
    /// `sync-info` cannot answer from the WAL asked for (older than the
    /// first or newer than the last WAL in xlog.db): the passive node asks
    /// again without it.
    #[error("{0}")]
    SyncPosition(String),
    /// The primary's `sync-info` could not be run, or its answer is not a
    /// valid sync-info document.
    #[error("sync-info execution on remote primary server {server} failed: {message}")]
    PrimaryInfo {
        /// The (passive) server.
        server: String,
        /// Why (the primary's stderr, or the invalid field).
        message: String,
    },
    /// A backup sync failed; its backup.info is FAILED with this error.
    #[error("sync of backup {id} of server `{server}` failed: {message}")]
    SyncFailed {
        /// The server.
        server: String,
        /// The backup id.
        id: String,
        /// The `error` recorded in backup.info.
        message: String,
    },
    /// A backup failed; its backup.info is FAILED with this error.
    #[error("backup {id} of server `{server}` failed: {message}")]
    BackupFailed {
        /// The server.
        server: String,
        /// The backup id.
        id: String,
        /// The `error` recorded in backup.info.
        message: String,
    },
}

impl Error {
    /// A PostgreSQL error about the server at `conninfo` (already redacted).
    pub fn postgres(conninfo: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Postgres(barman_pg::Error::Postgres {
            conninfo: conninfo.into(),
            message: message.into(),
        })
    }

    /// Whether this is a busy lock ([`barman_catalog::Error::LockBusy`]).
    pub fn is_lock_busy(&self) -> bool {
        matches!(self, Self::Catalog(barman_catalog::Error::LockBusy { .. }))
    }

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
