//! Removing backups and the WALs no remaining backup needs, crash safe
//! (BARMAN-BEHAVIOUR.md §6.5, §6.6, §4.2): what `barman delete`
//! ([`crate::delete`]), retention in `cron` and the purge after a first
//! backup share.
//!
//! A delete is crash safe: `meta/<id>-delete_this` is written (durably)
//! before anything is removed and removed last, so a delete killed at any
//! instant leaves a marker that the next `barman cron` recognises
//! ([`finish_interrupted`]) and completes. The steps, in order:
//!
//! 1. the marker;
//! 2. the backup's data (`base/<id>/`);
//! 3. the WALs no remaining backup needs (§4.2), each file unlinked before
//!    xlog.db is rewritten without its line, under the xlogdb lock — a
//!    crash in between leaves xlog.db listing files nobody needs, which the
//!    rerun removes;
//! 4. `backup.info` and the keep mark;
//! 5. the marker.
//!
//! The WAL cleanup is computed from the catalog as it is before step 4, so
//! a rerun computes the same cleanup.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use barman_hooks::{HookAbort, HookEvent, WalVars};
use barman_retention::{DeleteKind, WalCleanup};
use barman_wal::WalFileName;

use crate::event::{Event, Observer};
use crate::hooks::{EventVars, ServerHooks, backup_vars};
use crate::retention::{CatalogBackup, catalog_backups};
use crate::{Error, Result};
use barman_catalog::fs::{FILE_MODE, fsync_dir, write_atomic, write_atomic_with};
use barman_catalog::{
    BackupId, BackupInfo, BackupStatus, LockKind, ServerLayout, XlogDb, XlogEntry,
    acquire_blocking, try_acquire,
};
use barman_config::{BackupOption, GlobalConfig, ServerConfig};

/// An observer that only logs (the events of [`crate::event`]).
pub use crate::event::LogObserver;

/// What a delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteReport {
    /// The backups deleted, in the order they were deleted.
    pub deleted: Vec<BackupId>,
    /// Number of WAL files removed from the archive.
    pub wals_removed: u64,
    /// The first and last WAL file removed, if any.
    pub wal_range: Option<(String, String)>,
    /// The backup whose `size` / `deduplicated_size` were recomputed.
    pub resized: Option<BackupId>,
}

impl DeleteReport {
    /// Adds what another delete did to this report.
    pub fn absorb(&mut self, other: DeleteReport) {
        self.deleted.extend(other.deleted);
        self.wals_removed += other.wals_removed;
        if let Some((first, last)) = other.wal_range {
            self.wal_range = Some(match self.wal_range.take() {
                Some((f, _)) => (f, last),
                None => (first, last),
            });
        }
        if other.resized.is_some() {
            self.resized = other.resized;
        }
    }
}

