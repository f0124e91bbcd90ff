//! The `main` of both WAL clients: the command line, then the run, then
//! the exit status; the one place of this library that prints.

use std::fmt::Display;
use std::process::ExitCode;

/// Parses the command line as `A` and runs `run` with it.
///
/// A usage error (and `--help`, `--version`) prints clap's text and exits
/// with clap's status, `usage_status` when that does not fit a `u8`. A
/// failed run prints `ERROR: <error>` on standard error, then `failed`
/// (which may print more, or wait) gives the exit status.
pub fn main<A: clap::Parser, E: Display>(
    usage_status: u8,
    run: impl FnOnce(&A) -> Result<(), E>,
    failed: impl FnOnce(&A, &E) -> u8,
) -> ExitCode {
    let args = match A::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(usage_status));
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ERROR: {error}");
            ExitCode::from(failed(&args, &error))
        }
    }
}
