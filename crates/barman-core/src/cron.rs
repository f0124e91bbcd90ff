//! `barman cron`: the periodic maintenance of every server
//! (BARMAN-BEHAVIOUR.md §1.4 `cron`, §5.2, §6.5).
//!
//! Under the global `.cron.lock`, then per server under
//! `.<server>-cron.lock` (a busy lock skips, it never waits). The `barman`
//! command runs each server's steps ([`cron_server`]) in a process of its
//! own, so that a server stuck in a step never holds the others (see
//! [`cron`]):
//!
//! 1. `archive-wal` (in process, under the archive-wal lock, so two crons
//!    never run two archivers);
//! 2. `receive-wal` supervision: started in the background through the
//!    injected [`CronSpawner`] when `streaming_archiver` is on and no
//!    process holds the receive-wal lock; stopped when it is off;
//! 3. interrupted backups (EMPTY/STARTED with no backup process alive) are
//!    marked FAILED — **beyond Barman**, which leaves them STARTED;
//! 4. `check-backup` of the oldest WAITING_FOR_WALS backup;
//! 5. interrupted deletes (a `delete_this` marker nobody works on) are
//!    finished;
//! 6. retention enforcement (`retention_policy_mode = auto`): every
//!    OBSOLETE backup, oldest first, under its own backup lock.
//!
//! Inactive servers only get a running receive-wal stopped. Passive nodes
//! (`primary_ssh_command`) replace 1 and 2 by their synchronisation
//! ([`crate::sync`], Barman's `sync_cron`): SYNCING backups no sync-backup
//! works on any more are marked FAILED; `sync-info --primary` is saved to
//! `primary.info`; one `sync-backup` is started in the background for the
//! oldest primary backup missing (or FAILED) here that the local
//! retention policy would not call OBSOLETE; `sync-wals` is started when
//! the primary lists WALs this node does not have. Their retention (6) is
//! the passive node's own.

mod passive;

use std::path::Path;
use std::sync::Arc;

use crate::clock::Clock;
use crate::event::{Event, Observer};
use crate::hooks::HookSetup;
use crate::removal::{DeleteReport, delete_one, finish_interrupted};
use crate::retention::{catalog_backups, report};
use crate::shared::{Spawner, check_backup_info, fail_interrupted};
use crate::{Error, Result};
use barman_catalog::{BackupId, BackupStatus, LockGuard, LockKind, read_owner, try_acquire};
use barman_config::{GlobalConfig, RetentionPolicyMode, ServerConfig};

/// Starts and stops the background processes cron supervises (injected:
/// the CLI spawns its own executable; tests and embedders choose).
pub trait CronSpawner {
    /// Starts `barman receive-wal SERVER` detached from cron; returns its pid.
    fn spawn_receive_wal(&self, server: &str) -> Result<u32>;
    /// Asks process `pid` to terminate (SIGTERM).
    fn terminate(&self, pid: u32) -> Result<()>;
    /// Starts `barman sync-backup SERVER BACKUP_ID` detached from cron
    /// (passive nodes); returns its pid.
    fn spawn_sync_backup(&self, server: &str, backup_id: &BackupId) -> Result<u32>;
    /// Starts `barman sync-wals SERVER` detached from cron (passive nodes);
    /// returns its pid.
    fn spawn_sync_wals(&self, server: &str) -> Result<u32>;
}

/// What cron needs from its caller.
pub struct CronContext<'a> {
    /// The clock (retention windows).
    pub clock: &'a dyn Clock,
    /// Process spawning (receive-wal, sync-backup, sync-wals).
    pub spawner: &'a dyn CronSpawner,
    /// Shell commands: `primary_ssh_command` of passive nodes.
    pub shell: Arc<dyn Spawner>,
    /// The configuration file (sent to a primary with `forward_config_path`).
    pub config_path: Option<&'a Path>,
    /// The events of the run ([`crate::event`]).
    pub observer: &'a mut (dyn Observer + Send),
    /// The hook settings: each server's archive, delete and WAL-delete
    /// hooks run in its archive-wal, interrupted deletes and retention.
    pub hooks: &'a HookSetup,
}

impl std::fmt::Debug for CronContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CronContext").finish_non_exhaustive()
    }
}