/// Deletes one backup (no refusals: the caller decided), holding its
/// `.<server>-<id>.lock`. `kind` selects Barman's WAL cleanup rule: a
/// retention delete may remove WALs past older `keep:standalone` backups,
/// a manual one does not. A backup whose `backup.info` is already gone (an
/// interrupted delete past that step) only has its leftovers removed.
///
/// Hooks: the pre delete hooks run once the marker is written, the post
/// delete hooks once the backup is gone, and the WAL-delete hooks around
/// each WAL file removed. A pre delete retry hook exiting 63 stops the
/// delete before anything is removed: the marker this call wrote goes
/// again (one left by an interrupted delete stays, for the next cron) and
/// [`Error::HookAborted`] is returned. A pre WAL-delete retry hook exiting
/// 63 keeps that WAL and the following ones, and stops the delete there
/// with the marker in place, so that `cron` finishes it later.
pub fn delete_one(
    global: &GlobalConfig,
    server: &ServerConfig,
    id: &BackupId,
    kind: DeleteKind,
    hooks: &ServerHooks,
    observer: &mut dyn Observer,
) -> Result<DeleteReport> {
    let lock_kind = LockKind::BackupId(server.name.clone(), id.clone());
    let lock = try_acquire(&global.barman_lock_directory, &lock_kind).map_err(|e| match e {
        barman_catalog::Error::LockBusy { .. } => Error::DeleteRefused(format!(
            "Another process is holding the lock for backup {id} of server {}.",
            server.name
        )),
        other => crate::Error::from(other),
    })?;
    let catalog = server.catalog();
    let layout = catalog.layout().clone();
    let backups = catalog_backups(&catalog)?;
    let mut report = DeleteReport::default();
    let Some(target) = backups.iter().find(|b| b.info.backup_id() == id) else {
        // backup.info already removed: only the data dir and the marker can remain.
        remove_tree(&layout.backup_dir(id))?;
        remove_file_durable(&layout.delete_marker_path(id))?;
        drop(lock);
        remove_lock_file(&lock_kind.path(&global.barman_lock_directory));
        return Ok(report);
    };
    let started = std::time::Instant::now();
    let started_at = jiff::Zoned::now();

    // 1. The marker, durable before anything goes; then the pre hooks.
    let marker = layout.delete_marker_path(id);
    let resumed = marker.exists();
    write_atomic(&marker, b"delete", FILE_MODE)?;
    let vars = || {
        EventVars::backup(backup_vars(
            &layout,
            backups.iter().map(|b| &b.info),
            &target.info,
        ))
    };
    if let Err(abort) = hooks.pre(HookEvent::Delete, vars) {
        if !resumed {
            remove_file_durable(&marker)?;
        }
        drop(lock);
        remove_lock_file(&lock_kind.path(&global.barman_lock_directory));
        return Err(abort.into());
    }
    observer.event(&Event::BackupDeleting {
        server: server.name.clone(),
        id: id.clone(),
    });

    // The WAL cleanup, from the catalog as it is now.
    let summaries: Vec<_> = backups.iter().map(|b| b.summary.clone()).collect();
    let cleanup = barman_retention::wal_cleanup_for_delete(
        &summaries,
        id.as_str(),
        kind,
        concurrent_backup(server),
    );
    let next = next_copy_done(&backups, id);
    // Beyond Barman: with no lower bound, the cleanup would remove every
    // WAL — also those of a backup in progress, whose backup.info has no
    // begin_wal yet. Keep them while another backup is EMPTY or STARTED.
    let running = backups.iter().any(|b| {
        b.info.backup_id() != id
            && matches!(
                b.summary.status,
                BackupStatus::Empty | BackupStatus::Started
            )
    });
    let cleanup = cleanup.filter(|c| {
        let unbounded = c.keep_from.is_none();
        if unbounded && running {
            tracing::info!(
                "deleting backup {id} of {}: WALs kept, another backup is in progress",
                server.name
            );
        }
        !(unbounded && running)
    });

    // 2. The data.
    remove_tree(&layout.backup_dir(id))?;

    // 3. The WALs nobody needs any more.
    if let Some(cleanup) = cleanup {
        observer.event(&Event::WalRemovalStarted);
        let removed = remove_wals(global, server, &cleanup, hooks, observer)?;
        if let Some(abort) = removed.aborted {
            return Err(abort.into());
        }
        report.wals_removed = removed.count;
        report.wal_range = removed.range;
    }

    // 4. backup.info (both locations) and the keep mark.
    for path in [
        layout.backup_info_path(id),
        layout.legacy_backup_info_path(id),
        layout.keep_path(id),
        layout.legacy_keep_path(id),
    ] {
        remove_file_durable(&path)?;
    }

    // 5. The marker: the delete is complete.
    remove_file_durable(&layout.delete_marker_path(id))?;
    report.deleted.push(id.clone());
    observer.event(&Event::BackupDeleted {
        id: id.clone(),
        started_at: started_at.clone(),
        elapsed: started.elapsed(),
    });

    // Bookkeeping that a crash may lose without harm.
    if let Some(parent) = target.info.parent_backup_id()? {
        update_parent_children(&layout, &parent, id)?;
    }
    if let Some(next) = next
        && next.info.backup_type() == "rsync"
    {
        let mut info = BackupInfo::read(&layout, next.info.backup_id())?;
        let (size, dedup) = backup_sizes(&layout.backup_dir(next.info.backup_id()))?;
        info.set_size(Some(size));
        info.set_deduplicated_size(Some(dedup));
        info.write(&layout)?;
        report.resized = Some(next.info.backup_id().clone());
    }
    remove_lock_file(
        &LockKind::SyncBackup(server.name.clone(), id.clone()).path(&global.barman_lock_directory),
    );
    hooks.post(HookEvent::Delete, vars);
    drop(lock);
    remove_lock_file(&lock_kind.path(&global.barman_lock_directory));
    Ok(report)
}

