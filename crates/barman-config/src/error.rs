//! The configuration's error type.
//!
//! Rules: every variant names the file, line, section and option involved;
//! I/O errors are kept as `#[source]`, never flattened into strings.

use std::path::PathBuf;

/// Errors returned by `barman-config`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a path (``{action} `{path}`: {cause}``).
    #[error(transparent)]
    Io(#[from] barman_fs::PathIoError),
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
    /// ([`crate::NOT_IMPLEMENTED`]): refused rather than ignored.
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
    /// A bandwidth limit whose bytes per second would overflow (and wrap
    /// to a tiny limit or none): refused before anything is copied.
    #[error(
        "server `{server}`: {option} = {kbps} KB/s is too large (at most {max} KB/s)",
        max = crate::MAX_BANDWIDTH_LIMIT_KBPS
    )]
    BandwidthTooLarge {
        /// The server.
        server: String,
        /// The option (`--bwlimit`, `bandwidth_limit`, `tablespace_bandwidth_limit (TBS)`).
        option: String,
        /// The value, in KB/s.
        kbps: u64,
    },
    /// A catalog file or value named by the configuration is invalid.
    #[error(transparent)]
    Catalog(#[from] barman_catalog::Error),
}

impl Error {
    /// Wraps an I/O error with the action and the path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io(barman_fs::PathIoError::new(action, path, source))
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
