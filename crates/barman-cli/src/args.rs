//! Command-line arguments (clap), mirroring Barman's command tree.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Barman-compatible backup and recovery manager for PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "barman", disable_version_flag = true)]
pub struct Cli {
    /// Configuration file (default: ~/.barman.conf, /etc/barman.conf, /etc/barman/barman.conf).
    #[arg(short = 'c', long = "config", global = true, value_name = "CONFIG")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Console, global = true)]
    pub format: Format,

    /// Be quiet: print only errors.
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,

    /// Debug output (log level DEBUG, also on stderr).
    #[arg(short = 'd', long = "debug", global = true)]
    pub debug: bool,

    /// Override the log level of the configuration.
    #[arg(long = "log-level", value_enum, global = true)]
    pub log_level: Option<LogLevel>,

    /// Colour in console output.
    #[arg(long = "color", alias = "colour", value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version")]
    pub version: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Output writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Console,
    /// One JSON document printed at exit.
    Json,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Never colour.
    Never,
    /// Always colour.
    Always,
    /// Colour on a terminal.
    Auto,
}

/// Log levels, in Barman's (Python logging) spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    Info,
    /// Warnings and errors.
    Warning,
    /// Errors only.
    Error,
    /// Critical errors only.
    Critical,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List available servers, with useful information.
    ListServers {
        /// Machine readable output: server names only.
        #[arg(long)]
        minimal: bool,
    },
    /// Show the configuration of one or more servers (`all` for every server).
    #[command(alias = "show-server")]
    ShowServers {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Diagnostic information in JSON format.
    Diagnose {
        /// Include the source file and line of each configuration value.
        #[arg(long = "show-config-source")]
        show_config_source: bool,
    },
}