/// Deletes that a crash interrupted: backups with a `delete_this` marker
/// whose lock nobody holds. Each is finished as a retention delete (its
/// data may already be gone, so it is never refused). Returns what was done.
pub fn finish_interrupted(
    global: &GlobalConfig,
    server: &ServerConfig,
    hooks: &ServerHooks,
    observer: &mut dyn Observer,
) -> Result<DeleteReport> {
    let layout = server.layout();
    let mut report = DeleteReport::default();
    for id in pending_deletes(&layout)? {
        let lock =
            LockKind::BackupId(server.name.clone(), id.clone()).path(&global.barman_lock_directory);
        if barman_catalog::read_owner(&lock).is_some() {
            continue; // a delete is running right now
        }
        observer.event(&Event::DeleteResuming {
            server: server.name.clone(),
            id: id.clone(),
        });
        report.absorb(delete_one(
            global,
            server,
            &id,
            DeleteKind::Retention,
            hooks,
            observer,
        )?);
    }
    Ok(report)
}

/// Ids with a `meta/<id>-delete_this` marker.
pub fn pending_deletes(layout: &ServerLayout) -> Result<Vec<BackupId>> {
    let dir = layout.meta_directory();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix("-delete_this"))
            .and_then(|id| id.parse::<BackupId>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// Whether backups are taken with the concurrent API (Barman's default).
fn concurrent_backup(server: &ServerConfig) -> bool {
    !server
        .backup_options
        .contains(&BackupOption::ExclusiveBackup)
}

/// The next backup after `id` among WAITING_FOR_WALS / DONE ones.
fn next_copy_done<'a>(backups: &'a [CatalogBackup], id: &BackupId) -> Option<&'a CatalogBackup> {
    backups
        .iter()
        .filter(|b| b.info.backup_id() > id)
        .find(|b| b.summary.status.is_copy_done())
}

/// Removes `parent`'s reference to the deleted child.
fn update_parent_children(
    layout: &ServerLayout,
    parent: &BackupId,
    child: &BackupId,
) -> Result<()> {
    let Ok(mut info) = BackupInfo::read(layout, parent) else {
        return Ok(());
    };
    if let Some(children) = info.children_backup_ids()? {
        let kept: Vec<BackupId> = children.into_iter().filter(|c| c != child).collect();
        info.set_children_backup_ids(&kept);
        info.write(layout)?;
    }
    Ok(())
}

/// `size` and `deduplicated_size` of a backup directory: every file's size,
/// and the size of the files with a single link (hard links shared with
/// another backup are not counted), as Barman computes them.
pub fn backup_sizes(dir: &Path) -> Result<(u64, u64)> {
    let mut size = 0;
    let mut dedup = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("cannot list", &d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list", &d, e))?;
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("cannot stat", entry.path(), e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                size += meta.len();
                if meta.nlink() == 1 {
                    dedup += meta.len();
                }
            }
        }
    }
    Ok((size, dedup))
}

/// Removes a directory tree (absent is fine) and fsyncs its parent.
fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                fsync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", dir, e)),
    }
}

/// Removes a file (absent is fine) and fsyncs its directory.
fn remove_file_durable(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(parent) = path.parent() {
                fsync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", path, e)),
    }
}

/// A released lock file of a backup that no longer exists: removed as
/// Barman does (nobody waits on it).
fn remove_lock_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::debug!("cannot remove {}: {e}", path.display());
    }
}

/// What a WAL cleanup removed.
#[derive(Debug, Default)]
pub struct RemovedWals {
    /// Number of files removed.
    pub count: u64,
    /// First and last name removed.
    pub range: Option<(String, String)>,
    /// A pre WAL-delete retry hook stopped the cleanup (exit 63, or the
    /// cancel flag): that file and the following ones were kept.
    pub aborted: Option<HookAbort>,
}

