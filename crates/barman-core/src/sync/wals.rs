//! `barman sync-wals SERVER`: the WALs of the primary's last `sync-info`
//! (`primary.info`) copied to the passive node.
//!
//! Under `.<server>-sync-wal.lock`. Refused when the primary's WAL
//! `compression` differs from the local one (the files are copied as they
//! are stored). Nothing is copied while the passive node has no copied
//! backup ("waits for a first backup", as Barman); WALs older than every
//! backup that is or will be here (the first local copied backup, the
//! primary's backups still to synchronise) are left out, history files
//! never.
//!
//! Each WAL is read through `barman agent` from the primary's
//! `wals_directory` into a temporary file next to its place, checked (the
//! size xlog.db gives, the compression it names, and through any
//! compression the WAL header and segment size, the system identifier of
//! `identity.json`), fsynced and linked into place without ever replacing
//! a file; its xlog.db line is then appended under the xlogdb lock unless
//! xlog.db already has one for that name (Barman can write a line twice;
//! this never does). `sync-wals.info` records the primary's `last_name` and
//! `last_position` once every WAL is in; then check-backup runs on the
//! WAITING_FOR_WALS backups (synchronised backups wait there for their WALs).

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;

use barman_copy::{RelPath, Roots, Source, SourceFactory};
use barman_wal::WalFileName;

use super::{
    SyncContext, agent_factory, load_primary_info, locally_obsolete, passive_ssh,
    write_sync_wals_info,
};
use crate::archive::WalExpectations;
use crate::archive::inspect::{InspectError, detect_compression, inspect, same_content};
use crate::event::Event;
use barman_fs::NoReplace;

use crate::archive::store::{create_temp, parent};
use crate::{Error, Result};
use barman_catalog::fs::create_dir_secure;
use barman_catalog::{
    BackupId, BackupStatus, LockKind, XlogDb, XlogEntry, acquire_blocking, try_acquire,
};
use barman_config::{GlobalConfig, ServerConfig};

/// The root name under which the agent serves the primary's `wals_directory`.
const WALS_ROOT: &str = "wals";

/// What a WAL sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncWalsReport {
    /// Why nothing was done (no local backup yet).
    pub skipped: Option<String>,
    /// WAL files copied, in order.
    pub copied: Vec<String>,
    /// Listed WAL files the passive node already had (file and xlog.db line).
    pub present: usize,
    /// Listed WAL files older than every backup here (not copied).
    pub too_old: usize,
    /// Bytes received from the primary.
    pub bytes_transferred: u64,
    /// WAITING_FOR_WALS backups checked afterwards whose status changed.
    pub checked: Vec<(BackupId, BackupStatus)>,
}

/// Synchronises the WALs listed in `primary.info` (see the module's doc).
pub fn sync_wals(
    global: &GlobalConfig,
    server: &ServerConfig,
    ctx: &mut SyncContext<'_>,
) -> Result<SyncWalsReport> {
    passive_ssh(server, "sync-wals")?;
    let name = server.name.as_str();
    let refused = |message: String| Error::Sync {
        server: name.to_owned(),
        message,
    };
    barman_catalog::fs::create_dir_secure(&global.barman_lock_directory)?;
    let _lock = match try_acquire(
        &global.barman_lock_directory,
        &LockKind::SyncWal(name.to_owned()),
    ) {
        Ok(lock) => lock,
        Err(barman_catalog::Error::LockBusy { .. }) => {
            return Err(refused(format!(
                "Another sync-wal operation is running for server {name}"
            )));
        }
        Err(e) => return Err(crate::Error::from(e)),
    };
    let primary = load_primary_info(server)?;
    let local_compression = server.to_json()["compression"].as_str().map(str::to_owned);
    if primary.config.compression != local_compression {
        return Err(refused(format!(
            "Compression method on server {name} ({}) does not match local compression method ({})",
            primary.config.compression.as_deref().unwrap_or("None"),
            local_compression.as_deref().unwrap_or("None"),
        )));
    }
    let mut report = SyncWalsReport::default();
    let Some(from) = first_needed_wal(server, &primary, ctx)? else {
        let why = format!("No base backup for server {name}");
        ctx.observer.event(&Event::NoBaseBackup {
            server: name.to_owned(),
        });
        report.skipped = Some(why);
        return Ok(report);
    };
    let layout = server.layout();
    layout.ensure()?;
    let xlogdb = XlogDb::new(layout.xlogdb_path(name));
    let mut have: HashSet<String> = xlogdb.read()?.into_iter().map(|e| e.name).collect();
    let mut todo = Vec::new();
    for entry in &primary.wals {
        let wal: WalFileName = entry.name.parse()?;
        if have.contains(&entry.name) && layout.wal_path(&wal).is_file() {
            report.present += 1;
        } else if !wal.is_history() && entry.name.get(..24).unwrap_or(&entry.name) < from.as_str() {
            report.too_old += 1;
        } else {
            todo.push((wal, entry));
        }
    }
    if !todo.is_empty() {
        let roots: Roots =
            BTreeMap::from([(WALS_ROOT.to_owned(), primary.config.wals_directory.clone())]);
        let sources = agent_factory(server, ctx, roots)?;
        let mut session = sources.open()?;
        let expected = crate::server::wal_expectations(server)?;
        let codec = crate::server::wal_codec(server)?;
        for (wal, entry) in todo {
            let wal_source = WalSource {
                server: name,
                expected: &expected,
                codec: codec.as_ref(),
            };
            wal_source.copy(session.as_mut(), &layout, &wal, entry)?;
            if have.insert(entry.name.clone()) {
                append(global, server, &xlogdb, entry)?;
            }
            report.copied.push(entry.name.clone());
        }
        report.bytes_transferred = session.wire_bytes();
    }
    write_sync_wals_info(server, &primary)?;
    if !report.copied.is_empty() {
        ctx.observer.event(&Event::WalsSynchronised {
            server: name.to_owned(),
            count: report.copied.len(),
            bytes: report.bytes_transferred,
        });
    }
    // The backups these WALs complete.
    for mut info in server.catalog().backups()? {
        if info.status()? != BackupStatus::WaitingForWals {
            continue;
        }
        let status = crate::shared::check_backup_info(global, server, &mut info)?;
        if status != BackupStatus::WaitingForWals {
            ctx.observer.event(&Event::BackupStatusChanged {
                server: name.to_owned(),
                id: info.backup_id().clone(),
                status,
            });
            report.checked.push((info.backup_id().clone(), status));
        }
    }
    Ok(report)
}

