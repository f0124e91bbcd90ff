//! The error of the SQL connection.

/// A PostgreSQL connection or query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PostgreSQL connection or query failed. The message never holds a
    /// password: conninfo strings are redacted.
    #[error("PostgreSQL ({conninfo}): {message}")]
    Postgres {
        /// The redacted conninfo of the server.
        conninfo: String,
        /// What failed.
        message: String,
    },
}

/// Result alias of the SQL connection.
pub type Result<T, E = Error> = std::result::Result<T, E>;
