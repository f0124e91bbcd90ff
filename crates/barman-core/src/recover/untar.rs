//! Recovery of a tar-format backup (`compression` set in backup.info,
//! `none` included): each stored archive is decompressed and unpacked as
//! it streams into the destination session, locally or through the agent
//! of a remote recovery, without a staging copy (Barman 3.20 runs
//! `tar -x` into DEST, or into a staging directory then rsync).
//!
//! As Barman's `DecompressOperation`: the tablespaces first (`<oid>.<ext>`
//! into their destination, relocated or not), then the base
//! (`base.<ext>` into DEST) without `recovery.conf` and `tablespace_map`.
//! When our manifest has a blake3 for the stored archive (backups taken
//! by barman-rs), it is checked while the archive is read; a mismatch or a
//! damaged stream fails the recovery naming the archive, and what was
//! unpacked is removed again.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use barman_copy::hash::{FileHash, Hasher};
use barman_copy::{Destination, FileMeta, Manifest, Mtime, Progress, RelPath, RestoreReport};
use barman_wal::Compression;

use crate::{Error, Result};

/// One stored archive to unpack.
#[derive(Debug, Clone)]
pub(super) struct Archive {
    /// Its file in the backup directory (`data/base.tar.gz`).
    pub file: RelPath,
    /// The destination tree it goes to (`data` or a tablespace oid).
    pub tree: String,
    /// Its blake3 in our manifest, if any.
    pub blake3: Option<FileHash>,
}

/// The stream algorithm and file suffix of backup.info's `compression`.
pub(super) fn codec_of(compression: &str) -> Option<(Option<Compression>, &'static str)> {
    Some(match compression.to_ascii_lowercase().as_str() {
        "gzip" => (Some(Compression::Gzip), "tar.gz"),
        "lz4" => (Some(Compression::Lz4), "tar.lz4"),
        "zstd" => (Some(Compression::Zstd), "tar.zst"),
        "none" => (None, "tar"),
        _ => return None,
    })
}

/// The archives of a backup, tablespaces first then the base, with their
/// blake3 from `manifest`. A missing archive is an error.
pub(super) fn archives(
    manifest: &Manifest,
    backup_dir: &Path,
    extension: &str,
    tablespace_oids: &[u32],
) -> Result<Vec<Archive>> {
    let mut names: Vec<(String, String)> = tablespace_oids
        .iter()
        .map(|oid| (format!("{oid}.{extension}"), oid.to_string()))
        .collect();
    names.push((format!("base.{extension}"), "data".to_owned()));
    names
        .into_iter()
        .map(|(name, tree)| {
            let file = RelPath::new(format!("data/{name}"))?;
            let local = file.under(backup_dir);
            if !local.is_file() {
                return Err(Error::BackupRefused(format!(
                    "the backup's archive `{}` is missing",
                    local.display()
                )));
            }
            let blake3 = manifest.get(&file).and_then(|e| e.blake3);
            Ok(Archive { file, tree, blake3 })
        })
        .collect()
}

