//! `barman-wal-archive`: archiving a WAL file on a remote Barman server
//! with `ssh ... 'barman [--config=PATH] put-wal SERVER'`, the WAL (and with
//! `--parallel` the next ready segments) sent as a
//! [`put_wal_stream`](barman_wal::put_wal_stream).
//!
//! - [`push`]: one ssh session carrying one stream of one or more WAL files.
//! - [`prefetch`]: `--parallel N`, pushing ready segments ahead of
//!   PostgreSQL's requests, with a marker cache.

pub mod prefetch;
pub mod push;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use barman_wal::Compression;

pub use self::push::{PushOptions, Stamp};
use crate::Warn;
use crate::ssh::{Ended, InvalidRemote, Remote, TestError};

/// Exit status for local errors (bad arguments, unreadable WAL file).
pub const EXIT_LOCAL: u8 = 2;
/// Exit status when ssh could not reach the Barman server (ssh's 255).
pub const EXIT_CONNECTION: u8 = 3;

/// Why archiving failed. [`ArchiveError::exit_status`] is the exit status
/// of Barman's script.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The ssh user, host or configuration path is refused.
    #[error(transparent)]
    InvalidRemote(#[from] InvalidRemote),
    /// `--test` failed.
    #[error(transparent)]
    Test(#[from] TestError),
    /// WAL_PATH cannot be read.
    #[error("Cannot read WAL_PATH {}: {source}", path.display())]
    WalPath {
        /// WAL_PATH.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// WAL_PATH (or a WAL pushed ahead) is a directory.
    #[error("WAL_PATH cannot be a directory: {}", .0.display())]
    Directory(PathBuf),
    /// A WAL path without a (UTF-8) file name.
    #[error("invalid WAL file name: {}", .0.display())]
    InvalidName(PathBuf),
    /// A WAL file cannot be opened or read.
    #[error("Cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A WAL path is not a regular file.
    #[error("{} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    /// Compressing a WAL file failed.
    #[error("Cannot {compression}-compress {}: {source}", path.display())]
    Compress {
        /// The algorithm.
        compression: Compression,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// ssh could not be started.
    #[error("Error executing ssh: {0}")]
    Spawn(io::Error),
    /// ssh could not be waited for.
    #[error("Error waiting for ssh: {0}")]
    Wait(io::Error),
    /// Reading a WAL file failed while it was being sent (the stream was
    /// cut short, so nothing was stored).
    #[error("Cannot read {names}: {source}")]
    ReadWhileSending {
        /// The WAL names of the session, comma-separated.
        names: String,
        /// Why.
        source: io::Error,
    },
    /// Writing the stream to ssh failed.
    #[error("Error sending {names} to ssh: {source}")]
    Send {
        /// The WAL names of the session, comma-separated.
        names: String,
        /// Why.
        source: io::Error,
    },
    /// ssh could not reach the server (its status 255).
    #[error("Connection problem with ssh")]
    Connection,
    /// The remote `barman put-wal` failed with this status.
    #[error("Remote 'barman put-wal' command has failed!")]
    RemoteFailed(u8),
    /// ssh was killed by a signal.
    #[error("ssh was terminated by a signal")]
    Signal,
}

impl ArchiveError {
    /// The exit status of Barman's `barman-wal-archive`: the remote
    /// status when `barman put-wal` failed, 3 when ssh could not connect,
    /// 2 for local errors; with `--test` ssh's status unchanged.
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::RemoteFailed(status) | Self::Test(TestError::Failed { status, .. }) => *status,
            Self::Connection => EXIT_CONNECTION,
            Self::Test(TestError::Connection) => 255,
            _ => EXIT_LOCAL,
        }
    }

    /// The error matching how ssh ended, `None` on success.
    pub(crate) fn from_ssh(ended: Ended) -> Option<Self> {
        match ended {
            Ended::Success => None,
            Ended::SshFailure => Some(Self::Connection),
            Ended::Remote(status) => Some(Self::RemoteFailed(status)),
            Ended::Signal => Some(Self::Signal),
        }
    }
}

/// `--test`: runs `barman put-wal --test SERVER` remotely with no input;
/// its output goes to ours.
pub fn connectivity_test(remote: &Remote, server: &str) -> Result<(), ArchiveError> {
    Ok(remote.connectivity_test("put-wal", &[server])?)
}

/// `--parallel N`: how many ssh sessions, and where the markers of the
/// WAL files pushed ahead are kept.
#[derive(Debug, Clone, Copy)]
pub struct Parallel<'a> {
    /// The number of sessions (0 or 1: no prefetch).
    pub sessions: usize,
    /// The prefetch cache directory (see [`prefetch::default_cache_dir`]).
    pub cache_dir: &'a Path,
}

/// Archives `wal`: alone when `parallel.sessions` is 0 or 1, else with the
/// ready segments that follow it (see [`prefetch`]).
pub fn archive(
    remote: &Remote,
    options: &PushOptions,
    wal: &Path,
    parallel: Parallel<'_>,
    warn: Warn<'_>,
) -> Result<(), ArchiveError> {
    let meta = fs::metadata(wal).map_err(|source| ArchiveError::WalPath {
        path: wal.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return Err(ArchiveError::Directory(wal.to_path_buf()));
    }
    if parallel.sessions > 1 {
        prefetch::archive_parallel(remote, options, (wal, &meta), parallel, warn)
    } else {
        push::push(remote, options, wal).map(drop)
    }
}
