//! The `main` of both WAL clients: the command line, then the run, then
//! the exit status; the one place of this library that prints.

use std::fmt::Display;
use std::process::ExitCode;

use crate::ssh::{InvalidRemote, Remote};

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

/// The arguments both WAL clients take to reach the Barman server: the ssh
/// user and port, the configuration file on the server, the host and the
/// server name (flattened into each client's command line).
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The user used for the ssh connection to the Barman server.
    #[arg(short = 'U', long, default_value = "barman")]
    pub user: String,
    /// The port used for the ssh connection to the Barman server.
    #[arg(long)]
    pub port: Option<u16>,
    /// Configuration file on the Barman server.
    #[arg(short = 'c', long, value_name = "CONFIG")]
    pub config: Option<String>,
    /// The host of the Barman server.
    #[arg(value_name = "BARMAN_HOST")]
    pub barman_host: String,
    /// The server name configured in Barman from which WALs are taken.
    #[arg(value_name = "SERVER_NAME")]
    pub server_name: String,
}

impl Target {
    /// The ssh destination of these arguments, checked.
    ///
    /// # Errors
    /// [`InvalidRemote`] for an empty user or host, or one starting with `-`.
    pub fn remote(&self) -> Result<Remote, InvalidRemote> {
        Remote::new(
            &self.user,
            &self.barman_host,
            self.port,
            self.config.as_deref(),
        )
    }
}
