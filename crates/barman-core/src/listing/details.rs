//! `show-backup`: everything Barman's `get_backup_ext_info` adds to a
//! backup.info — WAL statistics, previous and next backups, retention
//! status, copy statistics, the incremental chain and deduplication.

use barman_retention::RetentionStatus;

use crate::Result;
use crate::clock::Clock;
use crate::retention::{catalog_backups, report, status_of};
use crate::shared::wal_stats::{ChildTimeline, WalStats, children_timelines, neighbours};
use barman_catalog::{BackupId, BackupInfo, BackupStatus, PyValue};
use barman_config::ServerConfig;

/// One backup as `show-backup` describes it.
#[derive(Debug, Clone)]
pub struct BackupDetails {
    /// The backup.info.
    pub info: BackupInfo,
    /// Its status.
    pub status: BackupStatus,
    /// The WALs it needs and those until the next backup (copy-done
    /// backups only; zeros otherwise).
    pub wal: WalStats,
    /// The previous DONE backup.
    pub previous: Option<BackupId>,
    /// The next DONE backup.
    pub next: Option<BackupId>,
    /// The retention label; `None` when the server has no retention policy.
    pub retention: Option<RetentionStatus>,
    /// Timelines forked from the backup's timeline after its end.
    pub children_timelines: Vec<ChildTimeline>,
    /// `copy_stats.copy_time` in seconds, when positive.
    pub copy_time: Option<f64>,
    /// `copy_stats.analysis_time` in seconds, when at least one second.
    pub analysis_time: Option<f64>,
    /// Copy workers (1 unless `copy_stats` says more).
    pub number_of_workers: u64,
    /// `deduplicated_size / copy_time` in bytes per second.
    pub throughput: Option<f64>,
    /// The first backup of its incremental chain (itself for a full backup).
    pub root_backup_id: BackupId,
    /// Backups in the chain from the root to this one, both included.
    pub chain_size: usize,
    /// Barman's estimate of the I/O saved: `1 - deduplicated_size / size`
    /// (rsync; `cluster_size` for the postgres method).
    pub deduplication_ratio: f64,
    /// `(cluster_size or size) × deduplication_ratio`, in bytes.
    pub est_dedup_size: f64,
}

fn number(v: Option<&PyValue>) -> Option<f64> {
    match v? {
        PyValue::Float(f) => Some(f.value()),
        #[allow(clippy::cast_precision_loss)]
        PyValue::Int(i) => Some(*i as f64),
        _ => None,
    }
}

/// Barman's `deduplication_ratio` of a backup.
#[allow(clippy::cast_precision_loss)]
pub fn deduplication_ratio(info: &BackupInfo) -> Result<f64> {
    let size = if info.backup_type() == "rsync" {
        info.size()?
    } else {
        info.cluster_size()?
    };
    Ok(match (size, info.deduplicated_size()?) {
        (Some(size), Some(dedup)) if size > 0 && dedup > 0 => 1.0 - dedup as f64 / size as f64,
        _ => 0.0,
    })
}

/// The details of `info` (one of `server`'s backups), with the retention
/// label at the clock's instant.
#[allow(clippy::cast_precision_loss)]
pub fn backup_details(
    server: &ServerConfig,
    info: BackupInfo,
    clock: &dyn Clock,
) -> Result<BackupDetails> {
    let catalog = server.catalog();
    let backups = catalog_backups(&catalog)?;
    let infos: Vec<BackupInfo> = backups.iter().map(|b| b.info.clone()).collect();
    let status = info.status()?;
    let (previous, next) = neighbours(&infos, info.backup_id());
    let mut details = BackupDetails {
        previous: previous.map(|b| b.backup_id().clone()),
        next: next.map(|b| b.backup_id().clone()),
        wal: WalStats::default(),
        retention: None,
        children_timelines: Vec::new(),
        copy_time: None,
        analysis_time: None,
        number_of_workers: 1,
        throughput: None,
        root_backup_id: info.backup_id().clone(),
        chain_size: 1,
        deduplication_ratio: deduplication_ratio(&info)?,
        est_dedup_size: 0.0,
        status,
        info,
    };
    let info = &details.info;
    // The chain: parents that exist and are not EMPTY.
    let mut parent = info.parent_backup_id()?;
    while let Some(id) = parent {
        let Some(p) = infos.iter().find(|b| b.backup_id() == &id) else {
            break;
        };
        if p.status()? == BackupStatus::Empty {
            break;
        }
        details.root_backup_id = id;
        details.chain_size += 1;
        parent = p.parent_backup_id()?;
    }
    let base = info.cluster_size()?.or(info.size()?).unwrap_or(0);
    details.est_dedup_size = base as f64 * details.deduplication_ratio;
    if !status.is_copy_done() {
        return Ok(details);
    }
    details.wal = WalStats::of(info, &infos, &catalog.xlogdb().read()?)?;
    if let Some(retention) = report(server, &backups, clock) {
        details.retention = Some(status_of(Some(&retention), info.backup_id().as_str()));
    }
    if let Some(tli) = info.timeline()? {
        let end = info.end_xlog().map(str::parse).transpose()?;
        details.children_timelines = children_timelines(catalog.layout(), tli, end)?;
    }
    if let Some(stats) = info.copy_stats()? {
        details.analysis_time = number(stats.get("analysis_time")).filter(|t| *t >= 1.0);
        details.copy_time = number(stats.get("copy_time")).filter(|t| *t > 0.0);
        let workers = number(stats.get("number_of_workers")).unwrap_or(1.0);
        if let Some(copy) = details.copy_time {
            let dedup = info.deduplicated_size()?.unwrap_or(0);
            if dedup > 0 {
                details.throughput = Some(dedup as f64 / copy);
                if workers > 1.0 {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    {
                        details.number_of_workers = workers as u64;
                    }
                }
            }
        }
    }
    Ok(details)
}
