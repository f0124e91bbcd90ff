//! `barman sync-backup SERVER BACKUP_ID`: one backup of the primary's
//! catalog copied to the passive node.
//!
//! Under `.<server>-<id>-sync-backup.lock`: the backup.info from the
//! primary's `sync-info` (saved in `primary.info`) is written with status
//! SYNCING; `base/<id>/` is copied from the primary's
//! `basebackups_directory` by the copy engine, through `barman agent`
//! sessions started over `primary_ssh_command`. The plan comes from the
//! primary's manifest (`base/<id>/manifest`): a file whose blake3 equals
//! the one of the newest local backup's copy (WAITING_FOR_WALS or DONE) is
//! hard-linked to it
//! (`reuse_backup = copy`: copied locally), a changed one is rebuilt from a
//! page or rsync delta, a new one fetched. Every file copied is checked
//! against the primary's manifest; a mismatch (a file corrupted on the
//! primary, a transfer gone wrong) fails the sync naming the file. Then
//! the local manifest is written, the directory fsynced and the status set
//! to WAITING_FOR_WALS, then DONE by check-backup as soon as every WAL from
//! `begin_wal` to `end_wal` is here too (`sync-wals` brings them; `cron`
//! checks). Any failure (Ctrl-C included) leaves FAILED with an `error`;
//! the next `cron` retries.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use barman_copy::{
    CopyPlan, CopyReport, EntryKind, Exclusions, ExecOptions, Manifest, PlanOptions, RelPath,
    Reuse, Roots, SourceFactory,
};

use super::{SyncContext, agent_factory, load_primary_info, locally_obsolete, passive_ssh};
use crate::event::{Event, ProgressEvents};
use crate::shared::MANIFEST_FILE;
use crate::{Error, Result};
use barman_catalog::fs::{create_dir_secure, fsync_dir};
use barman_catalog::{BackupId, BackupInfo, BackupStatus, Identity, LockKind, try_acquire};
use barman_config::{GlobalConfig, ReuseBackup, ServerConfig};

/// The root name under which the agent serves the primary's backup
/// directory itself (for its manifest).
const BACKUP_ROOT: &str = "backup";

