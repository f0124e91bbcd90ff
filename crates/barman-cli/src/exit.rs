//! Exit codes, in one place.
//!
//! Barman's convention: 0 unless an error was reported; errors default to 1;
//! some commands override it (e.g. `get-wal` uses 3 for a bad WAL name or an
//! unwritable destination, `check --nagios` uses 2 for CRITICAL).

use std::process::ExitCode;

/// The exit status of a `barman` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok,
    /// A command failed (Barman's default error code).
    Failure,
    /// Invalid usage or Nagios CRITICAL.
    Critical,
    /// Bad input or destination (get-wal, put-wal).
    BadInput,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failure => 1,
            Self::Critical => 2,
            Self::BadInput => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// True when the error chain holds a broken pipe (`barman list-backups | head`):
/// treated as success, as ripgrep does.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