/// What cron did for one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerCronReport {
    /// The server.
    pub server: String,
    /// The per-server cron lock was busy: nothing was done.
    pub skipped_busy: bool,
    /// WAL files archive-wal processed (None: not run, e.g. its lock was busy).
    pub archived: Option<usize>,
    /// The pid of a receive-wal started by this run.
    pub receive_wal_started: Option<u32>,
    /// The pid of a receive-wal stopped by this run.
    pub receive_wal_stopped: Option<u32>,
    /// Interrupted backups marked FAILED.
    pub failed_interrupted: Vec<BackupId>,
    /// The backup check-backup looked at, and its status afterwards.
    pub checked: Option<(BackupId, BackupStatus)>,
    /// Deletes finished after an interruption, and retention deletes.
    pub deleted: DeleteReport,
    /// Passive node: the primary's sync-info was saved to `primary.info`.
    pub primary_info: bool,
    /// Passive node: the backup whose sync-backup this run started, and its pid.
    pub sync_backup_started: Option<(BackupId, u32)>,
    /// Passive node: the pid of the sync-wals this run started.
    pub sync_wals_started: Option<u32>,
    /// Errors met (the run goes on with the next step).
    pub errors: Vec<String>,
}

/// What a whole cron run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CronReport {
    /// The global cron lock was busy: nothing was done.
    pub skipped_busy: bool,
    /// One report per server, in name order.
    pub servers: Vec<ServerCronReport>,
}

/// Runs cron over `servers` under the global cron lock, one server after
/// the other in this process.
///
/// A server whose step waits (archive-wal blocked on a held xlog.db lock,
/// say) delays the following servers. The `barman` command therefore does
/// not use this: it runs [`cron_server`] of every server in a process of
/// its own (see the CLI's `cron`), with [`global_lock`] and
/// [`cron_servers`]; this in-process run is for embedders and tests.
pub fn cron(
    global: &GlobalConfig,
    servers: &[&ServerConfig],
    ctx: &mut CronContext<'_>,
) -> Result<CronReport> {
    let mut report = CronReport::default();
    let Some(_lock) = global_lock(global, ctx.observer)? else {
        report.skipped_busy = true;
        return Ok(report);
    };
    for server in cron_servers(servers) {
        report.servers.push(cron_server(global, server, ctx));
    }
    Ok(report)
}

/// Takes the global `.cron.lock` (creating the lock directory). `None`,
/// after Barman's message to `observer`, when another cron holds it.
pub fn global_lock(
    global: &GlobalConfig,
    observer: &mut dyn Observer,
) -> Result<Option<LockGuard>> {
    barman_catalog::fs::create_dir_secure(&global.barman_lock_directory)?;
    match try_acquire(&global.barman_lock_directory, &LockKind::Cron) {
        Ok(lock) => Ok(Some(lock)),
        Err(barman_catalog::Error::LockBusy { .. }) => {
            observer.event(&Event::CronBusy);
            Ok(None)
        }
        Err(e) => Err(crate::Error::from(e)),
    }
}

/// The servers cron works on, in name order: every one not disabled.
pub fn cron_servers<'a>(servers: &[&'a ServerConfig]) -> Vec<&'a ServerConfig> {
    let mut sorted: Vec<&ServerConfig> = servers.iter().copied().filter(|s| !s.disabled).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
}

/// Cron for one server, under its cron lock. Errors of one step are
/// reported and the following steps still run.
pub fn cron_server(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
) -> ServerCronReport {
    let mut report = ServerCronReport {
        server: server.name.clone(),
        ..ServerCronReport::default()
    };
    let name = server.name.as_str();
    let lock = match try_acquire(
        &global.barman_lock_directory,
        &LockKind::ServerCron(name.to_owned()),
    ) {
        Ok(lock) => lock,
        Err(barman_catalog::Error::LockBusy { .. }) => {
            ctx.observer.event(&Event::CronServerBusy {
                server: name.to_owned(),
            });
            report.skipped_busy = true;
            return report;
        }
        Err(e) => {
            report.errors.push(e.to_string());
            ctx.observer.event(&Event::Failure {
                server: None,
                error: e.to_string(),
            });
            return report;
        }
    };

    if !server.active {
        stop_receive_wal(global, server, ctx, &mut report);
        drop(lock);
        return report;
    }
    if let Err(e) = server.refuse_not_implemented() {
        ctx.observer.event(&Event::Failure {
            server: None,
            error: e.to_string(),
        });
        report.errors.push(e.to_string());
        return report;
    }
    let step = |report: &mut ServerCronReport, ctx: &mut CronContext<'_>, r: Result<()>| {
        if let Err(e) = r {
            ctx.observer.event(&Event::Failure {
                server: Some(name.to_owned()),
                error: e.to_string(),
            });
            report.errors.push(e.to_string());
        }
    };
    if server.is_passive() {
        let r = passive::sync_from_primary(global, server, ctx, &mut report);
        step(&mut report, ctx, r);
    } else {
        let r = archive(global, server, ctx, &mut report);
        step(&mut report, ctx, r);
        if server.streaming_archiver {
            let r = start_receive_wal(global, server, ctx, &mut report);
            step(&mut report, ctx, r);
        } else {
            stop_receive_wal(global, server, ctx, &mut report);
        }
    }
    let r = fail_interrupted_backups(global, server, ctx, &mut report);
    step(&mut report, ctx, r);
    let r = check_oldest_waiting(global, server, ctx, &mut report);
    step(&mut report, ctx, r);
    let r = finish_deletes(global, server, ctx, &mut report);
    step(&mut report, ctx, r);
    let r = enforce_retention(global, server, ctx, &mut report);
    step(&mut report, ctx, r);
    drop(lock);
    report
}