/// What a backup sync did.
#[derive(Debug, Clone)]
pub struct SyncBackupReport {
    /// The backup.
    pub id: BackupId,
    /// Why nothing was copied (already synchronised, obsolete locally).
    pub skipped: Option<String>,
    /// The copy engine's figures (its manifest left empty).
    pub copy: Option<CopyReport>,
    /// The local backup reused by hard link or delta.
    pub previous: Option<BackupId>,
    /// Whether the primary's manifest checked every file.
    pub verified: bool,
    /// Bytes received from the primary (the manifest included).
    pub bytes_transferred: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl SyncBackupReport {
    fn skipped(id: &BackupId, why: String) -> Self {
        Self {
            id: id.clone(),
            skipped: Some(why),
            copy: None,
            previous: None,
            verified: false,
            bytes_transferred: 0,
            elapsed: Duration::ZERO,
        }
    }
}

/// Synchronises backup `id` from the primary (see the module's doc).
pub fn sync_backup(
    global: &GlobalConfig,
    server: &ServerConfig,
    id: &BackupId,
    ctx: &mut SyncContext<'_>,
) -> Result<SyncBackupReport> {
    passive_ssh(server, "sync-backup")?;
    let name = server.name.as_str();
    let refused = |message: String| Error::Sync {
        server: name.to_owned(),
        message,
    };
    let layout = server.layout();
    let primary = load_primary_info(server)?;
    let local = match BackupInfo::read(&layout, id) {
        Ok(info) => Some(info),
        Err(barman_catalog::Error::BackupNotFound { .. }) => None,
        Err(e) => return Err(crate::Error::from(e)),
    };
    let local_status = local.as_ref().map(BackupInfo::status).transpose()?;
    let Some(remote) = primary.backups.get(id) else {
        return Err(refused(match local_status {
            None => format!("backup {id} is absent on the primary"),
            Some(status) if status.is_copy_done() => {
                return Ok(SyncBackupReport::skipped(
                    id,
                    format!(
                        "Backup {id} is absent on the primary, but present locally (local copy only)"
                    ),
                ));
            }
            Some(status) => format!(
                "backup {id} is absent on the primary and {status} locally: remove it with `barman delete {name} {id}`"
            ),
        }));
    };
    if local_status.is_some_and(BackupStatus::is_copy_done) {
        return Ok(SyncBackupReport::skipped(
            id,
            format!("Backup {id} is already synced with {name} server"),
        ));
    }
    remote.ensure_restorable(name, "synchronised")?;
    server.check_bandwidth_limits(None)?;
    if locally_obsolete(server, remote, ctx.clock)? {
        return Ok(SyncBackupReport::skipped(
            id,
            format!("Remote backup {name}/{id} is obsolete for local retention policies."),
        ));
    }
    let _lock = match try_acquire(
        &global.barman_lock_directory,
        &LockKind::SyncBackup(name.to_owned(), id.clone()),
    ) {
        Ok(lock) => lock,
        Err(barman_catalog::Error::LockBusy { .. }) => {
            return Err(refused(format!(
                "Another synchronisation process for backup {id} of server {name} is already running."
            )));
        }
        Err(e) => return Err(crate::Error::from(e)),
    };
    let identity = server.catalog().identity()?;
    if let (Some(identity), Some(systemid)) = (&identity, remote.systemid())
        && identity.systemid != systemid
    {
        return Err(refused(format!(
            "system identifier mismatch: the local catalog (identity.json) has {}, backup {id} on the primary has {systemid}",
            identity.systemid
        )));
    }
    layout.ensure()?;
    let dir = layout.backup_dir(id);
    remove_tree(&dir)?;
    let mut info = remote.clone();
    info.set_status(BackupStatus::Syncing);
    info.set_error(None)?;
    info.write(&layout)?;
    ctx.observer.event(&Event::BackupSyncStarted {
        server: name.to_owned(),
        id: id.clone(),
    });
    let started = Instant::now();
    let result = copy_backup(server, &primary.config.basebackups_directory, &info, ctx);
    match result {
        Ok(mut report) => {
            // DONE once every WAL from begin_wal to end_wal is here too
            // (check-backup now, or in a later cron once sync-wals brought them).
            info.set_status(BackupStatus::WaitingForWals);
            info.write(&layout)?;
            let status = crate::shared::check_backup_info(global, server, &mut info)?;
            if identity.is_none()
                && let (Some(systemid), Some(version)) = (info.systemid(), info.version()?)
            {
                Identity::new(systemid, (version / 10000).to_string())
                    .write(&layout.identity_path())?;
            }
            report.elapsed = started.elapsed();
            if let Some(copy) = &report.copy {
                ctx.observer.event(&Event::BackupSynchronised {
                    server: name.to_owned(),
                    id: id.clone(),
                    status,
                    elapsed: report.elapsed,
                    files: copy.files,
                    bytes: copy.bytes_total,
                    files_linked: copy.files_linked,
                    files_delta: copy.files_delta,
                    files_fetched: copy.files_fetched,
                    bytes_transferred: report.bytes_transferred,
                });
            }
            Ok(report)
        }
        Err(e) => {
            let text = if ctx.cancel.load(Ordering::SeqCst) {
                "interrupted by signal".to_owned()
            } else {
                e.to_string()
            };
            let first = text.lines().next().unwrap_or("").to_owned();
            let message = format!("failure syncing server {name} backup {id}: {first}");
            info.set_status(BackupStatus::Failed);
            info.set_error(Some(&message))?;
            info.write(&layout)?;
            if let Err(cleanup) = remove_tree(&dir) {
                tracing::warn!("cannot remove the partial copy: {cleanup}");
            }
            Err(Error::SyncFailed {
                server: name.to_owned(),
                id: id.to_string(),
                message,
            })
        }
    }
}

/// Removes `dir` and everything under it (nothing there is fine).
fn remove_tree(dir: &std::path::Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", dir, e)),
    }
}

