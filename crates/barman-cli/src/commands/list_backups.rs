//! `barman list-backups SERVER...|all [--minimal]`.

use std::fmt::Write as _;

use anyhow::Result;
use barman_core::clock::SystemClock;
use barman_core::config::Config;
use barman_core::listing::{BackupRow, list_backups};
use barman_core::shared::human_size;
use serde_json::{Value, json};

use super::listing_fmt::{ctime, epoch_text, sort_keys};
use super::select_servers;
use crate::output::Output;

/// Barman's one-letter backup type (the first letter of the type, upper case).
fn type_letter(row: &BackupRow) -> &'static str {
    match row.backup_type {
        "rsync" => "R",
        "incremental" => "I",
        "snapshot" => "S",
        _ => "F",
    }
}

/// `<srv> <id>[ '<name>'] - <T> - <end ctime> - Size: <sz> - WAL Size: <sz>[ - WAITING_FOR_WALS][ - <label>]`,
/// or `<srv> <id>[ '<name>'] - <T> - <STATUS>` for a backup whose copy is not done.
pub fn console_line(row: &BackupRow) -> String {
    let mut line = format!("{} {}", row.server, row.backup_id);
    if let Some(name) = &row.backup_name {
        let _ = write!(line, " '{name}'");
    }
    let _ = write!(line, " - {} - ", type_letter(row));
    match (&row.end_time, row.is_copy_done()) {
        (Some(end), true) => {
            let _ = write!(
                line,
                "{} - Size: {} - WAL Size: {}",
                ctime(end),
                human_size(row.size),
                human_size(row.wal_size)
            );
            if row.status == barman_core::BackupStatus::WaitingForWals {
                line.push_str(" - WAITING_FOR_WALS");
            }
            if let Some(label) = row.retention.filter(|l| l.as_str() != "-") {
                let _ = write!(line, " - {label}");
            }
        }
        _ => line.push_str(row.status.as_str()),
    }
    line
}

/// The JSON object Barman writes for one backup.
pub fn json_row(row: &BackupRow) -> Value {
    let mut v = json!({
        "backup_id": row.backup_id,
        "backup_type": row.backup_type,
        "status": row.status.as_str(),
    });
    if let Some(name) = &row.backup_name {
        v["backup_name"] = json!(name);
    }
    if let (Some(end), true) = (&row.end_time, row.is_copy_done()) {
        v["end_time_timestamp"] = json!(epoch_text(end));
        v["end_time"] = json!(ctime(end));
        v["size_bytes"] = json!(row.size);
        v["wal_size_bytes"] = json!(row.wal_size);
        v["size"] = json!(human_size(row.size));
        v["wal_size"] = json!(human_size(row.wal_size));
        v["retention_status"] = json!(row.retention.map_or("-", |r| r.as_str()));
    }
    sort_keys(v)
}

/// Lists the backups of each selected server, newest first.
pub fn run(config: &Config, names: &[String], minimal: bool, out: &mut Output) -> Result<()> {
    let mut servers = select_servers(config, names, out);
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    for server in servers {
        let rows = list_backups(server, &SystemClock)?;
        let mut json_rows = Vec::with_capacity(rows.len());
        for row in &rows {
            if minimal {
                out.line(&row.backup_id)?;
                json_rows.push(json!(row.backup_id));
            } else {
                out.line(&console_line(row))?;
                json_rows.push(json_row(row));
            }
        }
        out.json_result(&server.name, Value::Array(json_rows));
    }
    Ok(())
}