fn archive(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
    report: &mut ServerCronReport,
) -> Result<()> {
    let (options, _) = crate::server::archive_setup(global, server)?;
    let layout = server.layout();
    let hooks = ctx.hooks.server(server)?;
    match crate::archive::archive_wal(&layout, &options, ctx.clock, &mut hooks.archive_observer()) {
        Ok(run) => {
            if let Some(stopped) = &run.stopped {
                ctx.observer.event(&Event::ArchivingStopped {
                    server: server.name.clone(),
                    wal: stopped.name.clone(),
                    reason: stopped.reason.clone(),
                });
            }
            if !run.processed.is_empty() {
                ctx.observer.event(&Event::WalsArchived {
                    server: server.name.clone(),
                    wals: run.processed.iter().map(|p| p.name.clone()).collect(),
                });
            }
            for rejected in run.rejected() {
                ctx.observer.event(&Event::WalRejected {
                    server: server.name.clone(),
                    wal: rejected.name.clone(),
                });
            }
            report.archived = Some(run.processed.len());
            Ok(())
        }
        Err(Error::Catalog(barman_catalog::Error::LockBusy { .. })) => {
            ctx.observer.event(&Event::ArchiverBusy {
                server: server.name.clone(),
            });
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn receive_wal_owner(global: &GlobalConfig, server: &ServerConfig) -> Option<u32> {
    read_owner(&LockKind::ReceiveWal(server.name.clone()).path(&global.barman_lock_directory))
}

fn start_receive_wal(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
    report: &mut ServerCronReport,
) -> Result<()> {
    if let Some(pid) = receive_wal_owner(global, server) {
        tracing::debug!(
            "Another STREAMING ARCHIVER process is running for server {} (pid {pid})",
            server.name
        );
        return Ok(());
    }
    let pid = ctx.spawner.spawn_receive_wal(&server.name)?;
    ctx.observer.event(&Event::ReceiveWalSpawned {
        server: server.name.clone(),
        pid,
    });
    report.receive_wal_started = Some(pid);
    Ok(())
}

fn stop_receive_wal(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
    report: &mut ServerCronReport,
) {
    let Some(pid) = receive_wal_owner(global, server) else {
        return;
    };
    match ctx.spawner.terminate(pid) {
        Ok(()) => {
            ctx.observer.event(&Event::ReceiveWalTerminated {
                server: server.name.clone(),
                pid,
            });
            report.receive_wal_stopped = Some(pid);
        }
        Err(e) => {
            ctx.observer.event(&Event::ReceiveWalTerminateFailed {
                server: server.name.clone(),
                pid,
                error: e.to_string(),
            });
            report.errors.push(e.to_string());
        }
    }
}

/// EMPTY/STARTED backups while no backup process holds the backup lock.
fn fail_interrupted_backups(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
    report: &mut ServerCronReport,
) -> Result<()> {
    let layout = server.layout();
    let catalog = server.catalog();
    let has_candidates = catalog.backups()?.iter().any(|b| {
        b.status()
            .is_ok_and(|s| matches!(s, BackupStatus::Empty | BackupStatus::Started))
    });
    if !has_candidates {
        return Ok(());
    }
    let _lock = match try_acquire(
        &global.barman_lock_directory,
        &LockKind::Backup(server.name.clone()),
    ) {
        Ok(lock) => lock,
        Err(barman_catalog::Error::LockBusy { .. }) => return Ok(()), // a backup is running
        Err(e) => return Err(crate::Error::from(e)),
    };
    for id in fail_interrupted(&layout, &server.name)? {
        ctx.observer.event(&Event::InterruptedBackupFailed {
            server: server.name.clone(),
            id: id.clone(),
        });
        report.failed_interrupted.push(id);
    }
    Ok(())
}

/// check-backup of the oldest WAITING_FOR_WALS backup (one per run, as Barman).
fn check_oldest_waiting(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
    report: &mut ServerCronReport,
) -> Result<()> {
    let catalog = server.catalog();
    let Some(mut info) = catalog
        .backups()?
        .into_iter()
        .find(|b| b.status().is_ok_and(|s| s == BackupStatus::WaitingForWals))
    else {
        return Ok(());
    };
    let status = check_backup_info(global, server, &mut info)?;
    if status != BackupStatus::WaitingForWals {
        ctx.observer.event(&Event::BackupStatusChanged {
            server: server.name.clone(),
            id: info.backup_id().clone(),
            status,
        });
    }
    report.checked = Some((info.backup_id().clone(), status));
    Ok(())
}

fn finish_deletes(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
    report: &mut ServerCronReport,
) -> Result<()> {
    let hooks = ctx.hooks.server(server)?;
    let done = finish_interrupted(global, server, &hooks, &mut *ctx.observer)?;
    report.deleted.absorb(done);
    Ok(())
}

fn enforce_retention(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut CronContext<'_>,
    report: &mut ServerCronReport,
) -> Result<()> {
    if server.retention_policy_mode != RetentionPolicyMode::Auto {
        return Ok(());
    }
    let backups = catalog_backups(&server.catalog())?;
    let Some(retention) = report_for(server, &backups, ctx.clock) else {
        return Ok(());
    };
    let hooks = ctx.hooks.server(server)?;
    for id in retention.obsolete_ids() {
        let id: BackupId = id.parse()?;
        ctx.observer.event(&Event::RetentionRemoving {
            server: server.name.clone(),
            id: id.clone(),
        });
        match delete_one(
            global,
            server,
            &id,
            barman_retention::DeleteKind::Retention,
            &hooks,
            &mut *ctx.observer,
        ) {
            Ok(done) => report.deleted.absorb(done),
            Err(Error::DeleteRefused(message)) => {
                ctx.observer
                    .event(&Event::RetentionRefused { reason: message });
            }
            Err(Error::HookAborted(abort)) => {
                ctx.observer.event(&Event::RetentionStopped {
                    server: server.name.clone(),
                    id: id.clone(),
                    reason: abort.to_string(),
                });
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn report_for(
    server: &ServerConfig,
    backups: &[crate::retention::CatalogBackup],
    clock: &dyn Clock,
) -> Option<barman_retention::RetentionReport> {
    let retention = report(server, backups, clock)?;
    for warning in &retention.warnings {
        tracing::warn!("server {}: {warning}", server.name);
    }
    Some(retention)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use barman_config::Config;

    struct Collect(Vec<Event>);

    impl Observer for Collect {
        fn event(&mut self, event: &Event) {
            self.0.push(event.clone());
        }
    }

    fn config(home: &Path) -> Config {
        let text = format!(
            "[barman]\nbarman_home = {}\n\n[b]\nconninfo = host=x\n\n[c]\nconninfo = host=x\n\n[a]\nconninfo = host=x\n",
            home.display()
        );
        Config::parse_str(&text, Path::new("/etc/barman.conf")).unwrap()
    }

    #[test]
    fn cron_servers_are_in_name_order_without_the_disabled_ones() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut c = config.server("c").unwrap().clone();
        c.disabled = true;
        let servers = [config.server("b").unwrap(), &c, config.server("a").unwrap()];
        let names: Vec<&str> = cron_servers(&servers)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_busy_global_lock_is_reported_and_never_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir.path().join("home"));
        let mut seen = Collect(Vec::new());
        let held = global_lock(config.global(), &mut seen).unwrap();
        assert!(held.is_some());
        assert!(dir.path().join("home/.cron.lock").is_file());
        assert!(global_lock(config.global(), &mut seen).unwrap().is_none());
        assert_eq!(seen.0, [Event::CronBusy]);
        drop(held);
        assert!(global_lock(config.global(), &mut seen).unwrap().is_some());
    }
}