/// The trees of a backup: `data` and one per tablespace OID.
fn trees(info: &BackupInfo) -> Result<BTreeSet<String>> {
    let mut trees = BTreeSet::from(["data".to_owned()]);
    for t in info.tablespaces()?.unwrap_or_default() {
        trees.insert(t.oid.to_string());
    }
    Ok(trees)
}

/// Copies `base/<id>/` with `basebackup_retry_times` retries (not after a
/// checksum mismatch, which a retry cannot mend).
fn copy_backup(
    server: &ServerConfig,
    primary_base: &std::path::Path,
    info: &BackupInfo,
    ctx: &mut SyncContext<'_>,
) -> Result<SyncBackupReport> {
    let id = info.backup_id();
    let layout = server.layout();
    let dest = layout.backup_dir(id);
    let remote_dir = primary_base.join(id.as_str());
    let trees = trees(info)?;
    let mut roots: Roots = trees
        .iter()
        .map(|t| (t.clone(), remote_dir.join(t)))
        .collect();
    roots.insert(BACKUP_ROOT.to_owned(), remote_dir.clone());
    // The primary's backup directory and its trees are real directories:
    // a link there (a compromised primary) is refused by the agent.
    let sources = agent_factory(server, ctx, roots)?.no_root_links();
    let previous = reference_backup(server, id)?;
    let reuse = match server.reuse_backup {
        Some(ReuseBackup::Copy) => Reuse::Copy,
        _ => Reuse::Link,
    };
    if let Some((p, _)) = &previous {
        ctx.observer.event(&Event::ReusingLocalBackup {
            id: p.backup_id().clone(),
        });
    }
    let previous_id = previous.as_ref().map(|(p, _)| p.backup_id().clone());
    let (previous_dir, previous_manifest) = match previous {
        Some((p, m)) => (Some(layout.backup_dir(p.backup_id())), Some(Arc::new(m))),
        None => (None, None),
    };
    let exec = ExecOptions {
        jobs: server.parallel_jobs.max(1) as usize,
        bandwidth_limit: server
            .bandwidth_limit
            .filter(|&k| k > 0)
            .map(|k| k.saturating_mul(1024)),
        tree_limits: std::collections::BTreeMap::new(),
        previous_dir,
        previous: previous_manifest.clone(),
        reuse,
        skip_vanished: false,
    };
    let retries = server.basebackup_retry_times;
    let mut attempt = 0;
    loop {
        let result = (|| {
            create_dir_secure(&dest)?;
            let (expected, manifest_bytes) = primary_manifest(&sources, &dest)?;
            let options = PlanOptions {
                reuse,
                ..PlanOptions::default()
            };
            let plan = if let Some(m) = &expected {
                check_trees(m, &trees).map_err(|message| Error::Sync {
                    server: server.name.clone(),
                    message: format!("backup {id}: {message}"),
                })?;
                CopyPlan::from_manifest(previous_manifest.as_deref(), m, &options)
            } else {
                ctx.observer
                    .event(&Event::NoPrimaryManifest { id: id.clone() });
                let listing = list_trees(&sources, &trees)?;
                CopyPlan::compute(previous_manifest.as_deref(), &listing, &options)
            };
            tracing::debug!("sync plan for {id}: {}", plan.summary());
            let progress = ProgressEvents::new(&mut *ctx.observer);
            let mut report =
                barman_copy::execute(&plan, &sources, &dest, &exec, &progress, ctx.cancel)?;
            if let Some(expected) = &expected {
                verify(expected, &report.manifest).map_err(|message| Error::Sync {
                    server: server.name.clone(),
                    message: format!("backup {id}: {message}"),
                })?;
            }
            let manifest = std::mem::take(&mut report.manifest);
            manifest.write(&dest.join(MANIFEST_FILE))?;
            fsync_dir(&dest)?;
            fsync_dir(layout.basebackups_directory())?;
            Ok::<_, Error>((report, manifest_bytes, expected.is_some()))
        })();
        match result {
            Ok((copy, manifest_bytes, verified)) => {
                return Ok(SyncBackupReport {
                    id: id.clone(),
                    skipped: None,
                    bytes_transferred: copy.wire_bytes + manifest_bytes,
                    copy: Some(copy),
                    previous: previous_id,
                    verified,
                    elapsed: Duration::ZERO,
                });
            }
            Err(e) => {
                let final_error = ctx.cancel.load(Ordering::SeqCst)
                    || matches!(
                        e,
                        Error::Copy(barman_copy::Error::Cancelled) | Error::Sync { .. }
                    )
                    || attempt >= retries;
                if final_error {
                    return Err(e);
                }
                attempt += 1;
                ctx.observer.event(&Event::CopyRetry {
                    error: e.to_string(),
                    attempt,
                    retries,
                    sleep: Duration::from_secs(server.basebackup_retry_sleep),
                });
                remove_tree(&dest)?;
                std::thread::sleep(Duration::from_secs(server.basebackup_retry_sleep));
            }
        }
    }
}

