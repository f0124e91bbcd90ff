//! The `barman` command: a Barman-compatible PostgreSQL backup and recovery manager.

mod args;
mod commands;
mod config_load;
mod exit;
mod logging;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Cli::parse();
    let mut out = output::Output::new(args.format, args.quiet);
    let code = match commands::run(&args, &mut out) {
        Ok(()) => out.exit_code(),
        Err(err) => {
            if exit::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            out.error(&format!("{err:#}"));
            out.exit_code()
        }
    };
    out.finish();
    code.into()
}
