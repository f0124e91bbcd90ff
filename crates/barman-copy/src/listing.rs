//! Listing a tree with PostgreSQL's base-backup exclusions.
//!
//! The walk is built on the `ignore` crate's [`WalkBuilder`] with every
//! standard filter turned off (no `.gitignore`, no hidden-file filtering, no
//! parent ignore files) and symbolic links not followed. [`Exclusions`]
//! decide, per entry, whether it is copied, kept as an empty directory or
//! left out; excluded directories are not descended into.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::WalkBuilder;

use crate::entry::{Entry, EntryKind, Mtime, RelPath};
use crate::exclusion::{Exclusion, Exclusions};
use crate::{Error, Result};

/// Lists the tree rooted at `root` (named `tree`: entry paths are
/// `tree/...`, the root itself is the entry `tree`) without following
/// symbolic links, applying `exclusions` to paths relative to `root`.
/// Directories whose contents are excluded are kept (empty). Entries that
/// vanish while listing are skipped. Sorted by path.
///
/// A symbolic link is listed as [`EntryKind::Symlink`], except when the
/// exclusions keep only the (empty) directory it points to (a symlinked
/// `pg_wal`): it is then listed as an empty [`EntryKind::Dir`], as
/// PostgreSQL's base backup does. Unless `exclusions` has no rule at all
/// ([`Exclusions::none`]), a relation fork whose unlogged relation's `_init`
/// fork exists is left out ([`Exclusions::unlogged_init_fork`]). Special
/// files (sockets, FIFOs, devices) are never listed. Temporary files of
/// barman-rs ([`barman_fs::is_temp_name`]) are left out by the rule both
/// backup sets start with ([`Matcher::BarmanTemp`](crate::Matcher::BarmanTemp));
/// without exclusions they are listed (a delta restore removes stale ones).
///
/// # Errors
///
/// [`Error::UnsafePath`] for a tree name that is not one path component or
/// a name that is not valid UTF-8; [`Error::Io`] when the root cannot be
/// read or is not a directory, or on any I/O error other than a vanished
/// entry.
pub fn list_tree(root: &Path, tree: &str, exclusions: &Exclusions) -> Result<Vec<Entry>> {
    let tree_path = RelPath::new(tree)?;
    if tree.contains('/') {
        return Err(Error::UnsafePath {
            path: tree.to_owned(),
            reason: "a tree name must be one path component",
        });
    }
    // The root itself is followed if it is a link (a tablespace's location).
    let root_meta = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !root_meta.is_dir() {
        return Err(Error::io(
            root,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut entries = vec![entry_of(tree_path.clone(), EntryKind::Dir, &root_meta)];

    let filter_root = root.to_path_buf();
    let filter_rules = Arc::new(exclusions.clone());
    let walk = WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .same_file_system(false)
        .filter_entry(move |entry| {
            let Ok(rel) = entry.path().strip_prefix(&filter_root) else {
                return true;
            };
            if entry.depth() == 0 || rel.as_os_str().is_empty() {
                return true;
            }
            // A symlink may point to a directory: keep it for now, the
            // listing decides once it knows what the link points to.
            let is_dir = entry
                .file_type()
                .is_some_and(|t| t.is_dir() || t.is_symlink());
            filter_rules.is_excluded(rel, is_dir) != Exclusion::Exclude
        })
        .build();

    for result in walk {
        let dir_entry = match result {
            Ok(entry) => entry,
            Err(err) => {
                let path = error_path(&err).unwrap_or_else(|| root.to_path_buf());
                match err.into_io_error() {
                    Some(e) if e.kind() == io::ErrorKind::NotFound => {
                        tracing::debug!(path = %path.display(), "vanished while listing");
                        continue;
                    }
                    Some(e) => return Err(Error::io(path, e)),
                    None => return Err(Error::io(path, io::Error::other("directory walk failed"))),
                }
            }
        };
        if dir_entry.depth() == 0 {
            continue;
        }
        if let Some(entry) = list_one(root, &tree_path, dir_entry.path(), exclusions)? {
            entries.push(entry);
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The entry for `path` (below `root`), `None` when it is left out or vanished.
fn list_one(
    root: &Path,
    tree: &RelPath,
    path: &Path,
    exclusions: &Exclusions,
) -> Result<Option<Entry>> {
    let rel = path.strip_prefix(root).map_err(|_| Error::UnsafePath {
        path: path.to_string_lossy().into_owned(),
        reason: "listed entry outside the listed root",
    })?;
    let Some(rel_text) = rel.to_str() else {
        return Err(Error::UnsafePath {
            path: path.to_string_lossy().into_owned(),
            reason: "file name is not valid UTF-8",
        });
    };
    let Some(meta) = found(path, fs::symlink_metadata(path))? else {
        return Ok(None);
    };
    let rel_path = RelPath::new(format!("{tree}/{rel_text}"))?;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        // Included or kept empty: either way the directory is listed (the
        // walk does not descend into an emptied one's excluded contents).
        return Ok(Some(entry_of(rel_path, EntryKind::Dir, &meta)));
    }
    if file_type.is_symlink() {
        return list_symlink(rel, rel_path, path, &meta, exclusions);
    }
    if !file_type.is_file() {
        tracing::warn!(path = %path.display(), "skipping special file");
        return Ok(None);
    }
    // Unlogged relations are part of PostgreSQL's rules: `Exclusions::none()`
    // lists everything.
    if !exclusions.rules().is_empty()
        && let Some(init) = Exclusions::unlogged_init_fork(rel).map(|init| root.join(init))
        && found(&init, fs::symlink_metadata(&init))?.is_some()
    {
        tracing::debug!(path = %path.display(), "skipping fork of an unlogged relation");
        return Ok(None);
    }
    Ok(Some(entry_of(rel_path, EntryKind::File, &meta)))
}

/// A symbolic link: kept as a link, or as an empty directory when the
/// exclusions keep only the directory it points to.
fn list_symlink(
    rel: &Path,
    rel_path: RelPath,
    path: &Path,
    meta: &Metadata,
    exclusions: &Exclusions,
) -> Result<Option<Entry>> {
    // A dangling link is not a directory.
    let target_meta = found(path, fs::metadata(path)).unwrap_or(None);
    let is_dir = target_meta.as_ref().is_some_and(Metadata::is_dir);
    match (exclusions.is_excluded(rel, is_dir), target_meta) {
        (Exclusion::Exclude, _) => Ok(None),
        (Exclusion::ExcludeContents, Some(target_meta)) => {
            Ok(Some(entry_of(rel_path, EntryKind::Dir, &target_meta)))
        }
        (Exclusion::Include | Exclusion::ExcludeContents, _) => {
            let target = match fs::read_link(path) {
                Ok(target) => target,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    tracing::debug!(path = %path.display(), "vanished while listing");
                    return Ok(None);
                }
                Err(e) => return Err(Error::io(path, e)),
            };
            let Some(target) = target.to_str() else {
                return Err(Error::UnsafePath {
                    path: path.to_string_lossy().into_owned(),
                    reason: "symbolic link target is not valid UTF-8",
                });
            };
            let kind = EntryKind::Symlink {
                target: target.to_owned(),
            };
            Ok(Some(entry_of(rel_path, kind, meta)))
        }
    }
}

/// The metadata `stat` read for `path`; `None` if it vanished.
fn found(path: &Path, stat: io::Result<Metadata>) -> Result<Option<Metadata>> {
    match stat {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::debug!(path = %path.display(), "vanished while listing");
            Ok(None)
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// An entry of `kind` with the size, mtime and mode of `meta`.
fn entry_of(path: RelPath, kind: EntryKind, meta: &Metadata) -> Entry {
    let size = if matches!(kind, EntryKind::File) {
        meta.len()
    } else {
        0
    };
    Entry {
        path,
        kind,
        size,
        mtime: Mtime::of(meta),
        mode: meta.mode() & 0o7777,
    }
}

/// The path an `ignore` error is about, if it names one.
fn error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        ignore::Error::Partial(errs) => errs.iter().find_map(error_path),
        _ => None,
    }
}
