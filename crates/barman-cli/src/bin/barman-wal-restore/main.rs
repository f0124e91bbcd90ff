//! `barman-wal-restore`: PostgreSQL's `restore_command` for a remote Barman
//! server, compatible with Barman's own script.
//!
//! `restore_command = 'barman-wal-restore -P backup-host pg %f %p'` runs
//! `ssh -q -T [-p PORT] USER@HOST 'barman [--config=PATH] get-wal [-P]
//! [--keep-compression] SERVER WAL_NAME'` and streams its output into
//! `WAL_DEST` (through a temporary file renamed into place, so a failure
//! never leaves a partial file there). See `--help` for the options.

mod fetch;
#[path = "../common/fsutil.rs"]
mod fsutil;
#[path = "../common/report.rs"]
mod report;
mod spool;
#[path = "../common/ssh.rs"]
mod ssh;

use std::fs;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::thread;
use std::time::Duration;

use barman_wal::SegmentName;
use clap::Parser;

use crate::fetch::FetchError;
use crate::ssh::{Ended, Remote};

/// Exit status when the remote get-wal failed without a status of its own.
const EXIT_NOT_FOUND: u8 = 1;
/// Exit status for ssh failures (ssh's 255) and local errors.
const EXIT_LOCAL: u8 = 2;
/// Exit status when WAL_DEST is a directory or cannot be written.
const EXIT_DEST: u8 = 3;

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
    /// The user used for the ssh connection to the Barman server.
    #[arg(short = 'U', long, default_value = "barman")]
    user: String,
    /// The port used for the ssh connection to the Barman server.
    #[arg(long)]
    port: Option<u16>,
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
    /// Configuration file on the Barman server.
    #[arg(short = 'c', long, value_name = "CONFIG")]
    config: Option<String>,
    /// Test both the connection and the configuration of the requested
    /// PostgreSQL server in Barman (runs `barman get-wal --test` remotely).
    /// With this option WAL_NAME and WAL_DEST are ignored.
    #[arg(short = 't', long)]
    test: bool,
    /// The host of the Barman server.
    #[arg(value_name = "BARMAN_HOST")]
    barman_host: String,
    /// The server name configured in Barman from which WALs are taken.
    #[arg(value_name = "SERVER_NAME")]
    server_name: String,
    /// The value of the '%f' keyword (according to 'restore_command').
    #[arg(value_name = "WAL_NAME")]
    wal_name: String,
    /// The value of the '%p' keyword (according to 'restore_command').
    #[arg(value_name = "WAL_DEST")]
    wal_dest: PathBuf,
}

impl Args {
    /// The remote `barman get-wal` command fetching `wal_name`.
    fn get_wal(&self, remote: &Remote, wal_name: &str) -> String {
        let mut words = vec!["get-wal"];
        if self.partial {
            words.push("-P");
        }
        if self.keep_compression {
            words.push("--keep-compression");
        }
        words.extend([self.server_name.as_str(), wal_name]);
        remote.barman_command(&words)
    }
}

/// Why a run failed.
#[derive(Debug)]
struct Failure {
    /// The process exit status.
    code: u8,
    /// What went wrong.
    message: String,
    /// Whether `--sleep` applies (a failed get-wal).
    sleep: bool,
}

