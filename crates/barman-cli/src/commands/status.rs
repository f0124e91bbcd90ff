//! `barman status SERVER...|all`: Barman's status block (server.py
//! `Server.status`, `status_postgres`, `FileWalArchiver.status`,
//! `BackupManager.status`), one `key: (description, message)` per line.

use std::fmt::Write as _;

use anyhow::Result;
use barman_core::config::{Config, ServerConfig};
use barman_core::listing::{PgStatus, ServerStatus, pg_status, server_status};
use barman_core::postgres::PgConnection;
use barman_core::shared::human_size;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use super::listing_fmt::ctime;
use super::select_servers;
use crate::output::Output;

/// One status line: Barman's key (the JSON key), description and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The JSON key (`pg_version`, `last_backup`, ...).
    pub key: &'static str,
    /// The console label.
    pub description: &'static str,
    /// The value as text.
    pub message: String,
}

fn item(key: &'static str, description: &'static str, message: impl std::fmt::Display) -> Item {
    Item {
        key,
        description,
        message: message.to_string(),
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn local_ctime(epoch: i64) -> String {
    Timestamp::from_second(epoch).map_or_else(
        |_| epoch.to_string(),
        |t| ctime(&t.to_zoned(TimeZone::system())),
    )
}

/// The PostgreSQL and archiver lines; `pg` is `None` when the server does
/// not answer (Barman then prints only the failed version line).
fn postgres_items(server: &ServerConfig, pg: Option<&PgStatus>, items: &mut Vec<Item>) {
    let Some(pg) = pg else {
        items.push(item(
            "pg_version",
            "PostgreSQL version",
            "FAILED trying to get PostgreSQL version",
        ));
        return;
    };
    items.push(item(
        "pg_version",
        "PostgreSQL version",
        &pg.server_txt_version,
    ));
    let state = if pg.is_in_recovery {
        "in archive recovery"
    } else {
        "in production"
    };
    items.push(item("is_in_recovery", "Cluster state", state));
    if let Some(size) = pg.current_size {
        items.push(item("current_size", "Current data size", human_size(size)));
    }
    if let Some(dir) = &pg.data_directory {
        items.push(item("data_directory", "PostgreSQL Data directory", dir));
    }
    if let Some(wal) = &pg.current_xlog {
        items.push(item("current_xlog", "Current WAL segment", wal));
    }
    if !server.archiver || pg.archive_mode.is_none() {
        return;
    }
    let command = pg
        .archive_command
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "FAILED (please set it accordingly to documentation)".to_owned());
    items.push(item(
        "archive_command",
        "PostgreSQL 'archive_command' setting",
        command,
    ));
    let last = match (&pg.last_archived_wal, pg.last_archived_time) {
        (Some(wal), Some(t)) => format!("{wal}, at {}", local_ctime(t)),
        (Some(wal), None) => wal.clone(),
        (None, _) => "No WAL segment shipped yet".to_owned(),
    };
    items.push(item("last_archived_wal", "Last archived WAL", last));
    if let Some(failed) = pg.failed_count {
        let mut text = failed.to_string();
        if failed > 0 {
            let _ = write!(
                text,
                " ({} at {})",
                pg.last_failed_wal.as_deref().unwrap_or("None"),
                pg.last_failed_time
                    .map_or_else(|| "None".into(), local_ctime)
            );
        }
        items.push(item("failed_count", "Failures of WAL archiver", text));
    }
    if let Some(rate) = pg.archived_wals_per_second.filter(|r| *r > 0.0) {
        items.push(item(
            "server_archived_wals_per_hour",
            "Server WAL archiving rate",
            format!("{:.2}/hour", rate * 3600.0),
        ));
    }
}

/// Every status line of `server`, in Barman's order.
pub fn items(server: &ServerConfig, pg: Option<&PgStatus>, catalog: &ServerStatus) -> Vec<Item> {
    let mut items = Vec::new();
    if let Some(d) = &server.description {
        items.push(item("description", "Description", d));
    }
    items.push(item("active", "Active", py_bool(server.active)));
    items.push(item("disabled", "Disabled", py_bool(server.disabled)));
    items.push(item("active_model", "Active configuration model", "None"));
    let passive = server.is_passive();
    if !passive {
        postgres_items(server, pg, &mut items);
    }
    items.push(item("passive_node", "Passive node", py_bool(passive)));
    let retention = server.retention_policy.as_ref().map_or_else(
        || "not enforced".to_owned(),
        |policy| {
            format!(
                "enforced (mode: {}, retention: {policy}, WAL retention: {})",
                server.retention_policy_mode.as_str(),
                server.wal_retention_policy.as_str().to_uppercase()
            )
        },
    );
    items.push(item("retention_policies", "Retention policies", retention));
    items.push(item(
        "backups_number",
        "No. of available backups",
        catalog.backups_number,
    ));
    let id = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".to_owned());
    items.push(item(
        "first_backup",
        "First available backup",
        id(&catalog.first_backup),
    ));
    items.push(item(
        "last_backup",
        "Last available backup",
        id(&catalog.last_backup),
    ));
    let verdict = if catalog.redundancy_satisfied() {
        "satisfied"
    } else {
        "FAILED"
    };
    items.push(item(
        "minimum_redundancy",
        "Minimum redundancy requirements",
        format!(
            "{verdict} ({}/{})",
            catalog.redundancy, catalog.minimum_redundancy
        ),
    ));
    items
}

/// Asks the server's PostgreSQL; `None` (logged) when it does not answer.
fn query_postgres(server: &ServerConfig) -> Option<PgStatus> {
    let conninfo = server.conninfo.as_deref()?;
    let result = PgConnection::connect(conninfo, "barman")
        .map_err(barman_core::Error::from)
        .and_then(|pg| pg_status(&pg));
    match result {
        Ok(status) => Some(status),
        Err(e) => {
            tracing::warn!("status of server `{}`: {e}", server.name);
            None
        }
    }
}

/// Prints the status of each selected server.
pub fn run(config: &Config, names: &[String], out: &mut Output) -> Result<()> {
    let mut servers = select_servers(config, names, out);
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    for server in servers {
        let catalog = server_status(server)?;
        let pg = if server.is_passive() {
            None
        } else {
            query_postgres(server)
        };
        out.line(&format!("Server {}:", server.name))?;
        let mut doc = Map::new();
        for i in items(server, pg.as_ref(), &catalog) {
            out.line(&format!("\t{}: {}", i.description, i.message))?;
            doc.insert(
                i.key.to_owned(),
                json!({"description": i.description, "message": i.message}),
            );
        }
        out.json_result(
            &server.name,
            super::listing_fmt::sort_keys(Value::Object(doc)),
        );
    }
    Ok(())
}
