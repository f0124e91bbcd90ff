//! The `main` of both WAL clients: the command line, then the run, then
//! the exit status; the one place of this library that prints.

use std::fmt::Display;
use std::process::ExitCode;

use barman_wal::{Compression, CompressionLevel};

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

/// The compression options of both archiving clients (`barman-wal-archive`
/// and `barman-cloud-wal-archive`): one algorithm flag at most, and a level.
#[derive(Debug, Clone, clap::Args)]
#[allow(clippy::struct_excessive_bools)]
pub struct CompressionFlags {
    /// gzip-compress the WAL file before sending it.
    #[arg(short = 'z', long, group = "compression")]
    pub gzip: bool,
    /// bzip2-compress the WAL file before sending it.
    #[arg(short = 'j', long, group = "compression")]
    pub bzip2: bool,
    /// xz-compress the WAL file before sending it.
    #[arg(long, group = "compression")]
    pub xz: bool,
    /// snappy-compress the WAL file before sending it.
    #[arg(long, group = "compression")]
    pub snappy: bool,
    /// zstd-compress the WAL file before sending it.
    #[arg(long, group = "compression")]
    pub zstd: bool,
    /// lz4-compress the WAL file before sending it.
    #[arg(long, group = "compression")]
    pub lz4: bool,
    /// A compression level for the chosen algorithm (an integer, clamped to
    /// the algorithm's range; `low`, `medium` and `high` are accepted too).
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub compression_level: Option<CompressionLevel>,
}

/// Parses `--compression-level`.
fn parse_level(value: &str) -> Result<CompressionLevel, String> {
    value.parse().map_err(|e| format!("{e}"))
}

impl CompressionFlags {
    /// The compression chosen by the flags, if any.
    pub fn compression(&self) -> Option<Compression> {
        [
            (self.gzip, Compression::Gzip),
            (self.bzip2, Compression::Bzip2),
            (self.xz, Compression::Xz),
            (self.snappy, Compression::Snappy),
            (self.zstd, Compression::Zstd),
            (self.lz4, Compression::Lz4),
        ]
        .into_iter()
        .find_map(|(set, c)| set.then_some(c))
    }

    /// The level (Barman's default, `medium`, when not given).
    pub fn level(&self) -> CompressionLevel {
        self.compression_level.unwrap_or_default()
    }
}
