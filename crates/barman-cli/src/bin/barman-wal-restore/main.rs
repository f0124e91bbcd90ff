//! `barman-wal-restore`: PostgreSQL's `restore_command` for a remote Barman
//! server, compatible with Barman's own script.
//!
//! `restore_command = 'barman-wal-restore -P backup-host pg %f %p'` runs
//! `ssh -q -T [-p PORT] USER@HOST 'barman [--config=PATH] get-wal [-P]
//! [--keep-compression] SERVER WAL_NAME'` and streams its output into
//! `WAL_DEST` (through a temporary file renamed into place, so a failure
//! never leaves a partial file there). See `--help` for the options.

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use barman_cli::Warning;
use barman_cli::client::Target;
use barman_cli::wal_restore::{self, EXIT_LOCAL, Request, RestoreError};
use clap::Parser;

/// The `--help` text describing the algorithm and the exit codes.
const AFTER_HELP: &str = "\
How it works: WAL_DEST must not be a directory and its directory must be \
writable (else exit 3). If SPOOL_DIR/WAL_NAME exists (fetched ahead by an \
earlier --parallel call) it is moved to WAL_DEST and the command exits 0 \
without contacting the server. With -p/--parallel N (N > 1) and a plain \
segment WAL_NAME, 'barman get-wal --peek N' lists the next available files; \
the ones after WAL_NAME are fetched into the spool concurrently with \
WAL_NAME. WAL_NAME is written to a temporary file next to WAL_DEST, synced \
and renamed onto it; on failure nothing is left at WAL_DEST. Compressed data \
(--keep-compression) is decompressed by recognising its magic bytes. The \
spool directory must be owned by the user running the command and writable \
by nobody else, or it is ignored with a warning.

Exit status: 0 on success; 1 when the remote get-wal failed (typically the \
WAL is not in the archive) or --peek did not list WAL_NAME; 2 when ssh could \
not connect (ssh exited with 255) or on a local error; 3 when WAL_DEST is a \
directory or not writable; any other non-zero status of the remote command \
is passed through. With -s/--sleep S the command sleeps S seconds before \
exiting after a failed get-wal. With -t/--test the exit status is the one \
of ssh (the remote command's, or 255) unchanged.";

/// Command-line arguments (the options of Barman's `barman-wal-restore`).
#[derive(Debug, Parser)]
#[command(
    name = "barman-wal-restore",
    version,
    about = "This script will be used as a 'restore_command' based on the get-wal feature \
             of Barman. A ssh connection will be opened to the Barman host.",
    after_help = AFTER_HELP
)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Sleep for SECONDS after a failure of get-wal request (0: no wait).
    #[arg(short = 's', long, value_name = "SECONDS", default_value_t = 0)]
    sleep: u64,
    /// Specifies the number of files to peek and transfer in parallel
    /// (0 or 1: disabled).
    #[arg(short = 'p', long, value_name = "JOBS", default_value_t = 0)]
    parallel: usize,
    /// Specifies spool directory for WAL files.
    #[arg(long, value_name = "SPOOL_DIR", default_value = "/var/tmp/walrestore")]
    spool_dir: PathBuf,
    /// Retrieve also partial WAL files (.partial).
    #[arg(short = 'P', long)]
    partial: bool,
    /// Deprecated and ignored (enable compression on the Barman server).
    #[arg(short = 'z', long)]
    gzip: bool,
    /// Deprecated and ignored (enable compression on the Barman server).
    #[arg(short = 'j', long)]
    bzip2: bool,
    /// Preserve compression during transfer, decompress once received.
    #[arg(long)]
    keep_compression: bool,
    /// Test both the connection and the configuration of the requested
    /// PostgreSQL server in Barman (runs `barman get-wal --test` remotely).
    /// With this option WAL_NAME and WAL_DEST are ignored.
    #[arg(short = 't', long)]
    test: bool,
    /// The value of the '%f' keyword (according to 'restore_command').
    #[arg(value_name = "WAL_NAME")]
    wal_name: String,
    /// The value of the '%p' keyword (according to 'restore_command').
    #[arg(value_name = "WAL_DEST")]
    wal_dest: PathBuf,
}

impl Args {
    /// The restore request of these arguments.
    fn request(&self) -> Request {
        Request {
            server: self.target.server_name.clone(),
            wal_name: self.wal_name.clone(),
            wal_dest: self.wal_dest.clone(),
            spool_dir: self.spool_dir.clone(),
            parallel: self.parallel,
            partial: self.partial,
            keep_compression: self.keep_compression,
        }
    }
}

fn main() -> ExitCode {
    barman_cli::client::main(EXIT_LOCAL, run, |args: &Args, error: &RestoreError| {
        if error.sleeps() && args.sleep > 0 {
            eprintln!("Sleeping for {} seconds.", args.sleep);
            thread::sleep(Duration::from_secs(args.sleep));
        }
        error.exit_status()
    })
}

/// Restores `args.wal_name` into `args.wal_dest` (or runs the test).
fn run(args: &Args) -> Result<(), RestoreError> {
    let remote = args.target.remote()?;
    if args.test {
        return wal_restore::connectivity_test(&remote, &args.target.server_name);
    }
    for (flag, used) in [("--gzip", args.gzip), ("--bzip2", args.bzip2)] {
        if used {
            eprintln!(
                "WARNING: `{flag}` option is deprecated and ignored. For WAL compression, please \
                 make sure to enable it directly on the Barman server via the `compression` \
                 configuration option"
            );
        }
    }
    wal_restore::restore(&remote, &args.request(), &warn)
}

/// Prints a warning as Barman's scripts do (PostgreSQL copies it into its
/// log).
fn warn(warning: &Warning) {
    eprintln!("WARNING: {warning}");
}
