//! The library of the WAL clients `barman-wal-archive` and
//! `barman-wal-restore`: PostgreSQL's `archive_command` and
//! `restore_command` for a remote Barman server, compatible with Barman's
//! own scripts (options, remote commands, exit statuses).
//!
//! - [`ssh`]: reaching the Barman server — the remote `barman` command line,
//!   how ssh's exit status reads, and the `--test` of both clients.
//! - [`wal_archive`]: pushing WAL files with `barman put-wal` (the stream
//!   is [`barman_wal::put_wal_stream`], the module `barman put-wal` reads it
//!   with), and the `--parallel` prefetch with its marker cache.
//! - [`wal_restore`]: fetching WAL files with `barman get-wal` into
//!   `WAL_DEST`, and the `--parallel` spool.
//! - [`fsutil`]: the private directories (prefetch cache, spool) those use.
//! - [`client`]: the `main` both binaries share (parse, run, print the
//!   error, exit).
//! - [`cloud`]: what the `barman-cloud-*` tools share (their common
//!   options, exit statuses, log lines and `main`); their work lives in
//!   the `barman-cloud` crate.
//!
//! Nothing else here prints or exits: failures are typed errors carrying
//! the exit status Barman's scripts use, and warnings go to a [`Warn`]
//! callback. The binaries define their arguments, call this library and
//! print. The `barman`
//! command itself (`src/main.rs`) is a binary of its own; its work lives in
//! `barman-core`.

pub mod client;
pub mod cloud;
pub mod fsutil;
pub mod ssh;
pub mod wal_archive;
pub mod wal_restore;

use std::io;
use std::path::PathBuf;

use crate::wal_archive::ArchiveError;

/// Where the clients send warnings (the binaries print them as
/// `WARNING: ...` on standard error, which PostgreSQL copies into its log).
/// Called from several threads.
pub type Warn<'a> = &'a (dyn Fn(&Warning) + Sync);

/// Something that went wrong without failing the run: the work goes on
/// without the prefetch cache, the spool or a file fetched ahead.
#[derive(Debug, thiserror::Error)]
pub enum Warning {
    /// `barman-wal-archive`: the prefetch cache directory cannot be used;
    /// the WAL is archived alone.
    #[error("prefetch cache unusable, archiving {} alone: {source}", wal.display())]
    CacheUnusable {
        /// The WAL archived.
        wal: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `barman-wal-archive`: a consumed marker could not be removed.
    #[error("cannot remove {}: {source}", path.display())]
    MarkerNotRemoved {
        /// The marker.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `barman-wal-archive`: a WAL pushed ahead could not be recorded (it
    /// will be pushed again).
    #[error("cannot record prefetched WAL {wal}: {source}")]
    MarkerNotRecorded {
        /// The WAL name.
        wal: String,
        /// Why.
        source: io::Error,
    },
    /// `barman-wal-archive`: a session pushing WAL files ahead failed.
    #[error("prefetching WAL {wals} failed (exit {}): {error}", error.exit_status())]
    PushAheadFailed {
        /// The WAL names, comma-separated.
        wals: String,
        /// How the session failed.
        error: ArchiveError,
    },
    /// `barman-wal-restore`: the spool directory is not trusted.
    #[error("spool directory ignored: {0}")]
    SpoolIgnored(io::Error),
    /// `barman-wal-restore`: the spool directory cannot be used for
    /// `--parallel`; the WAL is fetched alone.
    #[error("spool directory unusable, fetching {wal} alone: {source}")]
    SpoolUnusable {
        /// The WAL fetched.
        wal: String,
        /// Why.
        source: io::Error,
    },
    /// `barman-wal-restore`: fetching a WAL ahead failed.
    #[error("prefetching WAL {wal} failed: {message}")]
    FetchAheadFailed {
        /// The WAL name.
        wal: String,
        /// What went wrong.
        message: String,
    },
    /// A thread fetching or pushing ahead panicked.
    #[error("a prefetch thread panicked")]
    ThreadPanicked,
    /// `barman-cloud-wal-archive --parallel`: a WAL archived ahead failed
    /// (PostgreSQL will ask for it again).
    #[error("archiving WAL {wal} ahead failed: {error}")]
    ArchiveAheadFailed {
        /// The WAL name.
        wal: String,
        /// Why.
        error: String,
    },
}
