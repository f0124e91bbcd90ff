//! The WAL archive in a bucket: `barman-cloud-wal-archive` (one file per
//! call, compressed as it streams), `barman-cloud-wal-restore` (the
//! requested file, decompressed by its extension, and up to N−1 following
//! ones prefetched into a spool directory) and the emptiness check of
//! `barman-cloud-check-wal-archive` (BARMAN-CLOUD.md §4).
//!
//! Where barman-rs does better than barman-cloud: the upload streams (a
//! WAL is never held whole in memory; larger ones go as a multipart
//! upload), the restored file and the spooled ones are written under a
//! temporary name, fsynced and renamed (a crash never leaves a truncated
//! WAL where PostgreSQL or a later call would take it), and a complete
//! segment is preferred over its `.partial` whatever their extensions.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use barman_fs::TempFile;
use barman_wal::{Compression, CompressionLevel, WalFileName};

use crate::layout::{Layout, WAL_EXTENSIONS};
use crate::pipe;
use crate::store::{Bucket, Listed};
use crate::{Error, Result};

/// The object extension of a compression (`gz`, `zst`, ...).
pub fn extension(compression: Compression) -> Option<&'static str> {
    WAL_EXTENSIONS
        .iter()
        .find(|(_, name)| *name == compression.name())
        .map(|(ext, _)| *ext)
}

/// The compression an object extension means.
pub(crate) fn compression_of(extension: &str) -> Option<Compression> {
    let (_, name) = WAL_EXTENSIONS.iter().find(|(e, _)| *e == extension)?;
    name.parse().ok()
}

/// What `barman-cloud-wal-archive` does with a file.
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// The compression (`-z`, `-j`, `--xz`, `--snappy`, `--zstd`, `--lz4`).
    pub compression: Option<Compression>,
    /// `--compression-level`.
    pub level: CompressionLevel,
    /// `--tags` / `--tag`.
    pub tags: Vec<(String, String)>,
    /// `--history-tags` / `--history-tag`: used instead of `tags` for
    /// history files when given.
    pub history_tags: Option<Vec<(String, String)>>,
}

/// What was archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The object's key.
    pub key: String,
    /// Bytes read from the file.
    pub bytes_in: u64,
    /// Bytes uploaded.
    pub bytes_out: u64,
}

/// The WAL file name of `path` (its base name).
///
/// # Errors
/// [`Error::WalName`] when the base name is not a WAL file name.
pub fn wal_name_of(path: &Path) -> Result<WalFileName> {
    let base = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::WalName(path.display().to_string()))?;
    base.parse().map_err(|_| Error::WalName(base.to_owned()))
}

/// Uploads the WAL file at `wal_path` into the archive of `layout`.
///
/// # Errors
/// [`Error::WalName`] for a file whose name is not a WAL name (nothing is
/// read or sent); [`Error::Read`] when the file cannot be read;
/// [`Error::Store`] / [`Error::NoSuchBucket`] when the upload fails.
pub fn archive_wal(
    bucket: &Bucket,
    layout: &Layout,
    wal_path: &Path,
    options: &ArchiveOptions,
) -> Result<Archived> {
    let name = wal_name_of(wal_path)?;
    let key = layout.wal_key(&name, options.compression.and_then(extension));
    let tags = match (&options.history_tags, name.is_history()) {
        (Some(history), true) => history,
        _ => &options.tags,
    };
    let file = File::open(wal_path).map_err(|e| Error::Read(wal_path.display().to_string(), e))?;
    let Some(compression) = options.compression else {
        let bytes = bucket.put(&key, &mut io::BufReader::new(file), tags)?;
        return Ok(Archived {
            key,
            bytes_in: bytes,
            bytes_out: bytes,
        });
    };
    let level = options.level;
    let (writer, mut reader) = pipe::pipe();
    std::thread::scope(|scope| {
        let compressing = scope.spawn(move || -> io::Result<u64> {
            let errors = writer.clone_sender();
            let result = (|| -> io::Result<u64> {
                let mut encoder = io::BufWriter::with_capacity(
                    1 << 20,
                    compression
                        .writer(writer, level)
                        .map_err(io::Error::other)?,
                );
                let read = io::copy(&mut io::BufReader::new(file), &mut encoder)?;
                let encoder = encoder
                    .into_inner()
                    .map_err(io::IntoInnerError::into_error)?;
                encoder.finish()?;
                Ok(read)
            })();
            if let Err(e) = &result {
                errors.fail(io::Error::new(e.kind(), e.to_string()));
            }
            result
        });
        let uploaded = bucket.put(&key, &mut reader, tags);
        drop(reader);
        let read = compressing
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the compressing thread panicked")));
        let bytes_out = uploaded?;
        let bytes_in = read.map_err(|e| Error::Read(wal_path.display().to_string(), e))?;
        Ok(Archived {
            key: key.clone(),
            bytes_in,
            bytes_out,
        })
    })
}

