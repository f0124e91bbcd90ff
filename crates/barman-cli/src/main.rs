//! The `barman` command: a Barman-compatible PostgreSQL backup and recovery manager.

mod args;
mod commands;
mod config_load;
mod exit;
mod logging;
mod output;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Cli::parse();
    let mut out = output::Output::new(args.format, args.quiet);
    if args.nagios() {
        out.set_nagios();
    }
    if let Err(err) = commands::run(&args, &mut out) {
        if exit::is_broken_pipe(&err) {
            return ExitCode::SUCCESS;
        }
        out.error(&format!("{err:#}"));
    }
    out.finish().into()
}
