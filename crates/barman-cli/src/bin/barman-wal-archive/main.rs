//! `barman-wal-archive`: PostgreSQL's `archive_command` for a remote Barman
//! server, compatible with Barman's own script.
//!
//! `archive_command = 'barman-wal-archive backup-host pg %p'` runs
//! `ssh -q -T [-p PORT] USER@HOST 'barman [--config=PATH] put-wal SERVER'`
//! and streams into its standard input a tar archive holding the WAL file
//! (optionally compressed) and a `SHA256SUMS` (or `MD5SUMS`) member. See
//! `--help` for the options and the `--parallel` prefetch.

use std::path::PathBuf;
use std::process::ExitCode;

use barman_cli::Warning;
use barman_cli::client::{CompressionFlags, Target};
use barman_cli::wal_archive::{self, ArchiveError, EXIT_LOCAL, Parallel, PushOptions, prefetch};
use barman_wal::put_wal_stream::HashKind;
use clap::Parser;

/// The `--help` text describing the exit codes and `--parallel`.
const AFTER_HELP: &str = "\
Exit status: 0 when the WAL was archived; 3 when ssh could not connect (ssh \
exited with 255); the remote 'barman put-wal' exit status when it failed; 2 \
for local errors (WAL_PATH missing, a directory or unreadable, bad arguments). With -t/--test the exit status is \
the one of ssh (the remote command's, or 255) unchanged.

Parallel archiving (-p/--parallel N, N > 1): a call for WAL X first looks in \
the prefetch cache directory for a marker left by an earlier call. When the \
marker records the size and modification time X has now, X was already pushed: \
the marker is removed and the command exits 0 at once. Otherwise the plain \
segment names that follow X among pg_wal/archive_status/*.ready (at most 8×N-1, \
in order, skipping those already pushed) are pushed together with X in N \
concurrent ssh sessions of up to 8 segments each (one stream, one 'barman \
put-wal' per session). A marker is written (atomically, mode 0600, in a 0700 \
directory) for each extra segment pushed successfully; a session that fails \
leaves none, so PostgreSQL asks for its segments again. The exit status is the \
one of the session carrying X. Markers \
older than a day are removed. The cache directory must be owned by the user \
running the command and writable by nobody else; otherwise it is ignored (with \
a warning) and only X is pushed.";

/// Command-line arguments (the options of Barman's `barman-wal-archive`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-wal-archive",
    version,
    about = "This script will be used as an 'archive_command' based on the put-wal feature \
             of Barman. A ssh connection will be opened to the Barman host.",
    after_help = AFTER_HELP
)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Test both the connection and the configuration of the requested
    /// PostgreSQL server in Barman for WAL archiving (runs `barman put-wal
    /// --test` remotely). With this option WAL_PATH is ignored.
    #[arg(short = 't', long)]
    test: bool,
    /// Use MD5 (an MD5SUMS member) instead of SHA256, for old Barman servers.
    #[arg(long)]
    md5: bool,
    #[command(flatten)]
    compress: CompressionFlags,
    /// Archive up to N WAL files in parallel by pushing the next ready
    /// segments ahead of PostgreSQL's requests (0 or 1: disabled).
    #[arg(short = 'p', long, value_name = "N", default_value_t = 0)]
    parallel: usize,
    /// Directory of the markers of WAL files pushed ahead by --parallel
    /// [default: /tmp/barman-<SERVER_NAME>-<hash of host:port:config>].
    #[arg(long, value_name = "DIR")]
    prefetch_cache_dir: Option<PathBuf>,
    /// The value of the '%p' keyword (according to 'archive_command').
    #[arg(value_name = "WAL_PATH")]
    wal_path: PathBuf,
}

impl Args {}

fn main() -> ExitCode {
    barman_cli::client::main(EXIT_LOCAL, run, |_, error: &ArchiveError| {
        error.exit_status()
    })
}

/// Archives `args.wal_path` (or runs the connection test).
fn run(args: &Args) -> Result<(), ArchiveError> {
    let target = &args.target;
    let remote = target.remote()?;
    if args.test {
        return wal_archive::connectivity_test(&remote, &target.server_name);
    }
    let options = PushOptions {
        server: target.server_name.clone(),
        compression: args.compress.compression(),
        level: args.compress.level(),
        hash: if args.md5 {
            HashKind::Md5
        } else {
            HashKind::Sha256
        },
    };
    let cache_dir = args.prefetch_cache_dir.clone().unwrap_or_else(|| {
        prefetch::default_cache_dir(
            &target.server_name,
            &target.barman_host,
            target.port,
            target.config.as_deref(),
        )
    });
    let parallel = Parallel {
        sessions: args.parallel,
        cache_dir: &cache_dir,
    };
    wal_archive::archive(&remote, &options, &args.wal_path, parallel, &warn)
}

/// Prints a warning as Barman's scripts do (PostgreSQL copies it into its
/// log).
fn warn(warning: &Warning) {
    eprintln!("WARNING: {warning}");
}
