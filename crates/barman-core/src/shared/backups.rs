//! What operations share about the backups of a catalog: resolving a
//! backup id or shortcut, check-backup's verdict written back, interrupted
//! backups marked FAILED, and the manifest file's name.

use barman_catalog::{BackupId, BackupInfo, BackupStatus, LockKind, ServerLayout};
use barman_config::{GlobalConfig, ServerConfig};

use super::wal_coverage::{check_wals, next_status};
use crate::{Error, Result};

/// Name of the manifest file in `base/<id>/`.
pub const MANIFEST_FILE: &str = "manifest";

/// Marks EMPTY/STARTED backups FAILED: called with the backup lock held, so
/// no backup process owns them (it was killed). Returns their ids.
pub fn fail_interrupted(layout: &ServerLayout, server: &str) -> Result<Vec<BackupId>> {
    let catalog = barman_catalog::Catalog::open(layout.clone(), server);
    let mut failed = Vec::new();
    for mut info in catalog.backups()? {
        let status = info.status()?;
        if matches!(status, BackupStatus::Empty | BackupStatus::Started) {
            let message = format!(
                "failure interrupted (the backup process ended while the backup was {status})"
            );
            info.set_error(Some(&message))?;
            info.set_status(BackupStatus::Failed);
            info.write(layout)?;
            remove_partial_data(layout, info.backup_id());
            tracing::warn!(
                "backup {} of `{server}` was interrupted: marked FAILED",
                info.backup_id()
            );
            failed.push(info.backup_id().clone());
        }
    }
    Ok(failed)
}

pub(crate) fn remove_partial_data(layout: &ServerLayout, id: &BackupId) {
    let dir = layout.backup_dir(id);
    for name in ["data", MANIFEST_FILE] {
        let path = dir.join(name);
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(e) = result
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Runs check-backup on `info` (re-read from disk under the backup-id lock),
/// writes a changed status and returns the status.
pub fn check_backup_info(
    global: &GlobalConfig,
    server: &ServerConfig,
    info: &mut BackupInfo,
) -> Result<BackupStatus> {
    let layout = server.layout();
    let _lock = barman_catalog::acquire_blocking(
        &global.barman_lock_directory,
        &LockKind::BackupId(server.name.clone(), info.backup_id().clone()),
    )?;
    *info = BackupInfo::read(&layout, info.backup_id())?;
    let xlog = server.catalog().xlogdb().read()?;
    let verdict = check_wals(info, &xlog)?;
    if let Some((status, error)) = next_status(info, &verdict)? {
        info.set_status(status);
        if let Some(e) = error {
            info.set_error(Some(&e))?;
        }
        info.write(&layout)?;
        tracing::info!(
            "backup {} of `{}` is now {status}",
            info.backup_id(),
            server.name
        );
    }
    info.status().map_err(crate::Error::from)
}

/// `barman check-backup SERVER BACKUP_ID`.
pub fn check_backup(
    global: &GlobalConfig,
    server: &ServerConfig,
    id: &BackupId,
) -> Result<BackupStatus> {
    let mut info = server.catalog().backup(id)?;
    check_backup_info(global, server, &mut info)
}

/// Resolves a backup id or one of Barman's shortcuts (§1.3): `latest`/`last`
/// and `oldest`/`first` (DONE backups), `last-failed`, `last-full`, or a
/// backup name.
pub fn resolve_backup(catalog: &barman_catalog::Catalog, text: &str) -> Result<BackupInfo> {
    let backups = catalog.backups()?;
    let not_found = || {
        Error::Catalog(barman_catalog::Error::BackupNotFound {
            backup_id: text.to_owned(),
            path: catalog.layout().meta_directory().to_path_buf(),
        })
    };
    let done = |b: &&BackupInfo| b.status().is_ok_and(|s| s == BackupStatus::Done);
    let found = match text {
        "latest" | "last" => backups.iter().rev().find(done),
        "oldest" | "first" => backups.iter().find(done),
        "last-full" => backups
            .iter()
            .rev()
            .filter(done)
            .find(|b| !b.is_incremental()),
        "last-failed" => backups
            .iter()
            .rev()
            .find(|b| b.status().is_ok_and(|s| s == BackupStatus::Failed)),
        _ => by_id_or_name(catalog, &backups, text)?,
    };
    found.cloned().ok_or_else(not_found)
}

/// The backup of `backups` whose id is `text` (any status), else the one
/// named `text`; more than one backup with that name is refused.
pub fn by_id_or_name<'b>(
    catalog: &barman_catalog::Catalog,
    backups: &'b [BackupInfo],
    text: &str,
) -> Result<Option<&'b BackupInfo>> {
    if let Ok(id) = text.parse::<BackupId>() {
        return Ok(backups.iter().find(|b| b.backup_id() == &id));
    }
    let mut named = backups.iter().filter(|b| b.backup_name() == Some(text));
    let first = named.next();
    if named.next().is_some() {
        return Err(Error::BackupRefused(format!(
            "more than one backup of server `{}` is named `{text}`: use its id",
            catalog.server_name()
        )));
    }
    Ok(first)
}
