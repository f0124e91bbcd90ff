//! `status`: what the catalog says of a server ([`ServerStatus`]) and what
//! its PostgreSQL says ([`PgStatus`]: version, cluster state, sizes, WAL
//! position, archiver statistics), as Barman's `Server.status` shows them.

use barman_wal::{Lsn, SegmentName, TimelineId, WalSegmentSize};
use serde::Serialize;

use crate::Result;
use barman_catalog::{BackupId, BackupStatus};
use barman_config::ServerConfig;
use barman_pg::postgres::PgConnection;

/// The catalog side of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    /// DONE backups.
    pub backups_number: usize,
    /// The oldest DONE backup.
    pub first_backup: Option<String>,
    /// The newest DONE backup.
    pub last_backup: Option<String>,
    /// DONE backups that are not incremental (what `minimum_redundancy`
    /// counts).
    pub redundancy: usize,
    /// The server's `minimum_redundancy`.
    pub minimum_redundancy: u32,
}

impl ServerStatus {
    /// Whether the DONE non-incremental backups reach `minimum_redundancy`.
    pub fn redundancy_satisfied(&self) -> bool {
        self.redundancy >= self.minimum_redundancy as usize
    }
}

/// Reads `server`'s catalog for `status`.
pub fn server_status(server: &ServerConfig) -> Result<ServerStatus> {
    let mut done: Vec<(BackupId, bool)> = Vec::new();
    for info in server.catalog().backups()? {
        if info.status()? == BackupStatus::Done {
            done.push((info.backup_id().clone(), info.is_incremental()));
        }
    }
    Ok(ServerStatus {
        backups_number: done.len(),
        first_backup: done.first().map(|(id, _)| id.to_string()),
        last_backup: done.last().map(|(id, _)| id.to_string()),
        redundancy: done.iter().filter(|(_, incremental)| !incremental).count(),
        minimum_redundancy: server.minimum_redundancy,
    })
}

/// What PostgreSQL reports for `status`; `None` where the server does not
/// answer (missing privileges, a standby's position unknown, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PgStatus {
    /// The version as `version()` prints it (`15.18`).
    pub server_txt_version: String,
    /// `pg_is_in_recovery()`.
    pub is_in_recovery: bool,
    /// The size of every tablespace, in bytes.
    pub current_size: Option<u64>,
    /// `data_directory`.
    pub data_directory: Option<String>,
    /// The WAL segment of the current write position (of the last replayed
    /// position on a standby).
    pub current_xlog: Option<String>,
    /// `archive_mode`.
    pub archive_mode: Option<String>,
    /// `archive_command`.
    pub archive_command: Option<String>,
    /// `pg_stat_archiver.last_archived_wal`.
    pub last_archived_wal: Option<String>,
    /// `pg_stat_archiver.last_archived_time`, epoch seconds.
    pub last_archived_time: Option<i64>,
    /// `pg_stat_archiver.failed_count`.
    pub failed_count: Option<u64>,
    /// `pg_stat_archiver.last_failed_wal`.
    pub last_failed_wal: Option<String>,
    /// `pg_stat_archiver.last_failed_time`, epoch seconds.
    pub last_failed_time: Option<i64>,
    /// `archived_count` per second since the statistics were reset.
    pub archived_wals_per_second: Option<f64>,
}

fn optional(pg: &PgConnection, sql: &str) -> Option<String> {
    match pg.query_value(sql) {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!("status: {e}");
            None
        }
    }
}

/// The WAL file of the standby's last replayed position.
fn replay_segment(pg: &PgConnection) -> Option<String> {
    let lsn: Lsn = optional(pg, "SELECT pg_last_wal_replay_lsn()")?
        .parse()
        .ok()?;
    let tli: u32 = optional(pg, "SELECT timeline_id FROM pg_control_checkpoint()")?
        .parse()
        .ok()?;
    let size: u64 = optional(
        pg,
        "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'",
    )?
    .parse()
    .ok()?;
    let size = WalSegmentSize::new(size).ok()?;
    Some(SegmentName::from_lsn(TimelineId::new(tli).ok()?, lsn, size).to_string())
}

/// Queries `pg` for `status`. Only a failure of the first query (the
/// version) is an error; later values the server refuses are `None`.
pub fn pg_status(pg: &PgConnection) -> Result<PgStatus> {
    let version = pg.query_value("SELECT version()")?.unwrap_or_default();
    let server_txt_version = version
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let is_in_recovery = pg.is_in_recovery()?;
    let current_xlog = if is_in_recovery {
        replay_segment(pg)
    } else {
        optional(pg, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    };
    let mut status = PgStatus {
        server_txt_version,
        is_in_recovery,
        current_size: optional(
            pg,
            "SELECT sum(pg_tablespace_size(oid))::bigint FROM pg_tablespace",
        )
        .and_then(|v| v.parse().ok()),
        data_directory: optional(pg, "SHOW data_directory"),
        current_xlog,
        archive_mode: optional(pg, "SHOW archive_mode"),
        archive_command: optional(pg, "SHOW archive_command"),
        ..PgStatus::default()
    };
    let rows = pg
        .query_text(
            "SELECT last_archived_wal, floor(extract(epoch FROM last_archived_time))::bigint, \
             failed_count, last_failed_wal, floor(extract(epoch FROM last_failed_time))::bigint, \
             archived_count::numeric / nullif(extract(epoch FROM age(now(), stats_reset)), 0) \
             FROM pg_stat_archiver",
        )
        .unwrap_or_else(|e| {
            tracing::debug!("status: {e}");
            Vec::new()
        });
    if let Some(row) = rows.into_iter().next() {
        let get = |i: usize| row.get(i).cloned().flatten();
        status.last_archived_wal = get(0);
        status.last_archived_time = get(1).and_then(|v| v.parse().ok());
        status.failed_count = get(2).and_then(|v| v.parse().ok());
        status.last_failed_wal = get(3);
        status.last_failed_time = get(4).and_then(|v| v.parse().ok());
        status.archived_wals_per_second = get(5).and_then(|v| v.parse().ok());
    }
    Ok(status)
}