/// What `barman-cloud-wal-restore` does.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// `-p/--parallel`: files fetched per call, the requested one included
    /// (0 or 1: only the requested one).
    pub parallel: usize,
    /// `--spool-dir`.
    pub spool_dir: PathBuf,
    /// `--no-partial`: never restore a `.partial` file.
    pub no_partial: bool,
}

/// Where the requested WAL came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Moved from the spool directory, where an earlier call put it.
    FromSpool,
    /// Downloaded from `key`; `prefetched` more files went to the spool.
    Downloaded {
        /// The object restored.
        key: String,
        /// The files fetched into the spool directory.
        prefetched: Vec<String>,
    },
}

/// One object chosen for a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chosen {
    key: String,
    name: WalFileName,
    extension: Option<&'static str>,
}

/// The objects a restore of `wanted` takes from `listing` (sorted by key):
/// the requested file first (its complete segment preferred over its
/// `.partial`, whatever their extensions), then up to `parallel − 1`
/// following WAL files (never `.backup` files, no `.partial` with
/// `no_partial`). `None` when the requested file is not there.
fn choose(
    listing: &[Listed],
    wanted: &WalFileName,
    parallel: usize,
    no_partial: bool,
) -> Option<Vec<Chosen>> {
    let mut requested: Option<Chosen> = None;
    let mut following = Vec::new();
    let partial_of_wanted = wanted
        .segment()
        .filter(|_| wanted.is_segment())
        .map(|s| format!("{s}.partial"));
    for listed in listing {
        let Some((name, extension)) = Layout::parse_wal_key(&listed.key) else {
            tracing::warn!("ignoring object `{}`: not a WAL file", listed.key);
            continue;
        };
        let chosen = Chosen {
            key: listed.key.clone(),
            name,
            extension,
        };
        if name == *wanted {
            requested = Some(chosen);
        } else if partial_of_wanted.as_deref() == Some(name.to_string().as_str()) {
            if !no_partial && requested.is_none() {
                requested = Some(chosen);
            }
        } else if name > *wanted
            && !name.is_backup_label()
            && !(no_partial && name.is_partial())
            && following.len() + 1 < parallel.max(1)
        {
            following.push(chosen);
        }
    }
    let requested = requested?;
    let mut chosen = vec![requested];
    chosen.extend(following);
    Some(chosen)
}

/// Downloads `chosen` into `target` (through a temporary file, fsynced and
/// renamed), decompressing by its extension.
fn download(bucket: &Bucket, chosen: &Chosen, target: &Path) -> Result<()> {
    let mut temp = TempFile::create(target, 0o600)?;
    match chosen.extension.and_then(compression_of) {
        None => {
            bucket.get(&chosen.key, temp.file_mut())?;
        }
        Some(compression) => {
            let (mut writer, mut reader) = pipe::pipe();
            let file = temp.file_mut();
            std::thread::scope(|scope| {
                let writing = scope.spawn(move || -> io::Result<u64> {
                    let mut decoder = compression.reader(&mut reader).map_err(io::Error::other)?;
                    io::copy(&mut decoder, file)
                });
                let got = bucket.get(&chosen.key, &mut writer);
                drop(writer);
                let written = writing
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the decompressing thread panicked")));
                got?;
                written
                    .map(|_| ())
                    .map_err(|e| Error::Write(chosen.key.clone(), e))
            })?;
        }
    }
    temp.commit()?;
    Ok(())
}

