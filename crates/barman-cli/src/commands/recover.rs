//! `barman recover` (alias `restore`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use barman_core::clock::SystemClock;
use barman_core::config::Config;
use barman_core::recover::{self, RecoverContext, RecoverOptions, TargetOptions};
use barman_core::shared::ShellSpawner;
use barman_core::shell::quote;
use jiff::tz::TimeZone;
use serde_json::Value;

use super::backup::{cancel_flag, copy_lines};
use crate::args::RecoverArgs;
use crate::output::Output;
use crate::render;

/// Builds the core options from the command line.
fn options(config: &Config, args: &RecoverArgs) -> Result<RecoverOptions> {
    let mut tablespaces = Vec::new();
    for spec in &args.tablespace {
        let Some((name, location)) = spec.split_once(':') else {
            bail!("invalid --tablespace `{spec}`: expected NAME:LOCATION");
        };
        if name.is_empty() || location.is_empty() {
            bail!("invalid --tablespace `{spec}`: expected NAME:LOCATION");
        }
        tablespaces.push((name.to_owned(), PathBuf::from(location)));
    }
    let flag = |on: bool, off: bool| {
        if on {
            Some(true)
        } else if off {
            Some(false)
        } else {
            None
        }
    };
    let remote = args.remote_ssh_command.clone();
    let destination = if args.destination.is_absolute() || remote.is_some() {
        args.destination.clone()
    } else {
        std::env::current_dir()?.join(&args.destination)
    };
    let barman =
        std::env::current_exe().map_or_else(|_| "barman".to_owned(), |p| p.display().to_string());
    Ok(RecoverOptions {
        backup_id: args.backup_id.clone(),
        destination,
        target: TargetOptions {
            time: args.target_time.clone(),
            xid: args.target_xid.clone(),
            lsn: args.target_lsn.clone(),
            name: args.target_name.clone(),
            immediate: args.target_immediate,
            tli: args.target_tli.clone(),
            exclusive: args.exclusive,
            action: args.target_action.clone(),
        },
        standby_mode: args.standby_mode,
        remote_ssh_command: remote,
        jobs: args.jobs,
        bwlimit: args.bwlimit,
        network_compression: flag(args.network_compression, args.no_network_compression),
        tablespaces,
        delta_restore: flag(args.delta_restore, args.no_delta_restore),
        get_wal: flag(args.get_wal, args.no_get_wal),
        partial_wal: args.partial_wal,
        restore_command: args.restore_command.clone(),
        staging_wal_directory: args.staging_wal_directory.clone(),
        staging: barman_core::recover::StagingOptions {
            path: args.staging_path.clone(),
            remote: args.staging_location.as_deref().map(|l| l == "remote"),
            local_path: args.local_staging_path.clone(),
            recovery_path: args.recovery_staging_path.clone(),
        },
        recovery_conf_filename: args.recovery_conf_filename.clone(),
        agent_command: std::env::var("BARMAN_AGENT_COMMAND").ok(),
        barman_command: Some(format!(
            "{} -c {}",
            quote(&barman),
            quote(&config.path().display().to_string())
        )),
    })
}

/// `barman recover SERVER BACKUP_ID DEST`.
pub fn recover(config: &Config, args: &RecoverArgs, out: &mut Output) -> Result<()> {
    let Some(server) = config.server(&args.server) else {
        out.error(&format!("Unknown server '{}'", args.server));
        return Ok(());
    };
    let options = options(config, args)?;
    let cancel = cancel_flag()?;
    let hooks = super::hook_setup(config, Some(Arc::clone(&cancel))).server(server)?;
    let mut lines = copy_lines(out);
    let mut ctx = RecoverContext {
        clock: &SystemClock,
        local_tz: TimeZone::system(),
        observer: &mut lines,
        cancel: &cancel,
        spawner: Arc::new(ShellSpawner),
        hooks: &hooks,
    };
    let result = recover::recover(config.global(), server, &options, &mut ctx);
    lines.finish_bar();
    match result {
        Ok(report) => {
            if let Value::Object(mut map) = serde_json::to_value(&report)? {
                // The changes and warnings in words, in their places.
                let changes: Vec<_> = report.changes.iter().map(render::change).collect();
                let warnings: Vec<_> = report.warnings.iter().map(render::warning).collect();
                map.insert("changes".to_owned(), changes.into());
                map.insert("warnings".to_owned(), warnings.into());
                for (k, v) in map {
                    out.json_result(&k, v);
                }
            }
            out.line(&format!(
                "Restored {} files ({} written, {} reused, {} removed), {} WAL files staged, in {:.1} s",
                report.copied.files,
                report.copied.files_written,
                report.copied.files_reused,
                report.copied.files_removed,
                report.wals,
                report.elapsed_seconds
            ))?;
        }
        Err(e) => {
            out.error(&format!(
                "Cannot recover server '{}' ({}): {e}",
                server.name, args.backup_id
            ));
        }
    }
    Ok(())
}