/// The oldest WAL a backup here needs or will need: the smallest `begin_wal`
/// of the first local backup whose copy is done (WAITING_FOR_WALS or DONE)
/// and of the primary's backups still to be synchronised (not copied here,
/// not obsolete locally). `None` without a copied local backup.
fn first_needed_wal(
    server: &ServerConfig,
    primary: &super::PrimaryInfo,
    ctx: &SyncContext<'_>,
) -> Result<Option<String>> {
    let local = server.catalog().backups()?;
    let done: HashSet<&str> = local
        .iter()
        .filter(|b| b.status().is_ok_and(BackupStatus::is_copy_done))
        .map(|b| b.backup_id().as_str())
        .collect();
    let Some(first) = local
        .iter()
        .find(|b| done.contains(b.backup_id().as_str()))
        .and_then(|b| b.begin_wal())
    else {
        return Ok(None);
    };
    let mut from = first.to_owned();
    for (id, remote) in &primary.backups {
        if done.contains(id.as_str()) || locally_obsolete(server, remote, ctx.clock)? {
            continue;
        }
        if let Some(begin) = remote.begin_wal()
            && begin < from.as_str()
        {
            begin.clone_into(&mut from);
        }
    }
    Ok(Some(from))
}

/// How WALs from the primary are checked.
struct WalSource<'a> {
    server: &'a str,
    expected: &'a WalExpectations,
    codec: Option<&'a barman_wal::Codec>,
}

impl WalSource<'_> {
    fn bad(&self, entry: &XlogEntry, why: &str) -> Error {
        Error::Sync {
            server: self.server.to_owned(),
            message: format!("WAL {} from the primary: {why}", entry.name),
        }
    }

    /// Copies one WAL into its place (see the module's doc).
    fn copy(
        &self,
        session: &mut dyn Source,
        layout: &barman_catalog::ServerLayout,
        wal: &WalFileName,
        entry: &XlogEntry,
    ) -> Result<()> {
        let rel = match wal.archive_subdir() {
            Some(hash) => format!("{WALS_ROOT}/{hash}/{wal}"),
            None => format!("{WALS_ROOT}/{wal}"),
        };
        let rel = RelPath::new(rel)?;
        let dest = layout.wal_path(wal);
        let dir = parent(&dest).to_path_buf();
        if !dir.is_dir() {
            create_dir_secure(&dir)?;
            barman_catalog::fs::fsync_dir(layout.wals_directory())?;
        }
        // Removed when dropped (any error below) unless installed.
        let mut tmp = create_temp(&dir.join(&entry.name))?;
        let received = session.read(&rel, &mut |chunk| {
            tmp.write_all(chunk)
                .map_err(|e| barman_copy::Error::io(tmp.path(), e))
        })?;
        if received != entry.size {
            return Err(self.bad(
                entry,
                &format!(
                    "{received} bytes received, the primary's xlog.db says {}",
                    entry.size
                ),
            ));
        }
        // The primary's mtime, as rsync --times keeps it.
        let time = entry.time.value();
        if time.is_finite() && time > 0.0 {
            let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(time);
            let _ = tmp.file().set_modified(mtime);
        }
        tmp.sync()?;
        if entry.encryption.is_none() {
            let stored =
                detect_compression(tmp.path(), self.codec)?.map(barman_wal::Compression::name);
            if stored != entry.compression.as_deref() {
                return Err(self.bad(
                    entry,
                    &format!(
                        "stored as {}, the primary's xlog.db says {}",
                        stored.unwrap_or("None"),
                        entry.compression.as_deref().unwrap_or("None")
                    ),
                ));
            }
            match inspect(tmp.path(), wal, self.expected, self.codec) {
                Ok(_) => {}
                Err(InspectError::Invalid(why)) => return Err(self.bad(entry, &why)),
                Err(InspectError::Io(e)) => return Err(e),
            }
        }
        if let NoReplace::Exists(tmp) = tmp.commit_no_replace()?
            && !same_content(tmp.path(), &dest, self.codec)?
        {
            return Err(self.bad(
                entry,
                &format!("{} already holds a different file", dest.display()),
            ));
        }
        Ok(())
    }
}

/// Appends `entry` to xlog.db under the xlogdb lock (after mending a
/// line an interrupted append left unterminated).
fn append(
    global: &GlobalConfig,
    server: &ServerConfig,
    xlogdb: &XlogDb,
    entry: &XlogEntry,
) -> Result<()> {
    let _lock = acquire_blocking(
        &global.barman_lock_directory,
        &LockKind::XlogDb(server.name.clone()),
    )?;
    xlogdb.repair_tail()?;
    xlogdb.append(entry).map_err(crate::Error::from)
}