/// Restores WAL file `wal_name` of `layout` into `dest`.
///
/// # Errors
/// [`Error::WalName`] for a name that is not a WAL name;
/// [`Error::NotFound`] naming the WAL when the archive does not hold it;
/// [`Error::Store`], [`Error::NoSuchBucket`], [`Error::Io`] for failures
/// (nothing is left at `dest` then). A failed prefetch is only logged.
pub fn restore_wal(
    bucket: &Bucket,
    layout: &Layout,
    wal_name: &str,
    dest: &Path,
    options: &RestoreOptions,
) -> Result<Restored> {
    let spooled = options.spool_dir.join(wal_name);
    if spooled.is_file() {
        barman_fs::rename_durable(&spooled, dest)?;
        return Ok(Restored::FromSpool);
    }
    let wanted: WalFileName = wal_name
        .parse()
        .map_err(|_| Error::WalName(wal_name.to_owned()))?;
    let parallel = if wanted.is_history() {
        1
    } else {
        options.parallel
    };
    let listing = bucket.list(&layout.wal_dir_prefix(&wanted))?;
    let listing: Vec<Listed> = if wanted.is_history() {
        // History files sit at the top of wals/, beside the hash directories.
        listing
            .into_iter()
            .filter(|l| !l.key[layout.wals_prefix().len().min(l.key.len())..].contains('/'))
            .collect()
    } else {
        listing
    };
    let chosen = choose(&listing, &wanted, parallel, options.no_partial).ok_or_else(|| {
        Error::NotFound(format!(
            "WAL file {wal_name} for server {}",
            layout.server()
        ))
    })?;
    let (first, rest) = chosen
        .split_first()
        .expect("choose returns the requested file first");
    download(bucket, first, dest)?;
    let mut prefetched = Vec::new();
    if !rest.is_empty() {
        barman_fs::create_dir_secure(&options.spool_dir)?;
        let results: Vec<(String, Result<()>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .iter()
                .map(|c| {
                    let name = c
                        .name
                        .segment()
                        .map_or_else(|| c.name.to_string(), |s| s.to_string());
                    let target = options.spool_dir.join(&name);
                    (name, scope.spawn(move || download(bucket, c, &target)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(name, h)| {
                    let result = h.join().unwrap_or_else(|_| {
                        Err(Error::Runtime("a prefetch thread panicked".into()))
                    });
                    (name, result)
                })
                .collect()
        });
        for (name, result) in results {
            match result {
                Ok(()) => prefetched.push(name),
                Err(e) => tracing::warn!("prefetch of {name} failed: {e}"),
            }
        }
    }
    Ok(Restored::Downloaded {
        key: first.key.clone(),
        prefetched,
    })
}

/// The WAL files in the archive of `layout` (history files included), as
/// `barman-cloud-check-wal-archive` sees them.
///
/// # Errors
/// [`Error::Store`] / [`Error::NoSuchBucket`] when the listing fails.
pub fn archived_wals(bucket: &Bucket, layout: &Layout) -> Result<Vec<WalFileName>> {
    let mut names: Vec<WalFileName> = bucket
        .list(&layout.wals_prefix())?
        .iter()
        .filter_map(|l| Layout::parse_wal_key(&l.key).map(|(n, _)| n))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Whether an archive holding `names` may receive the WALs of a new
/// cluster starting on `timeline` (`None`: the archive must be empty):
/// the names that conflict (timeline ≥ `timeline`, or any name).
pub fn conflicting_wals(names: &[WalFileName], timeline: Option<u32>) -> Vec<WalFileName> {
    names
        .iter()
        .filter(|n| timeline.is_none_or(|t| n.timeline().get() >= t))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(keys: &[&str]) -> Vec<Listed> {
        let mut v: Vec<Listed> = keys
            .iter()
            .map(|k| Listed {
                key: format!("p/s/wals/0000000100000000/{k}"),
                size: 1,
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    fn names(chosen: &[Chosen]) -> Vec<String> {
        chosen
            .iter()
            .map(|c| c.key.rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    fn wal(n: &str) -> WalFileName {
        n.parse().unwrap()
    }

    #[test]
    fn the_requested_wal_then_the_following_ones() {
        let l = listed(&[
            "000000010000000000000003.gz",
            "000000010000000000000004.gz",
            "000000010000000000000004.00000028.backup.gz",
            "000000010000000000000005.zst",
            "000000010000000000000006",
            "000000010000000000000007.lz4",
        ]);
        let c = choose(&l, &wal("000000010000000000000004"), 3, false).unwrap();
        assert_eq!(
            names(&c),
            [
                "000000010000000000000004.gz",
                "000000010000000000000005.zst",
                "000000010000000000000006"
            ]
        );
        let c = choose(&l, &wal("000000010000000000000004"), 0, false).unwrap();
        assert_eq!(names(&c), ["000000010000000000000004.gz"]);
        assert!(choose(&l, &wal("000000010000000000000008"), 3, false).is_none());
    }

    #[test]
    fn a_complete_segment_wins_over_its_partial_whatever_the_extensions() {
        let l = listed(&[
            "000000010000000000000004.partial.lz4",
            "000000010000000000000004.snappy",
        ]);
        let c = choose(&l, &wal("000000010000000000000004"), 1, false).unwrap();
        assert_eq!(names(&c), ["000000010000000000000004.snappy"]);
        let only_partial = listed(&["000000010000000000000004.partial.lz4"]);
        let c = choose(&only_partial, &wal("000000010000000000000004"), 1, false).unwrap();
        assert_eq!(names(&c), ["000000010000000000000004.partial.lz4"]);
        assert!(choose(&only_partial, &wal("000000010000000000000004"), 1, true).is_none());
    }

    #[test]
    fn other_objects_are_never_taken() {
        let l = listed(&[
            "000000010000000000000004",
            "notes.txt",
            "000000010000000000000005.tmp",
        ]);
        let c = choose(&l, &wal("000000010000000000000004"), 4, false).unwrap();
        assert_eq!(names(&c), ["000000010000000000000004"]);
    }

    #[test]
    fn timelines_conflict_from_the_given_one() {
        let names = [wal("00000002.history"), wal("000000010000000000000001")];
        assert_eq!(conflicting_wals(&names, None).len(), 2);
        assert_eq!(conflicting_wals(&names, Some(2)), [wal("00000002.history")]);
        assert!(conflicting_wals(&names, Some(3)).is_empty());
    }

    #[test]
    fn extensions_map_to_compressions_and_back() {
        for c in Compression::BUILTIN {
            let ext = extension(c).unwrap();
            assert_eq!(compression_of(ext), Some(c));
        }
        assert_eq!(extension(Compression::Custom), None);
    }
}
