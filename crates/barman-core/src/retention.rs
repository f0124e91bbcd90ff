//! The catalog side of retention: [`BackupSummary`] values built from a
//! server's `backup.info` files and keep marks, and the server's
//! [`RetentionReport`] at the injected clock's instant.
//!
//! The policy itself lives in `barman-retention`; this module only reads
//! the catalog and the server's `retention_policy` / `minimum_redundancy`.

use barman_retention::{BackupSummary, RetentionReport, RetentionStatus};

use crate::Result;
use crate::clock::Clock;
use barman_catalog::{BackupInfo, Catalog};
use barman_config::ServerConfig;

/// A backup as read from the catalog, with its retention summary.
#[derive(Debug, Clone)]
pub struct CatalogBackup {
    /// The backup's metadata.
    pub info: BackupInfo,
    /// What retention sees of it (status, end time, keep mark, parent, WALs).
    pub summary: BackupSummary,
    /// Whether `meta/<id>-delete_this` marks an interrupted delete.
    pub delete_pending: bool,
}

/// The retention summary of one backup; `keep` comes from its keep mark.
pub fn summary_of(
    info: &BackupInfo,
    keep: Option<barman_retention::KeepTarget>,
) -> Result<BackupSummary> {
    let mut summary = BackupSummary::new(info.backup_id().as_str(), info.status()?);
    if let Some(end) = info.end_time()? {
        summary = summary.end_time(end.timestamp().as_second());
    }
    if let Some(target) = keep {
        summary = summary.keep(target);
    }
    if let (Some(begin), Some(end)) = (info.begin_wal(), info.end_wal()) {
        summary = summary.wals(begin, end);
    }
    if let Some(parent) = info.parent_backup_id()? {
        summary = summary.parent(parent.as_str());
    }
    Ok(summary)
}

/// Every backup of the catalog (sorted by id) with its summary.
pub fn catalog_backups(catalog: &Catalog) -> Result<Vec<CatalogBackup>> {
    catalog
        .backups()?
        .into_iter()
        .map(|info| {
            let keep = catalog.keep(info.backup_id())?;
            let summary = summary_of(&info, keep)?;
            let delete_pending = catalog
                .layout()
                .delete_marker_path(info.backup_id())
                .exists();
            Ok(CatalogBackup {
                info,
                summary,
                delete_pending,
            })
        })
        .collect()
}

/// The server's retention report over `backups` at the clock's instant;
/// `None` when the server has no `retention_policy`.
pub fn report(
    server: &ServerConfig,
    backups: &[CatalogBackup],
    clock: &dyn Clock,
) -> Option<RetentionReport> {
    let policy = server.retention_policy.as_ref()?;
    let summaries: Vec<BackupSummary> = backups.iter().map(|b| b.summary.clone()).collect();
    Some(barman_retention::evaluate(
        policy,
        &summaries,
        clock.now().as_second(),
        server.minimum_redundancy,
    ))
}

/// The retention label of `backup_id` in `report` (`-` without a policy).
pub fn status_of(report: Option<&RetentionReport>, backup_id: &str) -> RetentionStatus {
    report.map_or(RetentionStatus::None, |r| r.status_of(backup_id))
}
