//! `barman-wal-restore`: fetching a WAL file from a remote Barman server
//! with `ssh ... 'barman [--config=PATH] get-wal [-P] [--keep-compression]
//! SERVER WAL_NAME'` into `WAL_DEST`, through a temporary file renamed into
//! place (a failure never leaves a partial file there).
//!
//! - [`fetch`]: one ssh session, its output decompressed into a file.
//! - [`spool`]: `--parallel N`, the files fetched ahead into a spool
//!   directory, delivered by later calls without contacting the server.

pub mod fetch;
pub mod spool;

use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;

use barman_wal::SegmentName;

use self::fetch::FetchError;
use crate::ssh::{Ended, InvalidRemote, Remote, TestError};
use crate::{Warn, Warning, fsutil};

/// Exit status when the remote get-wal failed without a status of its own.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit status for ssh failures (ssh's 255) and local errors.
pub const EXIT_LOCAL: u8 = 2;
/// Exit status when WAL_DEST is a directory or cannot be written.
pub const EXIT_DEST: u8 = 3;

/// What to restore, and how (the options of Barman's script).
#[derive(Debug, Clone)]
pub struct Request {
    /// The Barman server name (`SERVER_NAME`).
    pub server: String,
    /// The WAL file asked for (`%f`).
    pub wal_name: String,
    /// Where to write it (`%p`).
    pub wal_dest: PathBuf,
    /// The spool directory of `--parallel`.
    pub spool_dir: PathBuf,
    /// `--parallel`: files to peek and fetch (0 or 1: disabled).
    pub parallel: usize,
    /// `-P/--partial`: accept `.partial` files.
    pub partial: bool,
    /// `--keep-compression`: the server sends the file as archived.
    pub keep_compression: bool,
}

impl Request {
    /// The remote `barman get-wal` command fetching `wal_name`.
    fn get_wal(&self, remote: &Remote, wal_name: &str) -> String {
        let mut words = vec!["get-wal"];
        if self.partial {
            words.push("-P");
        }
        if self.keep_compression {
            words.push("--keep-compression");
        }
        words.extend([self.server.as_str(), wal_name]);
        remote.barman_command(&words)
    }
}

