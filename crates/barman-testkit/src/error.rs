//! The harness's error type.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Result alias used throughout the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while setting up or driving a test fixture.
///
/// Errors are meant to be `.expect()`ed by tests so that a missing dependency
/// makes the test fail loudly (never skip); messages therefore say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary the fixture needs is not installed.
    #[error(
        "required binary `{}` is missing: install it with `{install}` (or run scripts/install-test-deps.sh)",
        path.display()
    )]
    MissingBinary {
        /// The absolute path that was looked for.
        path: PathBuf,
        /// The command that installs it.
        install: String,
    },
    /// A program could not be spawned at all.
    #[error("failed to run `{command}`")]
    Spawn {
        /// The command line, for the message.
        command: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A program ran but exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}")]
    CommandFailed {
        /// The command line, for the message.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard output.
        stdout: String,
        /// Its standard error.
        stderr: String,
    },
    /// A filesystem operation failed.
    #[error("i/o error on `{}`", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The PostgreSQL server did not come up.
    #[error("postgresql failed to start: {reason}\n--- server log ---\n{log}")]
    PostgresStart {
        /// What failed.
        reason: String,
        /// The tail of the server log.
        log: String,
    },
    /// The loopback sshd did not come up.
    #[error("sshd failed to start: {reason}\n--- sshd log ---\n{log}")]
    SshdStart {
        /// What failed.
        reason: String,
        /// The sshd log.
        log: String,
    },
    /// A tool printed something the harness could not understand.
    #[error("could not parse output of {what}: {output:?}")]
    Parse {
        /// Which tool or query.
        what: String,
        /// The output that did not parse.
        output: String,
    },
    /// The requested setup is impossible for the user running the tests.
    #[error("unsupported test setup: {0}")]
    Unsupported(String),
}

impl Error {
    /// Wraps an [`io::Error`] with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
