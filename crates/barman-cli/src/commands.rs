//! Dispatch of subcommands.

mod backup;
mod catalog;
mod check;
mod cron;
mod diagnose;
mod list_servers;
// -- listings (issue 7, item 6) --
mod check_wal_archive;
mod list_backups;
mod list_files;
mod list_processes;
mod listing_fmt;
mod show_backup;
mod status;
// --
mod receive_wal;
mod recover;
mod replication_status;
mod show_servers;
mod sync;
mod wal;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Result, bail};
use barman_core::config::{Config, ServerConfig};
use barman_core::hooks::HookSetup;

use crate::args::{Cli, Command};
use crate::output::Output;
use crate::{config_load, logging};

/// Runs the command line.
pub fn run(cli: &Cli, out: &mut Output) -> Result<()> {
    if cli.version {
        out.line(&format!("{} (barman-rs)", env!("CARGO_PKG_VERSION")))?;
        return Ok(());
    }
    let Some(command) = &cli.command else {
        bail!("no command given (try `barman --help`)");
    };
    if matches!(command, Command::Agent) {
        // The agent runs on the PostgreSQL host: no configuration there, and
        // stdout is the protocol channel.
        return backup::agent(cli);
    }
    let config = config_load::load(cli.config.as_deref())?;
    init_logging(cli, &config)?;
    // A cron worker's cron already reported the configuration's warnings.
    if !matches!(
        command,
        Command::Cron {
            worker: Some(_),
            ..
        }
    ) {
        for w in config.warnings() {
            out.warning(w);
        }
    }
    // Each family of commands runs its own (`None` for the others).
    wal_command(&config, command, out)
        .or_else(|| backup_command(&config, command, out))
        .or_else(|| report_command(&config, command, out))
        .or_else(|| peer_command(cli, &config, command, out))
        .unwrap_or_else(|| unreachable!("`agent` is handled before loading the configuration"))
}

/// The WAL commands: archiving, serving, switching, receiving.
fn wal_command(config: &Config, command: &Command, out: &mut Output) -> Option<Result<()>> {
    Some(match command {
        Command::PutWal {
            test,
            server,
            wal_path,
        } => wal::put_wal(config, server, *test, wal_path.as_deref(), out),
        Command::ArchiveWal { servers } => wal::archive_wal(config, servers, out),
        Command::GetWal {
            output_directory,
            partial,
            peek,
            test,
            keep_compression,
            gzip,
            bzip2,
            xz,
            server,
            wal_name,
        } => wal::get_wal(
            config,
            &wal::GetWalArgs {
                server,
                wal_name,
                output_directory: output_directory.as_deref(),
                partial: *partial,
                peek: *peek,
                test: *test,
                keep_compression: *keep_compression,
                recompress: wal::recompression(*gzip, *bzip2, *xz),
            },
            out,
        ),
        Command::SwitchWal {
            force,
            archive,
            archive_timeout,
            servers,
        } => {
            wal::switch_wal(config, servers, *force, *archive, *archive_timeout, out);
            Ok(())
        }
        Command::RebuildXlogdb { servers } => wal::rebuild_xlogdb(config, servers, out),
        Command::ReceiveWal {
            create_slot,
            if_not_exists,
            drop_slot,
            reset,
            stop,
            server,
        } => receive_wal::receive_wal(
            config,
            server,
            receive_wal::Flags {
                create_slot: *create_slot,
                if_not_exists: *if_not_exists,
                drop_slot: *drop_slot,
                reset: *reset,
                stop: *stop,
            },
            out,
        ),
        _ => return None,
    })
}

/// The backup commands: taking, checking, recovering, deleting, keeping.
fn backup_command(config: &Config, command: &Command, out: &mut Output) -> Option<Result<()>> {
    Some(match command {
        Command::Backup { .. } => backup::backup(config, command, out),
        Command::CheckBackup { server, backup_id } => {
            backup::check_backup(config, server, backup_id, out)
        }
        Command::GenerateManifest { server, backup_id } => {
            backup::generate_manifest(config, server, backup_id, out)
        }
        Command::VerifyBackup { server, backup_id } => {
            backup::verify_backup(config, server, backup_id, out)
        }
        Command::Recover(args) => recover::recover(config, args, out),
        Command::Delete { server, backup_id } => catalog::delete(config, server, backup_id, out),
        Command::Keep {
            target,
            release,
            status,
            server,
            backup_id,
        } => catalog::keep(
            config,
            server,
            backup_id,
            catalog::KeepAction::from_flags(target.as_deref(), *release, *status),
            out,
        ),
        _ => return None,
    })
}

/// The commands that report: servers, checks, listings.
fn report_command(config: &Config, command: &Command, out: &mut Output) -> Option<Result<()>> {
    Some(match command {
        Command::ListServers { minimal } => list_servers::run(config, *minimal, out),
        Command::ShowServers { servers } => show_servers::run(config, servers, out),
        Command::Diagnose { show_config_source } => diagnose::run(config, *show_config_source, out),
        Command::ReplicationStatus {
            minimal,
            target,
            source,
            servers,
        } => replication_status::run(config, servers, *minimal, target, source, out),
        Command::Check {
            nagios,
            check_timeout,
            servers,
        } => check::run(config, servers, *nagios, *check_timeout, out),
        // -- listings (issue 7, item 6) --
        Command::ListBackups { minimal, servers } => {
            list_backups::run(config, servers, *minimal, out)
        }
        Command::ShowBackup { server, backup_id } => {
            show_backup::run(config, server, backup_id, out)
        }
        Command::ListFiles {
            target,
            server,
            backup_id,
        } => list_files::run(config, server, backup_id, target, out),
        Command::Status { servers } => status::run(config, servers, out),
        Command::ListProcesses { server } => list_processes::run(config, server, out),
        Command::CheckWalArchive { timeline, server } => {
            check_wal_archive::run(config, server, *timeline, out)
        }
        // --
        _ => return None,
    })
}

