//! Geographical redundancy: `barman sync-info`, `sync-backup`, `sync-wals`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use barman_core::Error;
use barman_core::catalog::BackupId;
use barman_core::clock::SystemClock;
use barman_core::config::{Config, ServerConfig};
use barman_core::shared::ShellSpawner;
use barman_core::sync::{self as core_sync, Position, SyncContext};
use serde_json::json;

use super::backup::{cancel_flag, copy_lines};
use super::single_server;
use crate::args::Format;
use crate::output::Output;

/// The configuration file as sent to the primary (`forward_config_path`).
fn config_path(config: &Config, explicit: Option<&Path>) -> PathBuf {
    let path = explicit.map_or_else(|| config.path().to_path_buf(), Path::to_path_buf);
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// Runs `f` with a sync context over the console.
fn with_context<T>(
    config: &Config,
    explicit: Option<&Path>,
    out: &mut Output,
    f: impl FnOnce(&mut SyncContext<'_>) -> T,
) -> Result<T> {
    let cancel = cancel_flag()?;
    let path = config_path(config, explicit);
    let mut lines = copy_lines(out);
    let mut ctx = SyncContext {
        clock: &SystemClock,
        spawner: Arc::new(ShellSpawner),
        cancel: &cancel,
        observer: &mut lines,
        config_path: Some(&path),
        agent_command: std::env::var("BARMAN_AGENT_COMMAND").ok(),
    };
    let result = f(&mut ctx);
    lines.finish_bar();
    Ok(result)
}

/// `barman sync-info [--primary] SERVER [LAST_WAL [LAST_POSITION]]`.
pub fn sync_info(
    config: &Config,
    explicit: Option<&Path>,
    name: &str,
    primary: bool,
    last_wal: Option<&str>,
    last_position: Option<u64>,
    out: &mut Output,
) -> Result<()> {
    let Some(server) = single_server(config, name, out) else {
        return Ok(());
    };
    let doc = if primary {
        let result = with_context(config, explicit, out, |ctx| {
            core_sync::primary_node_info(server, ctx)
        })?;
        if let Err(e) = result {
            out.error(&e.to_string());
            return Ok(());
        }
        let path = core_sync::primary::primary_info_path(server);
        serde_json::from_str(&std::fs::read_to_string(&path)?)?
    } else {
        let position = Position {
            last_wal,
            last_position,
        };
        match core_sync::sync_info(config.global(), server, position) {
            Ok(doc) => doc,
            Err(e @ (Error::SyncPosition(_) | Error::Wal(_))) => {
                out.error(&e.to_string());
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    };
    if out.format() == Format::Json {
        out.json_result(name, doc);
    } else {
        out.line(&core_sync::info::render(&doc))?;
    }
    Ok(())
}

/// `barman sync-backup SERVER BACKUP_ID`.
pub fn sync_backup(
    config: &Config,
    explicit: Option<&Path>,
    name: &str,
    backup_id: &str,
    out: &mut Output,
) -> Result<()> {
    let Some(server) = single_server(config, name, out) else {
        return Ok(());
    };
    let id: BackupId = match backup_id.parse() {
        Ok(id) => id,
        Err(e) => {
            out.error(&format!("{e}"));
            return Ok(());
        }
    };
    let result = with_context(config, explicit, out, |ctx| {
        core_sync::sync_backup(config.global(), server, &id, ctx)
    })?;
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            out.error(&e.to_string());
            return Ok(());
        }
    };
    if let Some(why) = &report.skipped {
        out.line(why)?;
    }
    if out.format() == Format::Json {
        let copy = report.copy.as_ref();
        out.json_result(
            name,
            json!({
                "backup_id": report.id.to_string(),
                "status": status_of(server, &report.id),
                "skipped": report.skipped,
                "previous": report.previous.as_ref().map(ToString::to_string),
                "verified": report.verified,
                "files": copy.map(|c| c.files),
                "files_linked": copy.map(|c| c.files_linked),
                "files_delta": copy.map(|c| c.files_delta),
                "files_fetched": copy.map(|c| c.files_fetched),
                "bytes_total": copy.map(|c| c.bytes_total),
                "bytes_linked": copy.map(|c| c.bytes_linked),
                "bytes_transferred": report.bytes_transferred,
                "elapsed": report.elapsed.as_secs_f64(),
            }),
        );
    }
    Ok(())
}

/// The backup's status as written now (`null` when it has none).
fn status_of(server: &ServerConfig, id: &BackupId) -> Option<String> {
    server
        .catalog()
        .backup(id)
        .ok()
        .and_then(|b| b.status().ok())
        .map(|s| s.as_str().to_owned())
}

/// `barman sync-wals SERVER`.
pub fn sync_wals(
    config: &Config,
    explicit: Option<&Path>,
    name: &str,
    out: &mut Output,
) -> Result<()> {
    let Some(server) = single_server(config, name, out) else {
        return Ok(());
    };
    let result = with_context(config, explicit, out, |ctx| {
        core_sync::sync_wals(config.global(), server, ctx)
    })?;
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            out.error(&format!(
                "WAL synchronisation for server {name} failed: {e}"
            ));
            return Ok(());
        }
    };
    if out.format() == Format::Json {
        out.json_result(
            name,
            json!({
                "skipped": report.skipped,
                "copied": report.copied,
                "present": report.present,
                "too_old": report.too_old,
                "bytes_transferred": report.bytes_transferred,
                "checked": report.checked.iter().map(|(id, status)| json!({"backup_id": id.to_string(), "status": status.as_str()})).collect::<Vec<_>>(),
            }),
        );
    }
    Ok(())
}