impl Failure {
    /// A failure that does not trigger `--sleep`.
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            sleep: false,
        }
    }

    /// A failed get-wal (or peek): `--sleep` applies.
    fn get_wal(code: u8, message: impl Into<String>) -> Self {
        Self {
            sleep: true,
            ..Self::new(code, message)
        }
    }

    /// The failure matching a fetch error.
    fn of_fetch(error: FetchError, what: &str) -> Self {
        match error {
            FetchError::Spawn(e) => Self::get_wal(EXIT_LOCAL, format!("Error executing ssh: {e}")),
            FetchError::Ssh(Ended::SshFailure) => {
                Self::get_wal(EXIT_LOCAL, "Connection problem with ssh")
            }
            FetchError::Ssh(Ended::Remote(code)) => {
                Self::get_wal(code, format!("Remote '{what}' command has failed!"))
            }
            FetchError::Ssh(Ended::Signal | Ended::Success) => {
                Self::get_wal(EXIT_LOCAL, "ssh was terminated by a signal")
            }
            FetchError::Local(e) => {
                Self::get_wal(EXIT_LOCAL, format!("Cannot receive the WAL file: {e}"))
            }
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_LOCAL));
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report::error(&failure.message);
            if failure.sleep && args.sleep > 0 {
                eprintln!("Sleeping for {} seconds.", args.sleep);
                thread::sleep(Duration::from_secs(args.sleep));
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Restores `args.wal_name` into `args.wal_dest` (or runs the test).
fn run(args: &Args) -> Result<(), Failure> {
    let remote = Remote::new(
        &args.user,
        &args.barman_host,
        args.port,
        args.config.as_deref(),
    )
    .map_err(|e| Failure::new(EXIT_LOCAL, format!("{e:#}")))?;
    if args.test {
        return connectivity_test(&remote, &args.server_name);
    }
    for (flag, used) in [("--gzip", args.gzip), ("--bzip2", args.bzip2)] {
        if used {
            report::warning(&format!(
                "`{flag}` option is deprecated and ignored. For WAL compression, please make \
                 sure to enable it directly on the Barman server via the `compression` \
                 configuration option"
            ));
        }
    }
    let name = args.wal_name.as_str();
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Failure::new(
            EXIT_LOCAL,
            format!("WAL_NAME must be a file name: {name:?}"),
        ));
    }

    // (1) WAL_DEST: not a directory, and writable (a temporary file next to
    // it receives the data before the final rename).
    let dest = args.wal_dest.as_path();
    if fs::metadata(dest).is_ok_and(|m| m.is_dir()) {
        return Err(Failure::new(
            EXIT_DEST,
            format!("WAL_DEST cannot be a directory: {}", dest.display()),
        ));
    }
    let temp = barman_fs::TempFile::create(dest, barman_fs::FILE_MODE).map_err(|e| {
        Failure::new(
            EXIT_DEST,
            format!(
                "Cannot open '{}' (WAL_DEST) for writing: {e}",
                dest.display()
            ),
        )
    })?;

    // (2) Fetched ahead by an earlier call?
    let spool_usable = match fsutil::private_dir(&args.spool_dir, false) {
        Ok(exists) => exists,
        Err(e) => {
            report::warning(&format!("spool directory ignored: {e}"));
            false
        }
    };
    let spooled = args.spool_dir.join(name);
    if spool_usable && fs::symlink_metadata(&spooled).is_ok_and(|m| m.is_file()) {
        return spool::deliver(&spooled, dest, temp).map_err(|e| {
            Failure::new(
                EXIT_LOCAL,
                format!(
                    "Failure moving {} to {}: {e}",
                    spooled.display(),
                    dest.display()
                ),
            )
        });
    }

    // (3) Which files to fetch ahead.
    let extras = if args.parallel > 1 && name.parse::<SegmentName>().is_ok() {
        prefetch_list(args, &remote)?
    } else {
        Vec::new()
    };

    // (4) Fetch WAL_NAME (and the extras concurrently).
    let main_command = args.get_wal(&remote, name);
    let fetch_main = || -> Result<(), Failure> {
        fetch::fetch(&remote, &main_command, temp.file())
            .map_err(|e| Failure::of_fetch(e, "barman get-wal"))?;
        let local = |e: std::io::Error| {
            Failure::get_wal(
                EXIT_LOCAL,
                format!("Cannot write '{}' (WAL_DEST): {e}", dest.display()),
            )
        };
        temp.commit().map_err(|e| local(e.into()))
    };
    if extras.is_empty() {
        fetch_main()
    } else {
        let command_for = |wal: &str| args.get_wal(&remote, wal);
        spool::fetch_with_prefetch(&remote, &args.spool_dir, &extras, &command_for, fetch_main)
    }
}

/// `--parallel`: makes sure the spool is usable, runs `get-wal --peek` and
/// returns the names to fetch ahead. An empty list when the spool cannot be
/// used (with a warning); an error when the peek fails or does not list
/// WAL_NAME first.
fn prefetch_list(args: &Args, remote: &Remote) -> Result<Vec<String>, Failure> {
    if let Err(e) = fsutil::private_dir(&args.spool_dir, true) {
        report::warning(&format!(
            "spool directory unusable, fetching {} alone: {e}",
            args.wal_name
        ));
        return Ok(Vec::new());
    }
    let peek = args.parallel.to_string();
    let mut words = vec!["get-wal"];
    if args.partial {
        words.push("-P");
    }
    words.extend(["--peek", peek.as_str(), &args.server_name, &args.wal_name]);
    let output = remote
        .ssh(&remote.barman_command(&words))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| Failure::get_wal(EXIT_LOCAL, format!("Error executing ssh: {e}")))?;
    match Ended::of(output.status) {
        Ended::Success => {}
        ended => {
            return Err(Failure::of_fetch(
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
        Some((first, rest)) if *first == args.wal_name => {
            Ok(spool::extra_names(rest, &args.spool_dir, args.parallel - 1))
        }
        _ => Err(Failure::get_wal(
            EXIT_NOT_FOUND,
            format!("The required file is not available: {}", args.wal_name),
        )),
    }
}

/// `--test`: runs `barman get-wal --test SERVER dummy_wal_name` remotely;
/// its output goes to ours and its exit status becomes ours.
fn connectivity_test(remote: &Remote, server: &str) -> Result<(), Failure> {
    let line = remote.barman_command(&["get-wal", "--test", server, "dummy_wal_name"]);
    let status = remote
        .ssh(&line)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| {
            Failure::new(
                EXIT_LOCAL,
                format!("Impossible to invoke remote get-wal: {e}"),
            )
        })?;
    match Ended::of(status) {
        Ended::Success => Ok(()),
        Ended::SshFailure => Err(Failure::new(255, "Connection problem with ssh")),
        Ended::Remote(code) => Err(Failure::new(
            code,
            "Remote 'barman get-wal --test' command has failed!",
        )),
        Ended::Signal => Err(Failure::new(EXIT_LOCAL, "ssh was terminated by a signal")),
    }
}