/// Unpacks `archives` (stored under `backup_dir`, compressed with
/// `compression`) into `session`, whose trees must be empty. On failure
/// what was unpacked is removed.
pub(super) fn unpack(
    session: &mut dyn Destination,
    backup_dir: &Path,
    compression: Option<Compression>,
    archives: &[Archive],
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<RestoreReport> {
    let started = Instant::now();
    for archive in archives {
        session.mkdir(&RelPath::new(archive.tree.clone())?, 0o700)?;
        let listed = session.list(&archive.tree)?;
        if let Some(other) = listed.iter().find(|e| e.path.parent().is_some()) {
            return Err(Error::Copy(barman_copy::Error::NotEmpty {
                tree: archive.tree.clone(),
                example: other.path.to_string(),
            }));
        }
    }
    let total: u64 = archives
        .iter()
        .filter_map(|a| std::fs::metadata(a.file.under(backup_dir)).ok())
        .map(|m| m.len())
        .sum();
    progress.start(0, total);
    let mut report = RestoreReport {
        workers: 1,
        ..RestoreReport::default()
    };
    let mut created = BTreeSet::new();
    for archive in archives {
        let local = archive.file.under(backup_dir);
        let outcome = unpack_one(
            session,
            &local,
            compression,
            archive,
            &mut created,
            &mut report,
            progress,
            cancel,
        );
        if let Err(e) = outcome {
            // Nothing stays installed from a damaged backup.
            for path in created.iter().rev() {
                if let Err(cleanup) = session.remove(path) {
                    tracing::warn!("cannot remove {path} after a failed recovery: {cleanup}");
                }
            }
            return Err(e);
        }
        progress.file_done(&archive.file);
    }
    report.wire_bytes = session.wire_bytes();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Unpacks one archive; its errors name the archive's file.
#[allow(clippy::too_many_arguments)]
fn unpack_one(
    session: &mut dyn Destination,
    local: &Path,
    compression: Option<Compression>,
    archive: &Archive,
    created: &mut BTreeSet<RelPath>,
    report: &mut RestoreReport,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<()> {
    let named = |e: io::Error| Error::Copy(barman_copy::Error::io(local, e));
    let file = std::fs::File::open(local).map_err(named)?;
    let mut raw = Hashed {
        inner: io::BufReader::with_capacity(1 << 20, file),
        hasher: Hasher::new(false),
        progress,
        cancel,
    };
    let base = archive.tree == "data";
    let walked = (|| -> std::result::Result<(), String> {
        let plain: Box<dyn Read + '_> = match compression {
            Some(c) => Box::new(c.reader(&mut raw).map_err(|e| e.to_string())?),
            None => Box::new(&mut raw),
        };
        let mut tar = tar::Archive::new(plain);
        for entry in tar.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = path.trim_start_matches("./").trim_end_matches('/');
            if path.is_empty() || path == "." {
                continue;
            }
            // As Barman's `tar --exclude recovery.conf --exclude tablespace_map`.
            if base && matches!(path, "recovery.conf" | "tablespace_map") {
                continue;
            }
            let rel = RelPath::new(format!("{}/{path}", archive.tree))
                .map_err(|e| format!("unsafe path `{path}`: {e}"))?;
            let top = path.split('/').next().unwrap_or(path);
            created.insert(
                RelPath::new(format!("{}/{top}", archive.tree)).map_err(|e| e.to_string())?,
            );
            let header = entry.header();
            let mode = header.mode().map_err(|e| e.to_string())? & 0o7777;
            let kind = header.entry_type();
            if kind.is_dir() {
                session
                    .mkdir(&rel, mode | 0o700)
                    .map_err(|e| e.to_string())?;
            } else if kind.is_file() || kind.is_contiguous() {
                let meta = FileMeta {
                    size: entry.size(),
                    mode,
                    mtime: Mtime {
                        secs: i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(0),
                        nanos: 0,
                    },
                };
                let size = meta.size;
                session
                    .write_file(&rel, meta, &mut entry)
                    .map_err(|e| e.to_string())?;
                report.files += 1;
                report.files_written += 1;
                report.bytes_total += size;
                report.bytes_written += size;
            } else if kind.is_symlink() {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .ok_or_else(|| format!("symlink `{path}` has no target"))?;
                session.symlink(&rel, &target).map_err(|e| e.to_string())?;
            } else {
                tracing::warn!(
                    "{}: skipping `{path}` (tar entry type {kind:?})",
                    local.display()
                );
            }
        }
        // The end of the compressed stream (its own checks: gzip CRC,
        // zstd/lz4 checksums), then the file's end.
        let mut rest = tar.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| e.to_string())?;
        Ok(())
    })();
    if let Err(e) = walked {
        return Err(named(io::Error::other(format!(
            "cannot unpack the backup's archive: {e}"
        ))));
    }
    io::copy(&mut raw, &mut io::sink()).map_err(named)?;
    let (actual, _) = raw.hasher.finish();
    match archive.blake3 {
        Some(expected) if expected != actual => Err(Error::Copy(barman_copy::Error::Checksum {
            path: local.display().to_string(),
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        })),
        Some(_) => Ok(()),
        None => {
            report.files_unverified += 1;
            Ok(())
        }
    }
}

/// Reads the stored archive, hashing it and counting progress.
struct Hashed<'p, R> {
    inner: R,
    hasher: Hasher,
    progress: &'p dyn Progress,
    cancel: &'p AtomicBool,
}

impl<R: Read> Read for Hashed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("recovery cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.progress.advance(n as u64);
        Ok(n)
    }
}
