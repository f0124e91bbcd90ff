//! `cron` on a passive node (Barman's `sync_cron`): what to synchronise,
//! and the background processes that do it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use super::{CronContext, ServerCronReport};
use crate::Result;
use crate::event::Event;
use crate::sync::{SyncContext, locally_obsolete, primary_node_info};
use barman_catalog::{BackupId, BackupInfo, BackupStatus, LockKind, try_acquire};
use barman_config::{GlobalConfig, ServerConfig};

/// Synchronisation step of `cron` for passive `server`.
pub(crate) fn sync_from_primary(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
    report: &mut ServerCronReport,
) -> Result<()> {
    let name = server.name.as_str();
    for id in fail_interrupted_syncs(global, server)? {
        ctx.observer.event(&Event::SyncInterrupted {
            server: name.to_owned(),
            id: id.clone(),
        });
        report.failed_interrupted.push(id);
    }
    let cancel = AtomicBool::new(false);
    let mut sync = SyncContext {
        clock: ctx.clock,
        spawner: ctx.shell.clone(),
        cancel: &cancel,
        observer: &mut *ctx.observer,
        config_path: ctx.config_path,
        agent_command: None,
    };
    let primary = match primary_node_info(server, &mut sync) {
        Ok((info, _)) => info,
        Err(e) => {
            ctx.observer.event(&Event::PrimaryInfoFailed {
                error: e.to_string(),
            });
            report.errors.push(e.to_string());
            return Ok(());
        }
    };
    report.primary_info = true;

    let local: BTreeMap<BackupId, BackupStatus> = server
        .catalog()
        .backups()?
        .iter()
        .map(|b| Ok((b.backup_id().clone(), b.status()?)))
        .collect::<Result<_>>()?;
    if primary.backups.is_empty() {
        ctx.observer.event(&Event::NoBackupToSync {
            server: name.to_owned(),
        });
    }
    for (id, remote) in &primary.backups {
        if local.get(id).is_some_and(|s| s.is_copy_done())
            || locally_obsolete(server, remote, ctx.clock)?
        {
            continue;
        }
        if let Some(why) = remote.restore_obstacle() {
            ctx.observer.event(&Event::BackupNotSynchronised {
                id: id.clone(),
                reason: why.clone(),
            });
            continue;
        }
        if !lock_free(global, &LockKind::SyncBackup(name.to_owned(), id.clone()))? {
            ctx.observer.event(&Event::BackupSyncBusy {
                server: name.to_owned(),
                id: id.clone(),
            });
            break;
        }
        let pid = ctx.spawner.spawn_sync_backup(name, id)?;
        ctx.observer.event(&Event::BackupSyncSpawned {
            server: name.to_owned(),
            id: id.clone(),
            pid,
        });
        report.sync_backup_started = Some((id.clone(), pid));
        break;
    }

    if primary.wals.is_empty() {
        ctx.observer.event(&Event::NoWalToSync {
            server: name.to_owned(),
        });
    } else if !lock_free(global, &LockKind::SyncWal(name.to_owned()))? {
        ctx.observer.event(&Event::WalSyncBusy {
            server: name.to_owned(),
        });
    } else {
        let pid = ctx.spawner.spawn_sync_wals(name)?;
        ctx.observer.event(&Event::WalSyncSpawned {
            server: name.to_owned(),
            pid,
        });
        report.sync_wals_started = Some(pid);
    }
    Ok(())
}

/// Whether no process holds the lock `kind` now.
fn lock_free(global: &GlobalConfig, kind: &LockKind) -> Result<bool> {
    match try_acquire(&global.barman_lock_directory, kind) {
        Ok(_lock) => Ok(true),
        Err(barman_catalog::Error::LockBusy { .. }) => Ok(false),
        Err(e) => Err(crate::Error::from(e)),
    }
}

/// SYNCING backups whose sync-backup lock nobody holds (the process was
/// killed) are marked FAILED, so that they are synchronised again.
fn fail_interrupted_syncs(global: &GlobalConfig, server: &ServerConfig) -> Result<Vec<BackupId>> {
    let layout = server.layout();
    let mut failed = Vec::new();
    for mut info in server.catalog().backups()? {
        if info.status()? != BackupStatus::Syncing {
            continue;
        }
        let id = info.backup_id().clone();
        let _lock = match try_acquire(
            &global.barman_lock_directory,
            &LockKind::SyncBackup(server.name.clone(), id.clone()),
        ) {
            Ok(lock) => lock,
            Err(barman_catalog::Error::LockBusy { .. }) => continue,
            Err(e) => return Err(crate::Error::from(e)),
        };
        // Re-read under the lock: a sync may have ended meanwhile.
        info = BackupInfo::read(&layout, &id)?;
        if info.status()? != BackupStatus::Syncing {
            continue;
        }
        info.set_error(Some(&format!(
            "failure syncing server {} backup {id}: interrupted (the sync-backup process ended while the backup was SYNCING)",
            server.name
        )))?;
        info.set_status(BackupStatus::Failed);
        info.write(&layout)?;
        failed.push(id);
    }
    Ok(failed)
}