/// The newest local backup other than `id` whose copy is complete
/// (WAITING_FOR_WALS or DONE: its WALs may still be on their way) and has a
/// manifest: the one a sync reuses.
fn reference_backup(
    server: &ServerConfig,
    id: &BackupId,
) -> Result<Option<(BackupInfo, Manifest)>> {
    let layout = server.layout();
    for info in server.catalog().backups()?.into_iter().rev() {
        if info.backup_id() == id || !info.status()?.is_copy_done() {
            continue;
        }
        let path = layout.backup_dir(info.backup_id()).join(MANIFEST_FILE);
        if path.is_file() {
            let manifest = Manifest::read(&path)?;
            return Ok(Some((info, manifest)));
        }
    }
    Ok(None)
}

/// Reads the primary's `base/<id>/manifest` (through a temporary file in
/// `dest`); `None` when the primary has none. Returns the bytes received.
fn primary_manifest(
    sources: &dyn SourceFactory,
    dest: &std::path::Path,
) -> Result<(Option<Manifest>, u64)> {
    let mut session = sources.open()?;
    // A temporary file of barman-fs, never installed: removed when dropped.
    let mut tmp = barman_fs::TempFile::create(dest.join("primary-manifest"), 0o600)?;
    let path = RelPath::new(format!("{BACKUP_ROOT}/{MANIFEST_FILE}"))?;
    let read = session.read(&path, &mut |chunk| {
        tmp.write_all(chunk)
            .map_err(|e| barman_copy::Error::io(tmp.path(), e))
    });
    let wire = session.wire_bytes();
    let result = match read {
        Ok(_) => Manifest::read(tmp.path()).map(Some).map_err(Error::from),
        Err(barman_copy::Error::Vanished { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    };
    drop(tmp);
    Ok((result?, wire))
}

/// Lists the backup's trees on the primary (no exclusion: a backup copy).
fn list_trees(
    sources: &dyn SourceFactory,
    trees: &BTreeSet<String>,
) -> Result<Vec<barman_copy::Entry>> {
    let mut session = sources.open()?;
    let mut all = Vec::new();
    for tree in trees {
        all.extend(session.list(tree, &Exclusions::none())?);
    }
    Ok(all)
}

/// Every entry of the primary's manifest belongs to one of the backup's
/// trees (`data`, a tablespace OID).
fn check_trees(manifest: &Manifest, trees: &BTreeSet<String>) -> std::result::Result<(), String> {
    match manifest.iter().find(|e| !trees.contains(e.path.tree())) {
        Some(e) => Err(format!(
            "the primary's manifest lists `{}`, outside the backup's trees ({})",
            e.path,
            trees.iter().cloned().collect::<Vec<_>>().join(", ")
        )),
        None => Ok(()),
    }
}

/// The copy (`got`, the copy engine's manifest) holds exactly what the
/// primary's manifest (`expected`) describes: same entries, same kinds,
/// every file with the same size and blake3.
fn verify(expected: &Manifest, got: &Manifest) -> std::result::Result<(), String> {
    for want in expected.iter() {
        let path = &want.path;
        let Some(have) = got.get(path) else {
            return Err(format!("`{path}` of the primary's manifest was not copied"));
        };
        if want.kind != have.kind {
            return Err(format!(
                "`{path}` is not of the kind the primary's manifest says"
            ));
        }
        if want.kind != EntryKind::File {
            continue;
        }
        if want.blake3.is_none() {
            return Err(format!(
                "`{path}` has no checksum in the primary's manifest"
            ));
        }
        if want.size != have.size || want.blake3 != have.blake3 {
            return Err(format!(
                "checksum mismatch: `{path}` as copied from the primary ({} bytes) does not match the primary's manifest ({} bytes): the primary's copy is corrupt",
                have.size, want.size
            ));
        }
    }
    if let Some(extra) = got.iter().find(|e| expected.get(&e.path).is_none()) {
        return Err(format!("`{}` is not in the primary's manifest", extra.path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use barman_copy::hash::FileHash;
    use barman_copy::{ManifestEntry, Mtime};

    use super::*;

    fn entry(path: &str, size: u64, hash: Option<u8>) -> ManifestEntry {
        ManifestEntry {
            entry: barman_copy::Entry {
                path: RelPath::new(path).unwrap(),
                kind: if hash.is_some() || size > 0 {
                    EntryKind::File
                } else {
                    EntryKind::Dir
                },
                size,
                mtime: Mtime::default(),
                mode: 0o600,
            },
            blake3: hash.map(|b| FileHash([b; 32])),
            pages: None,
        }
    }

    fn manifest(entries: &[ManifestEntry]) -> Manifest {
        let mut m = Manifest::default();
        for e in entries {
            m.insert(e.clone());
        }
        m
    }

    #[test]
    fn verify_names_the_file_that_differs() {
        let want = manifest(&[
            entry("data", 0, None),
            entry("data/base/1", 8192, Some(1)),
            entry("16385/PG_15/5/1", 10, Some(2)),
        ]);
        assert_eq!(verify(&want, &want.clone()), Ok(()));
        let corrupt = manifest(&[
            entry("data", 0, None),
            entry("data/base/1", 8192, Some(9)),
            entry("16385/PG_15/5/1", 10, Some(2)),
        ]);
        let e = verify(&want, &corrupt).unwrap_err();
        assert!(
            e.contains("checksum mismatch") && e.contains("data/base/1"),
            "{e}"
        );
        let missing = manifest(&[entry("data", 0, None), entry("data/base/1", 8192, Some(1))]);
        assert!(
            verify(&want, &missing)
                .unwrap_err()
                .contains("16385/PG_15/5/1")
        );
        let mut extra = want.clone();
        extra.insert(entry("data/evil", 1, Some(3)));
        assert!(verify(&want, &extra).unwrap_err().contains("data/evil"));
        let unchecked = manifest(&[ManifestEntry {
            blake3: None,
            ..entry("data/base/1", 8192, Some(1))
        }]);
        assert!(
            verify(&unchecked, &unchecked)
                .unwrap_err()
                .contains("no checksum")
        );
    }

    #[test]
    fn manifest_paths_must_stay_in_the_backup_trees() {
        let trees = BTreeSet::from(["data".to_owned(), "16385".to_owned()]);
        let good = manifest(&[
            entry("data/base/1", 1, Some(1)),
            entry("16385/x", 1, Some(1)),
        ]);
        assert_eq!(check_trees(&good, &trees), Ok(()));
        let bad = manifest(&[entry("wals/0000000100000000/x", 1, Some(1))]);
        assert!(
            check_trees(&bad, &trees)
                .unwrap_err()
                .contains("wals/0000000100000000/x")
        );
        let root = manifest(&[entry("backup/manifest", 1, Some(1))]);
        assert!(check_trees(&root, &trees).is_err());
    }
}
