//! `barman delete SERVER BACKUP_ID` (BARMAN-BEHAVIOUR.md §6.5): Barman's
//! refusals, then the backup and every incremental backup that depends on
//! it removed through [`crate::removal`].

use std::collections::BTreeSet;

use barman_retention::DeleteKind;

use crate::event::{Event, Observer};
use crate::hooks::ServerHooks;
use crate::retention::{CatalogBackup, catalog_backups};
use crate::{Error, Result};
use barman_catalog::{BackupId, BackupStatus, LockKind, try_acquire};
use barman_config::{GlobalConfig, ServerConfig};

pub use crate::removal::{DeleteReport, LogObserver, delete_one, finish_interrupted};

/// Why a manual delete is refused (nothing was changed).
fn refused(message: String) -> Error {
    Error::DeleteRefused(message)
}

/// `barman delete SERVER BACKUP_ID` (a resolved backup): Barman's refusals
/// (a keep annotation; a DONE full backup while `minimum_redundancy` would
/// no longer be met), then the backup and every incremental backup that
/// depends on it are deleted under the server's backup lock.
pub fn delete_backup(
    global: &GlobalConfig,
    server: &ServerConfig,
    id: &BackupId,
    hooks: &ServerHooks,
    observer: &mut dyn Observer,
) -> Result<DeleteReport> {
    let catalog = server.catalog();
    let backups = catalog_backups(&catalog)?;
    let Some(target) = backups.iter().find(|b| b.info.backup_id() == id) else {
        return Err(Error::Catalog(barman_catalog::Error::BackupNotFound {
            backup_id: id.to_string(),
            path: catalog.layout().backup_info_path(id),
        }));
    };
    if target.summary.keep.is_some() {
        return Err(refused(format!(
            "Skipping delete of backup {id} for server {} as it has a current keep request. \
             If you really want to delete this backup please remove the keep and try again.",
            server.name
        )));
    }
    let status = target.info.status()?;
    let done_full = backups
        .iter()
        .filter(|b| b.summary.status == BackupStatus::Done && !b.info.is_incremental())
        .count();
    let minimum = server.minimum_redundancy;
    if status == BackupStatus::Done
        && !target.info.is_incremental()
        && u64::from(minimum) >= done_full as u64
    {
        return Err(refused(format!(
            "Skipping delete of backup {id} for server {} due to minimum redundancy requirements \
             (minimum redundancy = {minimum}, current redundancy = {done_full})",
            server.name
        )));
    }
    let tree = backup_tree(&backups, id);
    if tree.len() > 1 {
        observer.event(&Event::DeletingBackupTree { id: id.clone() });
    }
    let _backup_lock = try_acquire(
        &global.barman_lock_directory,
        &LockKind::Backup(server.name.clone()),
    )
    .map_err(|e| match e {
        barman_catalog::Error::LockBusy { .. } => refused(format!(
            "Another process is running on server {}. Impossible to delete the backup.",
            server.name
        )),
        other => crate::Error::from(other),
    })?;
    let mut report = DeleteReport::default();
    for member in tree {
        report.absorb(delete_one(
            global,
            server,
            &member,
            DeleteKind::Manual,
            hooks,
            observer,
        )?);
    }
    Ok(report)
}

/// The backup `root` and every backup that descends from it through
/// `parent_backup_id`, children before their parents (the order they are
/// deleted in).
fn backup_tree(backups: &[CatalogBackup], root: &BackupId) -> Vec<BackupId> {
    fn visit(
        backups: &[CatalogBackup],
        id: &BackupId,
        seen: &mut BTreeSet<BackupId>,
        out: &mut Vec<BackupId>,
    ) {
        if !seen.insert(id.clone()) {
            return;
        }
        for child in backups
            .iter()
            .filter(|b| b.summary.parent_backup_id.as_deref() == Some(id.as_str()))
        {
            visit(backups, child.info.backup_id(), seen, out);
        }
        out.push(id.clone());
    }
    let mut out = Vec::new();
    visit(backups, root, &mut BTreeSet::new(), &mut out);
    out
}
