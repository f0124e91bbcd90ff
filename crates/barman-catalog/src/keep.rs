//! Keep annotations: `meta/<id>-keep` (legacy `base/<id>/annotations/keep`).

use super::{BackupId, ServerLayout};
use crate::fs::{FILE_MODE, create_dir_secure, read_optional, remove_if_exists, write_atomic};
use crate::{Error, Result};

/// What a kept backup must be restorable to; shared with the retention evaluator.
pub use barman_retention::KeepTarget;

/// Reads the keep mark of `id` (new location first, then legacy).
pub fn read_keep(layout: &ServerLayout, id: &BackupId) -> Result<Option<KeepTarget>> {
    for path in [layout.keep_path(id), layout.legacy_keep_path(id)] {
        if let Some(text) = read_optional(&path)? {
            return text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::CatalogSyntax {
                    path,
                    line: 1,
                    message: format!(
                        "invalid keep target `{}` (expected `full` or `standalone`)",
                        text.trim()
                    ),
                });
        }
    }
    Ok(None)
}

/// Writes `meta/<id>-keep` (no trailing newline, like Barman), atomically.
pub fn write_keep(layout: &ServerLayout, id: &BackupId, target: KeepTarget) -> Result<()> {
    create_dir_secure(layout.meta_directory())?;
    write_atomic(&layout.keep_path(id), target.as_str().as_bytes(), FILE_MODE)
}

/// Removes the keep mark from both locations; true if one existed.
pub fn remove_keep(layout: &ServerLayout, id: &BackupId) -> Result<bool> {
    let new = remove_if_exists(&layout.keep_path(id))?;
    let legacy = remove_if_exists(&layout.legacy_keep_path(id))?;
    Ok(new || legacy)
}