/// The commands of cron and of a passive node (sync).
fn peer_command(
    cli: &Cli,
    config: &Config,
    command: &Command,
    out: &mut Output,
) -> Option<Result<()>> {
    Some(match command {
        Command::Cron {
            max_wait, worker, ..
        } => match worker {
            Some(server) => cron::worker(config, cli.config.as_deref(), server),
            None => cron::run(config, cli, *max_wait, out),
        },
        Command::SyncInfo {
            primary,
            server,
            last_wal,
            last_position,
        } => sync::sync_info(
            config,
            cli.config.as_deref(),
            server,
            *primary,
            last_wal.as_deref(),
            *last_position,
            out,
        ),
        Command::SyncBackup { server, backup_id } => {
            sync::sync_backup(config, cli.config.as_deref(), server, backup_id, out)
        }
        Command::SyncWals { server } => sync::sync_wals(config, cli.config.as_deref(), server, out),
        _ => return None,
    })
}

fn init_logging(cli: &Cli, config: &Config) -> Result<()> {
    let level = if cli.debug {
        tracing::Level::DEBUG
    } else if let Some(l) = cli.log_level {
        logging::parse_level(&format!("{l:?}"))
    } else {
        logging::parse_level(config.global().log_level.as_str())
    };
    let log_file = config.global().log_file.as_deref();
    let format = &config.global().log_format;
    if cli.nagios() {
        // Nothing but the status may reach the terminal (Barman's Nagios
        // writer prints nothing else).
        logging::init_without_stderr(log_file, level, format)
    } else {
        logging::init(log_file, level, format)
    }
}

/// The hook settings of this run: `BARMAN_VERSION` is ours,
/// `BARMAN_CONFIGURATION` the configuration file, and `cancel` (the flag
/// SIGINT and SIGTERM set) stops a running hook: SIGTERM to its process
/// group, SIGKILL 5 s later.
pub fn hook_setup(config: &Config, cancel: Option<Arc<AtomicBool>>) -> HookSetup {
    let mut base = barman_hooks::Hooks::new();
    if let Some(flag) = cancel {
        base = base.cancel_flag(flag);
    }
    HookSetup::new(
        env!("CARGO_PKG_VERSION"),
        config.path().display().to_string(),
    )
    .base(base)
}

/// [`hook_setup`] for a command that has no cancellation of its own
/// (delete, archive-wal, cron): when one of `servers` has hook scripts,
/// SIGINT and SIGTERM set the flag that stops them (the command then ends
/// once its running step does) instead of killing barman and leaving the
/// hook running in its own process group.
pub fn interruptible_hooks(config: &Config, servers: &[&ServerConfig]) -> Result<HookSetup> {
    let cancel = if servers.iter().any(|s| !s.hook_scripts.is_empty()) {
        Some(backup::cancel_flag()?)
    } else {
        None
    };
    Ok(hook_setup(config, cancel))
}

/// Resolves server-name arguments (`all` = every server) into configs; an
/// unknown name is reported as an error and skipped, as Barman does.
pub fn select_servers<'c>(
    config: &'c Config,
    names: &[String],
    out: &mut Output,
) -> Vec<&'c ServerConfig> {
    if names.iter().any(|n| n == "all") {
        return config.servers().collect();
    }
    let mut v = Vec::new();
    for n in names {
        match config.server(n) {
            Some(s) => v.push(s),
            None => out.error(&format!("Unknown server '{n}'")),
        }
    }
    v
}

/// Renders a JSON value the way Barman's console output prints Python values.
pub fn python_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The server `name` and its backup `id` (an id, a name or a shortcut);
/// `None`, reported as Barman reports it, for an unknown server or backup.
pub fn server_and_backup<'c>(
    config: &'c Config,
    name: &str,
    id: &str,
    out: &mut Output,
) -> Result<Option<(&'c ServerConfig, barman_core::BackupInfo)>> {
    let Some(server) = single_server(config, name, out) else {
        return Ok(None);
    };
    match barman_core::shared::resolve_backup(&server.catalog(), id) {
        Ok(info) => Ok(Some((server, info))),
        Err(barman_core::Error::Catalog(barman_core::catalog::Error::BackupNotFound {
            ..
        })) => {
            out.error(&format!("Unknown backup '{id}' for server '{name}'"));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The server `name` of a single-server command; `None`, reported as Barman
/// reports it, for `all` or an unknown server.
pub fn single_server<'c>(
    config: &'c Config,
    name: &str,
    out: &mut Output,
) -> Option<&'c ServerConfig> {
    if name == "all" {
        out.error("You cannot use 'all' in a single server context");
        return None;
    }
    let server = config.server(name);
    if server.is_none() {
        out.error(&format!("Unknown server '{name}'"));
    }
    server
}
