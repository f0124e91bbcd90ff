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
    /// The configuration file does not exist.
    #[error("configuration file `{}` not found", path.display())]
    ConfigNotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// A line of a configuration file cannot be parsed.
    #[error("{}:{line}: {message}", file.display())]
    ConfigSyntax {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An option has a value outside its allowed set.
    #[error("{}:{line}: [{section}] {option} = {value}: invalid value (allowed: {allowed})", file.display())]
    ConfigValue {
        /// The file the value comes from.
        file: PathBuf,
        /// 1-based line number of the option.
        line: usize,
        /// The section the value comes from.
        section: String,
        /// The option name.
        option: String,
        /// The value as written.
        value: Box<str>,
        /// A description of the allowed values.
        allowed: Box<str>,
    },
    /// A configuration rule is broken (conflicting options, reserved names, ...).
    #[error("{}:{line}: [{section}] {message}", file.display())]
    ConfigRule {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The section involved.
        section: String,
        /// What is wrong.
        message: String,
    },
    /// Several configuration errors, reported together (one per line).
    #[error("{} configuration errors:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    ConfigErrors(Vec<Error>),
    /// A server sets an option barman-rs accepts but does not act on yet
    /// ([`crate::config::NOT_IMPLEMENTED`]): refused rather than ignored.
    #[error(
        "server `{server}`: option {option} = {value} is accepted but not implemented by barman-rs yet \
         ({missing}): remove it from the configuration, or keep using Barman for this server"
    )]
    NotImplemented {
        /// The server.
        server: String,
        /// The option as written in the configuration.
        option: String,
        /// Its value (`***` for a secret).
        value: String,
        /// The feature barman-rs does not have.
        missing: String,
    },
    // -- catalog errors (owned by catalog/) --
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
    // -- PostgreSQL access (owned by postgres/) --
    /// A PostgreSQL connection or query failed. The message never holds a
    /// password: conninfo strings are redacted.
    #[error("PostgreSQL ({conninfo}): {message}")]
    Postgres {
        /// The redacted conninfo of the server.
        conninfo: String,
        /// What failed.
        message: String,
    },
    /// A replication-protocol connection or command failed (owned by
    /// replication/; the SQLSTATE is available from the inner error).
    #[error(transparent)]
    Replication(#[from] crate::replication::Error),
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
    /// Wraps an I/O error with the action and the path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<barman_fs::Error> for Error {
    /// The same [`Error::Io`]: action, path and cause.
    fn from(e: barman_fs::Error) -> Self {
        let (action, path, source) = e.into_parts();
        Self::Io {
            action,
            path,
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