/// Removes from the archive every xlog.db entry `cleanup` does not keep:
/// under the xlogdb lock, xlog.db is read line by line, each removable
/// file is unlinked, and the kept lines go to a temporary file that
/// replaces xlog.db atomically at the end. Empty hash directories are
/// removed. Memory stays bounded whatever the size of xlog.db.
///
/// Interrupted, it leaves xlog.db listing files already unlinked — files no
/// remaining backup needs — and the rerun completes it. Temporary copies of
/// xlog.db left by a killed writer are removed first (every writer holds
/// the xlogdb lock, so none can be in use).
///
/// The WAL-delete hooks run around each file (under the xlogdb lock, as in
/// Barman); when the pre retry hook stops the cleanup, that file and every
/// later line are kept and [`RemovedWals::aborted`] says why.
pub fn remove_wals(
    global: &GlobalConfig,
    server: &ServerConfig,
    cleanup: &WalCleanup,
    hooks: &ServerHooks,
    observer: &mut dyn Observer,
) -> Result<RemovedWals> {
    let layout = server.layout();
    let xlogdb = XlogDb::new(layout.xlogdb_path(&server.name));
    let _x = acquire_blocking(
        &global.barman_lock_directory,
        &LockKind::XlogDb(server.name.clone()),
    )?;
    remove_stale_temps(xlogdb.path());
    let mut removed = RemovedWals::default();
    let file = match std::fs::File::open(xlogdb.path()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::io("cannot read", xlogdb.path(), e)),
    };
    let mut touched_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut failure: Option<Error> = None;
    let result = write_atomic_with(xlogdb.path(), FILE_MODE, |out| {
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let entry = match XlogEntry::parse_line(&line) {
                Ok(entry) => entry,
                Err(message) => {
                    failure = Some(Error::Catalog(barman_catalog::Error::CatalogSyntax {
                        path: xlogdb.path().to_path_buf(),
                        line: index + 1,
                        message: format!("malformed xlog.db line: {message}"),
                    }));
                    return Err(std::io::Error::other("malformed xlog.db"));
                }
            };
            if removed.aborted.is_some() || cleanup.keeps(&entry.name) {
                out.write_all(entry.to_line().as_bytes())?;
                continue;
            }
            let name: WalFileName = match entry.name.parse() {
                Ok(name) => name,
                Err(e) => {
                    failure = Some(Error::Wal(e));
                    return Err(std::io::Error::other("bad WAL name"));
                }
            };
            let path = layout.wal_path(&name);
            let vars = |error: Option<String>| {
                let mut vars = WalVars::new(
                    entry.name.as_str(),
                    path.display().to_string(),
                    entry.size,
                    entry.time.value(),
                );
                if let Some(c) = &entry.compression {
                    vars = vars.compression(c.clone());
                }
                EventVars::wal(vars).with_error(error)
            };
            if let Err(abort) = hooks.pre(HookEvent::WalDelete, || vars(None)) {
                tracing::warn!(
                    "server {}: removal of WAL {} stopped: {abort}",
                    server.name,
                    entry.name
                );
                removed.aborted = Some(abort);
                out.write_all(entry.to_line().as_bytes())?;
                continue;
            }
            let unlinked = match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("cannot remove", &path, e)),
            };
            hooks.post(HookEvent::WalDelete, || {
                vars(unlinked.as_ref().err().map(ToString::to_string))
            });
            if let Err(e) = unlinked {
                failure = Some(e);
                return Err(std::io::Error::other("cannot remove a WAL file"));
            }
            if let Some(dir) = path.parent() {
                touched_dirs.insert(dir.to_path_buf());
            }
            observer.event(&Event::WalRemoved {
                name: entry.name.clone(),
            });
            removed.count += 1;
            removed.range = Some(match removed.range.take() {
                Some((first, _)) => (first, entry.name.clone()),
                None => (entry.name.clone(), entry.name.clone()),
            });
        }
        Ok(())
    });
    if let Some(e) = failure {
        return Err(e);
    }
    result?;
    for dir in &touched_dirs {
        if dir.as_path() == layout.wals_directory() {
            continue;
        }
        // An empty hash directory goes (remove_dir fails on a non-empty one).
        if std::fs::remove_dir(dir).is_err() {
            fsync_dir(dir)?;
        }
    }
    if !touched_dirs.is_empty() {
        fsync_dir(layout.wals_directory())?;
    }
    Ok(removed)
}

/// Removes the temporary files of `path` a killed process left behind
/// next to it ([`barman_fs::remove_stale_temps`]; the caller serialises
/// the writers of `path`).
fn remove_stale_temps(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let dir = barman_fs::parent_dir(path);
    for removed in barman_fs::remove_stale_temps(dir, &name.to_string_lossy()) {
        tracing::info!("removed {} left by an interrupted write", removed.display());
    }
}

/// After the very first backup of a server: removes every WAL older than
/// its `begin_wal` (Barman does this unless `worm_mode` is on).
pub fn purge_before_first_backup(
    global: &GlobalConfig,
    server: &ServerConfig,
    info: &BackupInfo,
    hooks: &ServerHooks,
    observer: &mut dyn Observer,
) -> Result<RemovedWals> {
    let summary = crate::retention::summary_of(info, None)?;
    match barman_retention::wal_cleanup_for_first_backup(&summary) {
        Some(cleanup) => remove_wals(global, server, &cleanup, hooks, observer),
        None => Ok(RemovedWals::default()),
    }
}
