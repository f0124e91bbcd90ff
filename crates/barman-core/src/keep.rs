//! `barman keep`: keep annotations that exempt a backup from retention
//! (BARMAN-BEHAVIOUR.md §1.4, §6).

use barman_retention::KeepTarget;

use crate::{Error, Result};
use barman_catalog::{BackupId, BackupStatus, Catalog, read_keep, remove_keep, write_keep};

/// Adds a keep annotation: only a DONE, non-incremental backup can be kept
/// (anything else is refused with nothing changed). An existing annotation
/// is replaced.
pub fn keep(catalog: &Catalog, id: &BackupId, target: KeepTarget) -> Result<()> {
    let info = catalog.backup(id)?;
    let status = info.status()?;
    if status != BackupStatus::Done {
        return Err(Error::KeepRefused(format!(
            "Cannot add keep to backup {id} because it has status {status}. \
             Only backups with status DONE can be kept."
        )));
    }
    if info.is_incremental() {
        return Err(Error::KeepRefused(format!(
            "Unable to execute the keep command on backup {id}: is an incremental backup. \
             Only full backups are eligible for the use of the keep command."
        )));
    }
    write_keep(catalog.layout(), id, target).map_err(crate::Error::from)
}

/// Removes the keep annotation (`--release`); releasing a backup that has
/// none is not an error. Returns whether one existed.
pub fn release(catalog: &Catalog, id: &BackupId) -> Result<bool> {
    catalog.backup(id)?;
    remove_keep(catalog.layout(), id).map_err(crate::Error::from)
}

/// The keep annotation (`--status`): `full`, `standalone`, or `None`
/// (Barman prints `nokeep`).
pub fn status(catalog: &Catalog, id: &BackupId) -> Result<Option<KeepTarget>> {
    catalog.backup(id)?;
    read_keep(catalog.layout(), id).map_err(crate::Error::from)
}
