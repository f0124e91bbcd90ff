//! Errors of the replication client.

use std::fmt;
use std::io;

/// An `ErrorResponse` sent by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// `ERROR`, `FATAL` or `PANIC` (the non-localised severity when the
    /// server sends it).
    pub severity: String,
    /// The SQLSTATE code, e.g. `28P01` (invalid password).
    pub code: String,
    /// The primary message.
    pub message: String,
    /// The optional detail message.
    pub detail: Option<String>,
    /// The optional hint.
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " (detail: {detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Errors of the replication client.
///
/// No message ever holds a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The conninfo string or URI cannot be parsed or holds an invalid value.
    #[error("invalid conninfo: {0}")]
    Conninfo(String),
    /// The server cannot be reached.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `host:port` or the socket path.
        target: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading from or writing to the connection failed.
    #[error("replication connection: cannot {action}: {source}")]
    Io {
        /// What was being done ("read from the server", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server closed the connection.
    #[error("replication connection closed by the server")]
    Closed,
    /// The server answered with an `ErrorResponse` (authentication failures
    /// included: SQLSTATE `28P01` or `28000`).
    #[error("server error: {0}")]
    Server(Box<ServerError>),
    /// Authentication cannot proceed on the client's side (no password
    /// given, unsupported method, the server's SCRAM signature is wrong).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// `CREATE_REPLICATION_SLOT`: the slot already exists (SQLSTATE `42710`).
    #[error("replication slot \"{name}\" already exists")]
    SlotExists {
        /// The slot name.
        name: String,
    },
    /// `DROP_REPLICATION_SLOT`: the slot does not exist (SQLSTATE `42704`).
    #[error("replication slot \"{name}\" does not exist")]
    SlotMissing {
        /// The slot name.
        name: String,
    },
    /// A slot name PostgreSQL would refuse (only `a-z`, `0-9` and `_`, at
    /// most 63 characters).
    #[error(
        "invalid replication slot name `{name}`: use lower-case letters, digits and underscores (at most 63)"
    )]
    InvalidSlotName {
        /// The name as given.
        name: String,
    },
    /// The server answered `N` to the SSLRequest and `sslmode` requires TLS.
    #[error("server {target} does not support SSL, but SSL was required (sslmode={sslmode})")]
    TlsRefused {
        /// `host:port`.
        target: String,
        /// The `sslmode` in force.
        sslmode: crate::tls::SslMode,
    },
    /// The TLS handshake failed: certificate verification (unknown CA, a
    /// host name the certificate does not name, ...) or the protocol.
    #[error("TLS handshake with {target} failed: {message}")]
    TlsHandshake {
        /// `host:port`.
        target: String,
        /// What went wrong.
        message: String,
    },
    /// A TLS setting cannot be used (a missing or unreadable root
    /// certificate file, a client key with open permissions, ...).
    #[error("TLS for {target}: {source}")]
    TlsConfig {
        /// `host:port`.
        target: String,
        /// The problem.
        #[source]
        source: crate::tls::TlsError,
    },
    /// The server (or this client) does not support what was asked.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The server sent something this client does not understand.
    #[error("replication protocol error: {0}")]
    Protocol(String),
    /// A base-backup sink failed.
    #[error("base backup: {0}")]
    Sink(#[source] io::Error),
    /// An earlier error left the connection in an unknown protocol state.
    #[error("the replication connection is unusable after an earlier error")]
    Broken,
}

impl Error {
    /// The SQLSTATE of a server error (`Server`, `SlotExists`, `SlotMissing`).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server(e) => Some(&e.code),
            Self::SlotExists { .. } => Some(super::SQLSTATE_DUPLICATE_OBJECT),
            Self::SlotMissing { .. } => Some(super::SQLSTATE_UNDEFINED_OBJECT),
            _ => None,
        }
    }

    /// The server's error, when the server sent one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Self::Server(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the connection was lost (closed by the server, an I/O error,
    /// or a `FATAL` server error that ends the session).
    pub fn is_disconnect(&self) -> bool {
        match self {
            Self::Closed | Self::Io { .. } | Self::Broken => true,
            Self::Server(e) => e.severity == "FATAL" || e.severity == "PANIC",
            _ => false,
        }
    }

    /// Whether authentication failed (client side, or SQLSTATE class 28).
    pub fn is_auth_failure(&self) -> bool {
        match self {
            Self::Auth(_) => true,
            Self::Server(e) => e.code.starts_with("28"),
            _ => false,
        }
    }

    pub(crate) fn io(action: &'static str, source: io::Error) -> Self {
        Self::Io { action, source }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol(message.into())
    }
}

/// Result alias of the replication client.
pub type Result<T, E = Error> = std::result::Result<T, E>;
