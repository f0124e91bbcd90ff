//! `list-files`: the absolute paths of what a backup is made of
//! (BARMAN-BEHAVIOUR.md §1.4, §4.1).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use barman_wal::{SegmentName, WalFileName, WalSegmentSize};

use crate::shared::wal_stats::{neighbours, wals_until_next};
use crate::{Error, Result};
use barman_catalog::{BackupInfo, Catalog};

/// What `list-files --target` lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FilesTarget {
    /// The backup's files plus the WALs from `begin_wal` to `end_wal`
    /// (what a restore to the end of the backup needs).
    #[default]
    Standalone,
    /// The backup's files (everything under `base/<id>/`).
    Data,
    /// The WALs from `begin_wal` to the next backup's `end_wal` (or the end
    /// of the archive), and every history file.
    Wal,
    /// `Data` then `Wal`.
    Full,
}

impl FilesTarget {
    /// The option value (`standalone`, `data`, `wal`, `full`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Data => "data",
            Self::Wal => "wal",
            Self::Full => "full",
        }
    }
}

impl fmt::Display for FilesTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FilesTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "standalone" => Self::Standalone,
            "data" => Self::Data,
            "wal" => Self::Wal,
            "full" => Self::Full,
            _ => {
                return Err(Error::Catalog(barman_catalog::Error::InvalidCatalogValue {
                    what: "list-files target",
                    value: s.to_owned(),
                    reason: "expected standalone, data, wal or full".into(),
                }));
            }
        })
    }
}

/// Every regular file (and link to one) under `dir`, depth first, each
/// directory's files sorted by name before its subdirectories (sorted too).
/// Links to directories are not followed, as Python's `os.walk` does not.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("cannot stat", &path, e))?;
        if kind.is_dir() {
            dirs.push(path);
        } else if kind.is_symlink() && path.is_dir() {
            // os.walk lists a link to a directory among the directories
            // and does not descend into it.
        } else {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    out.extend(files);
    for d in dirs {
        walk(&d, out)?;
    }
    Ok(())
}

/// The files `list-files --target target` prints for `backup`, one of the
/// catalog's backups: absolute paths (WAL paths whether or not the file is
/// in the archive, as Barman prints them).
pub fn list_files(
    catalog: &Catalog,
    backup: &BackupInfo,
    target: FilesTarget,
) -> Result<Vec<PathBuf>> {
    let layout = catalog.layout();
    let mut out = Vec::new();
    if matches!(
        target,
        FilesTarget::Data | FilesTarget::Standalone | FilesTarget::Full
    ) {
        walk(&layout.backup_dir(backup.backup_id()), &mut out)?;
    }
    if target == FilesTarget::Standalone
        && let (Some(begin), Some(end)) = (backup.begin_wal(), backup.end_wal())
    {
        let begin: SegmentName = begin.parse()?;
        let end: SegmentName = end.parse()?;
        let size = WalSegmentSize::new(backup.xlog_segment_size()?)?;
        for segment in SegmentName::range(&begin, &end, size) {
            out.push(layout.wal_path(&WalFileName::Segment(segment)));
        }
    }
    if matches!(target, FilesTarget::Wal | FilesTarget::Full) {
        let backups = catalog.backups()?;
        let (_, next) = neighbours(&backups, backup.backup_id());
        let entries = catalog.xlogdb().read()?;
        for entry in wals_until_next(&entries, backup, next.and_then(BackupInfo::end_wal), true) {
            let name: WalFileName = entry.name.parse()?;
            out.push(layout.wal_path(&name));
        }
    }
    Ok(out)
}
