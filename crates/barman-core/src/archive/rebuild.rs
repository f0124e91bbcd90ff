//! `rebuild-xlogdb`: rewriting xlog.db from the files in `wals/`.

use std::path::Path;

use barman_wal::{Codec, WalFileName};

use super::inspect::detect_compression;
use super::store::{is_skipped_temp, mtime_secs};
use crate::{Error, Result, ServerLayout};
use barman_catalog::lock::{LockKind, acquire_blocking};
use barman_catalog::{XlogDb, XlogEntry};

/// Scans `wals/` (history files at the top, everything else in the hash
/// directories) and rewrites the server's xlog.db atomically, sorted by
/// name. Waits for the `archive-wal` and `xlogdb` locks so no archiver
/// appends meanwhile. Returns the entries written.
pub fn rebuild_xlogdb(
    layout: &ServerLayout,
    server: &str,
    lock_directory: &Path,
    codec: Option<&Codec>,
) -> Result<Vec<XlogEntry>> {
    let _archive = acquire_blocking(lock_directory, &LockKind::ArchiveWal(server.to_owned()))?;
    let _xlogdb = acquire_blocking(lock_directory, &LockKind::XlogDb(server.to_owned()))?;
    let mut entries = Vec::new();
    let wals = layout.wals_directory();
    for (name, path, is_dir) in list(wals)? {
        if is_dir {
            if name.len() != 16 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            for (file, fpath, sub_dir) in list(&path)? {
                if sub_dir {
                    continue;
                }
                if let Ok(w) = file.parse::<WalFileName>()
                    && !w.is_history()
                    && w.archive_subdir().as_deref() == Some(name.as_str())
                {
                    entries.push(entry_for(&w, &fpath, codec)?);
                }
            }
        } else if let Ok(w) = name.parse::<WalFileName>()
            && w.is_history()
        {
            entries.push(entry_for(&w, &path, codec)?);
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    XlogDb::new(layout.xlogdb_path(server)).rewrite(&entries)?;
    Ok(entries)
}

fn entry_for(name: &WalFileName, path: &Path, codec: Option<&Codec>) -> Result<XlogEntry> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot stat", path, e))?;
    let mut e = XlogEntry::new(name.to_string(), meta.len(), mtime_secs(&meta));
    e.compression = detect_compression(path, codec)?.map(|c| c.name().to_owned());
    Ok(e)
}

/// Sorted (name, path, is_dir) of a directory, temporaries excluded; empty
/// when the directory does not exist.
pub(crate) fn list(dir: &Path) -> Result<Vec<(String, std::path::PathBuf, bool)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    let mut v = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_skipped_temp(&name) {
            continue;
        }
        let is_dir = entry
            .file_type()
            .map_err(|e| Error::io("cannot stat", entry.path(), e))?
            .is_dir();
        v.push((name, entry.path(), is_dir));
    }
    v.sort();
    Ok(v)
}
