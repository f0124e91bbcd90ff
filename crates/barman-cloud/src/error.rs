//! Errors of this crate, each naming the value, key or bucket concerned.

use std::io;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A destination or source URL this provider does not accept.
    #[error("invalid {provider} URL `{url}`: {reason}")]
    Url {
        /// The provider asked for (`aws-s3`, ...).
        provider: &'static str,
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A size that is not `<integer>[unit]`.
    #[error(
        "invalid size `{0}`: expected an integer, optionally followed by KB, MB, GB, TB, PB (or KiB, MiB, ...)"
    )]
    Size(String),
    /// A name that is not a WAL file name Barman archives.
    #[error("`{0}` is not a valid WAL file name")]
    WalName(String),
    /// An object key the client cannot address.
    #[error("invalid object key `{key}`: {reason}")]
    Key {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The bucket (container) does not exist.
    #[error("bucket `{0}` does not exist")]
    NoSuchBucket(String),
    /// The object does not exist.
    #[error("object `{0}` does not exist")]
    NotFound(String),
    /// A request to the object store failed.
    #[error("cannot {action} `{what}`: {message}")]
    Store {
        /// What was being done (`upload`, `list`, ...).
        action: &'static str,
        /// The key, prefix or bucket.
        what: String,
        /// The error and its causes, as one line.
        message: String,
        /// Whether the endpoint could not be reached at all.
        network: bool,
        /// The client's error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// Reading the data to upload failed.
    #[error("cannot read the data of `{0}`: {1}")]
    Read(String, #[source] io::Error),
    /// Writing downloaded data failed.
    #[error("cannot write the data of `{0}`: {1}")]
    Write(String, #[source] io::Error),
    /// A local file operation failed.
    #[error(transparent)]
    Io(#[from] barman_fs::Error),
    /// A compression stream failed.
    #[error("compression: {0}")]
    Compression(#[from] barman_wal::Error),
    /// A backup identifier that matches no backup.
    #[error("Unknown backup '{backup}' for server '{server}'")]
    UnknownBackup {
        /// The identifier given.
        backup: String,
        /// The server.
        server: String,
    },
    /// Two backups carry the name given.
    #[error("Multiple backups found matching name '{name}' (try using backup ID instead): {ids}")]
    AmbiguousBackupName {
        /// The name.
        name: String,
        /// The matching ids, space separated.
        ids: String,
    },
    /// A catalog file (backup.info) is invalid.
    #[error(transparent)]
    Catalog(barman_catalog::Error),
    /// A restore destination that already holds files.
    #[error("Destination {} already exists and it is not empty", .0.display())]
    DestinationNotEmpty(std::path::PathBuf),
    /// A backup without its main tar object.
    #[error("Missing file {0} for the backup")]
    MissingTar(String),
    /// A `--tablespace` rule naming no tablespace of the backup.
    #[error("Invalid tablespace relocation rule: the backup has no tablespace `{0}`")]
    UnknownTablespace(String),
    /// Unpacking an archive failed (damaged, or an entry outside its
    /// destination).
    #[error("cannot unpack `{0}`: {1}")]
    Unpack(String, #[source] io::Error),
    /// A restored file differs from the backup's checksum manifest (or is
    /// missing from the tars, or not in the manifest).
    #[error("verification of the backup failed in `{0}`: {1}")]
    Verify(String, String),
    /// PostgreSQL refused the backup, or a file of it could not be read.
    #[error("{0}")]
    Backup(String),
    /// A named AWS profile could not be used (missing, unreadable, or
    /// needing what barman-rs does not implement).
    #[error("{0}")]
    Profile(String),
    /// The async runtime could not start.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(String),
}

impl Error {
    /// A failed request `action` on `what`.
    pub(crate) fn store(action: &'static str, what: &str, e: object_store::Error) -> Self {
        let message = error_chain(&e);
        let network = is_network(&e);
        Self::Store {
            action,
            what: what.to_owned(),
            message,
            network,
            source: Box::new(e),
        }
    }

    /// Whether the endpoint could not be reached (refused, reset, timed
    /// out, name not resolved): Barman's "network error", exit 2 where a
    /// tool probes the endpoint first.
    pub fn is_network(&self) -> bool {
        matches!(self, Self::Store { network: true, .. })
    }
}

/// Whether a request failed before reaching the service.
fn is_network(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
                    | io::ErrorKind::AddrNotAvailable
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        let text = s.to_string();
        if text.contains("dns error")
            || text.contains("failed to lookup address")
            || text.contains("tcp connect error")
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `e` and its sources, as one text.
/// (A cause whose text the message already holds is not repeated: the
/// client's messages often include their sources.)
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    for cause in std::iter::successors(Some(e), |e| e.source()) {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}
