//! `barman backup --incremental PARENT` (PostgreSQL 17+, `backup_method =
//! postgres`): the parent's resolution with Barman's shortcuts, Barman's
//! checks and messages, and the catalog links between parent and child.
//!
//! Barman's checks (`BackupManager._validate_incremental_backup_configs`)
//! come first with its words; then, stricter than Barman (which leaves it to
//! `pg_basebackup` to fail), the parent must be a `postgres`-method backup,
//! WAITING_FOR_WALS or DONE, with its `backup_manifest`: a backup built on
//! anything else could not be restored.

use std::path::PathBuf;

use barman_catalog::{BackupId, BackupInfo, BackupStatus, Catalog, ServerLayout};
use barman_config::{BackupMethod, ServerConfig};

use super::pgside::ServerFacts;
use crate::shared::backups::by_id_or_name;
use crate::{Error, Result};

/// The file of a backup PostgreSQL's `UPLOAD_MANIFEST` is given.
pub const BACKUP_MANIFEST: &str = "data/backup_manifest";

/// An incremental backup's parent, checked.
#[derive(Debug, Clone)]
pub struct Parent {
    /// The parent's metadata.
    pub info: BackupInfo,
    /// Its `backup_manifest`, uploaded before `BASE_BACKUP ... INCREMENTAL`.
    pub manifest: PathBuf,
}

fn refused(message: impl Into<String>) -> Error {
    Error::IncrementalRefused(message.into())
}

fn usable(b: &BackupInfo) -> bool {
    b.status()
        .is_ok_and(|s| matches!(s, BackupStatus::Done | BackupStatus::WaitingForWals))
}

/// Barman's `is_full`: neither incremental nor a snapshot (rsync counts).
fn is_full(b: &BackupInfo) -> bool {
    !matches!(b.backup_type(), "incremental" | "snapshot")
}

/// Resolves `--incremental`'s argument as Barman does
/// (`utils:get_backup_id_using_shortcut`): `latest`/`last` and
/// `oldest`/`first` among WAITING_FOR_WALS and DONE backups of any type,
/// `latest-full`/`last-full` the newest such full backup, `last-failed`,
/// an id (any status) or a backup name.
pub fn resolve_parent(catalog: &Catalog, text: &str) -> Result<BackupInfo> {
    let backups = catalog.backups()?;
    let found = match text {
        "latest" | "last" => backups.iter().rev().find(|b| usable(b)),
        "oldest" | "first" => backups.iter().find(|b| usable(b)),
        "latest-full" | "last-full" => backups.iter().rev().find(|b| usable(b) && is_full(b)),
        "last-failed" => backups
            .iter()
            .rev()
            .find(|b| b.status().is_ok_and(|s| s == BackupStatus::Failed)),
        // Barman's words for an ambiguous name too.
        _ => by_id_or_name(catalog, &backups, text).map_err(|e| match e {
            Error::BackupRefused(message) => refused(message),
            other => other,
        })?,
    };
    found.cloned().ok_or_else(|| {
        refused(format!(
            "Unknown backup '{text}' for server '{}'",
            catalog.server_name()
        ))
    })
}

/// The checks of an incremental backup that need no PostgreSQL session:
/// the backup method.
pub fn check_method(server: &ServerConfig) -> Result<()> {
    if server.backup_method != BackupMethod::Postgres {
        return Err(refused(
            "Backup using the `--incremental` flag is available only for 'backup_method = postgres'. \
             Check Barman's documentation for more help on this topic.",
        ));
    }
    Ok(())
}

/// Barman's checks against the live server and the parent, then ours.
pub fn check(layout: &ServerLayout, facts: &ServerFacts, parent: BackupInfo) -> Result<Parent> {
    if facts.version < 170_000 {
        return Err(refused(
            "Postgres version 17 or greater is required for incremental backups using the Postgres backup method",
        ));
    }
    if facts.summarize_wal.as_deref() != Some("on") {
        return Err(refused(
            "'summarize_wal' option has to be enabled in the Postgres server to perform an incremental backup using the Postgres backup method",
        ));
    }
    let id = parent.backup_id().clone();
    if parent.summarize_wal() != Some("on") {
        return Err(refused(format!(
            "Backup ID {id} is not eligible as a parent for an incremental backup because WAL summaries were not enabled when that backup was taken."
        )));
    }
    // Stricter than Barman: a chain must be restorable.
    let mode = parent.mode().unwrap_or("");
    if mode != "postgres" {
        return Err(refused(format!(
            "Backup ID {id} is not eligible as a parent for an incremental backup: it was taken with mode `{mode}`, not `postgres`"
        )));
    }
    if !usable(&parent) {
        let status = parent
            .status()
            .map_or_else(|_| "unknown".to_owned(), |s| s.to_string());
        return Err(refused(format!(
            "Backup ID {id} is not eligible as a parent for an incremental backup: its status is {status}, not DONE or WAITING_FOR_WALS"
        )));
    }
    let manifest = layout.backup_dir(&id).join(BACKUP_MANIFEST);
    if !manifest.is_file() {
        return Err(refused(format!(
            "Backup ID {id} is not eligible as a parent for an incremental backup: {} is missing",
            manifest.display()
        )));
    }
    Ok(Parent {
        info: parent,
        manifest,
    })
}

/// Adds `child` to the parent's `children_backup_ids` (once), durably.
/// Done as soon as the child exists, so that a child that later fails is
/// still in its parent's tree, as Barman leaves it.
pub fn link_child(
    layout: &ServerLayout,
    catalog: &Catalog,
    parent: &BackupId,
    child: &BackupId,
) -> Result<()> {
    let mut info = catalog.backup(parent)?;
    let mut children = info.children_backup_ids()?.unwrap_or_default();
    if !children.contains(child) {
        children.push(child.clone());
        info.set_children_backup_ids(&children);
        info.write(layout)?;
    }
    Ok(())
}
