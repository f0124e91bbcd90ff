//! `list-backups`: one row per backup, newest first (Barman's
//! `Server.list_backups`).

use barman_retention::RetentionStatus;
use jiff::Zoned;

use crate::Result;
use crate::clock::Clock;
use crate::retention::{catalog_backups, report, status_of};
use crate::shared::wal_stats::WalStats;
use barman_catalog::{BackupStatus, Catalog};
use barman_config::ServerConfig;

/// What `list-backups` shows of one backup.
#[derive(Debug, Clone)]
pub struct BackupRow {
    /// The server.
    pub server: String,
    /// The backup id.
    pub backup_id: String,
    /// The friendly name given with `backup --name`.
    pub backup_name: Option<String>,
    /// `rsync`, `full`, `incremental` or `snapshot`.
    pub backup_type: &'static str,
    /// The backup's status.
    pub status: BackupStatus,
    /// When the backup ended (WAITING_FOR_WALS and DONE backups only).
    pub end_time: Option<Zoned>,
    /// `size` plus the WALs the backup needs (its "Size").
    pub size: u64,
    /// The WALs archived after it until the next backup ("WAL Size").
    pub wal_size: u64,
    /// The retention label, when a policy is set and the label is not VALID.
    pub retention: Option<RetentionStatus>,
}

impl BackupRow {
    /// WAITING_FOR_WALS or DONE: the copy is complete and the row shows its
    /// sizes (other backups show only their status).
    pub fn is_copy_done(&self) -> bool {
        self.status.is_copy_done()
    }
}

/// Every backup of `server` (any status), newest first, with the retention
/// label at the clock's instant.
pub fn list_backups(server: &ServerConfig, clock: &dyn Clock) -> Result<Vec<BackupRow>> {
    let catalog: Catalog = server.catalog();
    let backups = catalog_backups(&catalog)?;
    let retention = report(server, &backups, clock);
    let infos: Vec<_> = backups.iter().map(|b| b.info.clone()).collect();
    let entries = catalog.xlogdb().read()?;
    let mut rows = Vec::with_capacity(backups.len());
    for backup in backups.iter().rev() {
        let info = &backup.info;
        let status = info.status()?;
        let mut size = info.size()?.unwrap_or(0);
        let mut wal_size = 0;
        let mut end_time = None;
        let mut label = None;
        if status.is_copy_done() {
            let stats = WalStats::of(info, &infos, &entries)?;
            size += stats.wal_size;
            wal_size = stats.until_next_size;
            end_time = info.end_time()?;
            let r = status_of(retention.as_ref(), info.backup_id().as_str());
            if retention.is_some() && r != RetentionStatus::Valid {
                label = Some(r);
            }
        }
        rows.push(BackupRow {
            server: server.name.clone(),
            backup_id: info.backup_id().to_string(),
            backup_name: info.backup_name().map(str::to_owned),
            backup_type: info.backup_type(),
            status,
            end_time,
            size,
            wal_size,
            retention: label,
        });
    }
    Ok(rows)
}