/// Why restoring failed. [`RestoreError::exit_status`] is the exit status
/// of Barman's script; [`RestoreError::sleeps`] tells whether `--sleep`
/// applies.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The ssh user, host or configuration path is refused.
    #[error(transparent)]
    InvalidRemote(#[from] InvalidRemote),
    /// `--test` failed.
    #[error(transparent)]
    Test(#[from] TestError),
    /// WAL_NAME is not a plain file name.
    #[error("WAL_NAME must be a file name: {0:?}")]
    WalName(String),
    /// WAL_DEST is a directory.
    #[error("WAL_DEST cannot be a directory: {}", .0.display())]
    DestIsDirectory(PathBuf),
    /// No temporary file can be created next to WAL_DEST.
    #[error("Cannot open '{}' (WAL_DEST) for writing: {source}", path.display())]
    DestNotWritable {
        /// WAL_DEST.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A spooled file could not be moved to WAL_DEST.
    #[error("Failure moving {} to {}: {source}", spooled.display(), dest.display())]
    Deliver {
        /// The spooled file.
        spooled: PathBuf,
        /// WAL_DEST.
        dest: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The get-wal (or peek) failed: `--sleep` applies.
    #[error(transparent)]
    GetWal(#[from] GetWalError),
}

/// How a `barman get-wal` (or `get-wal --peek`) run failed.
#[derive(Debug, thiserror::Error)]
pub enum GetWalError {
    /// ssh could not be started or waited for.
    #[error("Error executing ssh: {0}")]
    Spawn(io::Error),
    /// ssh could not reach the server (its status 255).
    #[error("Connection problem with ssh")]
    Connection,
    /// The remote command failed with this status.
    #[error("Remote '{command}' command has failed!")]
    RemoteFailed {
        /// `barman get-wal` or `barman get-wal --peek`.
        command: &'static str,
        /// Its exit status.
        status: u8,
    },
    /// ssh was killed by a signal.
    #[error("ssh was terminated by a signal")]
    Signal,
    /// The data could not be decoded or written.
    #[error("Cannot receive the WAL file: {0}")]
    Receive(io::Error),
    /// WAL_DEST could not be written.
    #[error("Cannot write '{}' (WAL_DEST): {source}", path.display())]
    WriteDest {
        /// WAL_DEST.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `--peek` did not list WAL_NAME first.
    #[error("The required file is not available: {0}")]
    NotAvailable(String),
}

impl GetWalError {
    /// The error matching a fetch error of `command`.
    fn of_fetch(error: FetchError, command: &'static str) -> Self {
        match error {
            FetchError::Spawn(e) => Self::Spawn(e),
            FetchError::Ssh(Ended::SshFailure) => Self::Connection,
            FetchError::Ssh(Ended::Remote(status)) => Self::RemoteFailed { command, status },
            FetchError::Ssh(Ended::Signal | Ended::Success) => Self::Signal,
            FetchError::Local(e) => Self::Receive(e),
        }
    }
}

impl RestoreError {
    /// The exit status of Barman's `barman-wal-restore`: 1 when the WAL is
    /// not available, 2 for ssh and local errors, 3 when WAL_DEST cannot
    /// be written, the remote status when get-wal failed with one; with
    /// `--test` ssh's status unchanged.
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Test(TestError::Connection) => 255,
            Self::Test(TestError::Failed { status, .. })
            | Self::GetWal(GetWalError::RemoteFailed { status, .. }) => *status,
            Self::DestIsDirectory(_) | Self::DestNotWritable { .. } => EXIT_DEST,
            Self::GetWal(GetWalError::NotAvailable(_)) => EXIT_NOT_FOUND,
            _ => EXIT_LOCAL,
        }
    }

    /// Whether `--sleep` applies (a failed get-wal or peek).
    pub fn sleeps(&self) -> bool {
        matches!(self, Self::GetWal(_))
    }
}

/// `--test`: runs `barman get-wal --test SERVER dummy_wal_name` remotely;
/// its output goes to ours.
pub fn connectivity_test(remote: &Remote, server: &str) -> Result<(), RestoreError> {
    Ok(remote.connectivity_test("get-wal", &[server, "dummy_wal_name"])?)
}

/// Restores `request.wal_name` into `request.wal_dest`: from the spool
/// when an earlier `--parallel` call fetched it, else with `get-wal`
/// (fetching the next files into the spool meanwhile with `--parallel`).
pub fn restore(remote: &Remote, request: &Request, warn: Warn<'_>) -> Result<(), RestoreError> {
    let name = request.wal_name.as_str();
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(RestoreError::WalName(name.to_owned()));
    }

    // (1) WAL_DEST: not a directory, and writable (a temporary file next to
    // it receives the data before the final rename).
    let dest = request.wal_dest.as_path();
    if fs::metadata(dest).is_ok_and(|m| m.is_dir()) {
        return Err(RestoreError::DestIsDirectory(dest.to_path_buf()));
    }
    let temp = barman_fs::TempFile::create(dest, barman_fs::FILE_MODE).map_err(|e| {
        RestoreError::DestNotWritable {
            path: dest.to_path_buf(),
            source: e.into(),
        }
    })?;

    // (2) Fetched ahead by an earlier call?
    let spool_usable = match fsutil::private_dir(&request.spool_dir, false) {
        Ok(exists) => exists,
        Err(e) => {
            warn(&Warning::SpoolIgnored(e));
            false
        }
    };
    let spooled = request.spool_dir.join(name);
    if spool_usable && fs::symlink_metadata(&spooled).is_ok_and(|m| m.is_file()) {
        return spool::deliver(&spooled, dest, temp).map_err(|source| RestoreError::Deliver {
            spooled: spooled.clone(),
            dest: dest.to_path_buf(),
            source,
        });
    }

    // (3) Which files to fetch ahead.
    let extras = if request.parallel > 1 && name.parse::<SegmentName>().is_ok() {
        prefetch_list(request, remote, warn)?
    } else {
        Vec::new()
    };

    // (4) Fetch WAL_NAME (and the extras concurrently).
    let main_command = request.get_wal(remote, name);
    let fetch_main = || -> Result<(), RestoreError> {
        fetch::fetch(remote, &main_command, temp.file())
            .map_err(|e| GetWalError::of_fetch(e, "barman get-wal"))?;
        temp.commit().map_err(|e| {
            RestoreError::from(GetWalError::WriteDest {
                path: dest.to_path_buf(),
                source: e.into(),
            })
        })
    };
    if extras.is_empty() {
        fetch_main()
    } else {
        let command_for = |wal: &str| request.get_wal(remote, wal);
        spool::fetch_with_prefetch(
            remote,
            &request.spool_dir,
            &extras,
            &command_for,
            fetch_main,
            warn,
        )
    }
}

/// `--parallel`: makes sure the spool is usable, runs `get-wal --peek` and
/// returns the names to fetch ahead. An empty list when the spool cannot be
/// used (with a warning); an error when the peek fails or does not list
/// WAL_NAME first.
fn prefetch_list(
    request: &Request,
    remote: &Remote,
    warn: Warn<'_>,
) -> Result<Vec<String>, GetWalError> {
    if let Err(source) = fsutil::private_dir(&request.spool_dir, true) {
        warn(&Warning::SpoolUnusable {
            wal: request.wal_name.clone(),
            source,
        });
        return Ok(Vec::new());
    }
    let peek = request.parallel.to_string();
    let mut words = vec!["get-wal"];
    if request.partial {
        words.push("-P");
    }
    words.extend(["--peek", peek.as_str(), &request.server, &request.wal_name]);
    let output = remote
        .ssh(&remote.barman_command(&words))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .output()
        .map_err(GetWalError::Spawn)?;
    match Ended::of(output.status) {
        Ended::Success => {}
        ended => {
            return Err(GetWalError::of_fetch(
                FetchError::Ssh(ended),
                "barman get-wal --peek",
            ));
        }
    }
    let listed: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    match listed.split_first() {
        Some((first, rest)) if *first == request.wal_name => Ok(spool::extra_names(
            rest,
            &request.spool_dir,
            request.parallel - 1,
        )),
        _ => Err(GetWalError::NotAvailable(request.wal_name.clone())),
    }
}
