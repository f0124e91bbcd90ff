//! `barman-cloud-restore`: a backup of a bucket unpacked into a directory
//! (BARMAN-CLOUD.md §10): every tar object streamed, decompressed by its
//! extension and unpacked in Rust (barman-cloud pipes it into the `tar`
//! program), PGDATA into the destination and each tablespace into its
//! location (or the one `--tablespace NAME:LOCATION` gives), then the
//! `pg_tblspc/<oid>` links and `pg_wal` when the backup has none.
//!
//! A backup barman-rs uploaded carries a checksum manifest
//! ([`crate::manifest`]): every file is hashed as it is written and checked
//! against it, and a file that differs, is missing or is unexpected fails
//! the restore naming it, with nothing left installed.
//!
//! Every entry stays inside its destination (no `..`, no absolute path, no
//! write through a link the archive planted), and the restored tree is
//! made durable (`syncfs`) before the restore reports success.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use barman_catalog::Tablespace;
use barman_wal::Compression;

use crate::catalog::CloudBackup;
use crate::layout::{TarPart, Tree};
use crate::manifest::{self, Expected, MAX_MANIFEST_BYTES, Manifest, Tee, Window};
use crate::store::{Bucket, Listed};
use crate::{Error, Result, pipe};

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Tar objects unpacked.
    pub objects: usize,
    /// Entries unpacked.
    pub entries: u64,
    /// Tablespaces: (name, where restored).
    pub tablespaces: Vec<(String, PathBuf)>,
}

/// Where each tree of `backup` goes: PGDATA to `dest`, each tablespace to
/// its relocation or its original location.
fn targets(
    tablespaces: &[Tablespace],
    dest: &Path,
    relocations: &BTreeMap<String, PathBuf>,
) -> BTreeMap<Tree, PathBuf> {
    let mut targets = BTreeMap::from([(Tree::Data, dest.to_path_buf())]);
    for t in tablespaces {
        let location = relocations.get(&t.name).map_or_else(
            || PathBuf::from(&t.location),
            |p| {
                fs::canonicalize(p)
                    .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            },
        );
        targets.insert(Tree::Tablespace(t.oid), location);
    }
    targets
}

/// Whether `dir` is missing or empty.
fn missing_or_empty(dir: &Path) -> bool {
    fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

/// Restores `backup` into `dest`.
///
/// # Errors
/// [`Error::DestinationNotEmpty`] naming a destination that holds files
/// (checked before anything is downloaded); [`Error::MissingTar`] when the
/// backup has no `data.tar*`; [`Error::Store`] for download failures;
/// [`Error::Unpack`] naming the object for a damaged or hostile archive.
pub fn restore_backup(
    bucket: &Bucket,
    backup: &CloudBackup,
    dest: &Path,
    relocations: &BTreeMap<String, PathBuf>,
) -> Result<RestoreReport> {
    let info = &backup.info;
    let tablespaces = info
        .tablespaces()
        .map_err(Error::Catalog)?
        .unwrap_or_default();
    for name in relocations.keys() {
        if !tablespaces.iter().any(|t| &t.name == name) {
            return Err(Error::UnknownTablespace(name.clone()));
        }
    }
    let targets = targets(&tablespaces, dest, relocations);
    for target in targets.values() {
        if !missing_or_empty(target) {
            return Err(Error::DestinationNotEmpty(target.clone()));
        }
    }
    if !backup
        .tars
        .iter()
        .any(|(p, _)| p.tree == Tree::Data && p.part == 0)
    {
        return Err(Error::MissingTar(format!(
            "{}data.tar*",
            backup
                .tars
                .first()
                .map(|(_, l)| l.key.rsplit_once('/').map_or("", |(d, _)| d))
                .unwrap_or_default()
        )));
    }
    // Whatever goes wrong from here, nothing is left installed: the
    // destinations were missing or empty, and are so again.
    let existed: Vec<(PathBuf, bool)> = targets.values().map(|t| (t.clone(), t.exists())).collect();
    let result = read_manifest(bucket, backup).and_then(|mut expected| {
        let report = unpack_all(
            bucket,
            backup,
            dest,
            &targets,
            &tablespaces,
            info,
            expected.as_mut(),
        )?;
        if let (Some(expected), Some(listed)) = (&expected, &backup.manifest) {
            let files = expected
                .finish()
                .map_err(|reason| Error::Verify(listed.key.clone(), reason))?;
            tracing::info!("{files} files checked against `{}`", listed.key);
        }
        Ok(report)
    });
    if result.is_err() {
        for (target, existed) in existed {
            remove_restored(&target, existed);
        }
    }
    result
}

/// Empties `target` (and removes it when the restore created it).
fn remove_restored(target: &Path, existed: bool) {
    if existed {
        if let Ok(entries) = fs::read_dir(target) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
    } else {
        let _ = fs::remove_dir_all(target);
    }
}

/// The backup's checksum manifest, when it has one (backups real
/// barman-cloud took have none: their files are not checked).
fn read_manifest(bucket: &Bucket, backup: &CloudBackup) -> Result<Option<Expected>> {
    let Some(listed) = &backup.manifest else {
        return Ok(None);
    };
    let invalid = |reason: String| Error::Key {
        key: listed.key.clone(),
        reason,
    };
    if listed.size > MAX_MANIFEST_BYTES {
        return Err(invalid(format!(
            "{} bytes: larger than any manifest barman-rs writes",
            listed.size
        )));
    }
    let bytes = bucket.get_bounded(&listed.key, MAX_MANIFEST_BYTES)?;
    let manifest = Manifest::parse(&bytes).map_err(invalid)?;
    Expected::new(manifest).map(Some).map_err(invalid)
}

/// Unpacks every tar object, links the tablespaces, adds `pg_wal`, syncs.
fn unpack_all(
    bucket: &Bucket,
    backup: &CloudBackup,
    dest: &Path,
    targets: &BTreeMap<Tree, PathBuf>,
    tablespaces: &[Tablespace],
    info: &barman_catalog::BackupInfo,
    mut expected: Option<&mut Expected>,
) -> Result<RestoreReport> {
    let mut report = RestoreReport::default();
    for (part, listed) in &backup.tars {
        let Some(target) = targets.get(&part.tree) else {
            tracing::warn!(
                "skipping `{}`: no tablespace of the backup has this oid",
                listed.key
            );
            continue;
        };
        fs::create_dir_all(target).map_err(|e| Error::Unpack(target.display().to_string(), e))?;
        if part.tree == Tree::Data {
            fs::set_permissions(target, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::Unpack(target.display().to_string(), e))?;
        }
        report.entries += unpack(bucket, part, listed, target, expected.as_deref_mut())?;
        report.objects += 1;
    }
    for t in tablespaces {
        let target = &targets[&Tree::Tablespace(t.oid)];
        let link = dest.join("pg_tblspc").join(t.oid.to_string());
        fs::create_dir_all(dest.join("pg_tblspc"))
            .map_err(|e| Error::Unpack(link.display().to_string(), e))?;
        if fs::symlink_metadata(&link).is_ok() {
            fs::remove_file(&link).map_err(|e| Error::Unpack(link.display().to_string(), e))?;
        }
        std::os::unix::fs::symlink(target, &link)
            .map_err(|e| Error::Unpack(link.display().to_string(), e))?;
        report.tablespaces.push((t.name.clone(), target.clone()));
    }
    let version = info.version().map_err(Error::Catalog)?.unwrap_or(0);
    let wal_dir = dest.join(if version >= 100_000 {
        "pg_wal"
    } else {
        "pg_xlog"
    });
    if fs::symlink_metadata(&wal_dir).is_err() {
        fs::create_dir(&wal_dir).map_err(|e| Error::Unpack(wal_dir.display().to_string(), e))?;
        fs::set_permissions(&wal_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::Unpack(wal_dir.display().to_string(), e))?;
    }
    for target in targets.values() {
        sync_tree(target)?;
    }
    Ok(report)
}

/// Makes everything written under `dir` durable: `syncfs` of its file
/// system.
fn sync_tree(dir: &Path) -> Result<()> {
    let file = fs::File::open(dir).map_err(|e| Error::Unpack(dir.display().to_string(), e))?;
    rustix::fs::syncfs(&file)
        .map_err(|e| Error::Unpack(dir.display().to_string(), io::Error::from(e)))
}

/// Streams one tar object into `target`, each file checked against
/// `expected` when given; the entries unpacked.
fn unpack(
    bucket: &Bucket,
    part: &TarPart,
    listed: &Listed,
    target: &Path,
    expected: Option<&mut Expected>,
) -> Result<u64> {
    let compression = part
        .extension
        .as_deref()
        .map(|ext| {
            crate::wal::compression_of(ext).ok_or_else(|| Error::Key {
                key: listed.key.clone(),
                reason: format!("unknown compression extension `{ext}`"),
            })
        })
        .transpose()?;
    let (mut writer, reader) = pipe::pipe();
    std::thread::scope(|scope| {
        let tree = manifest::tree_name(&part.tree);
        let unpacking =
            scope.spawn(move || unpack_stream(reader, compression, target, &tree, expected));
        let got = bucket.get(&listed.key, &mut writer);
        drop(writer);
        let unpacked = unpacking
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the unpacking thread panicked").into()));
        // A failed download shows as a truncated stream to the unpacking
        // side, and a failed unpacking as a closed pipe to the download:
        // each error is told by the side that saw it first.
        match (got, unpacked) {
            (_, Err(Unpacked::Verify(reason))) => Err(Error::Verify(listed.key.clone(), reason)),
            (Err(Error::Write(..)) | Ok(_), Err(Unpacked::Io(e))) => {
                // The tar crate keeps the cause of a failed entry in the source.
                let text = crate::error::error_chain(&e);
                Err(Error::Unpack(
                    listed.key.clone(),
                    io::Error::new(e.kind(), text),
                ))
            }
            (Err(e), _) => Err(e),
            (Ok(_), Ok(n)) => Ok(n),
        }
    })
}

/// Why unpacking a stream failed.
enum Unpacked {
    /// Reading, decompressing or writing.
    Io(io::Error),
    /// A file differs from the manifest.
    Verify(String),
}

impl From<io::Error> for Unpacked {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Unpacks a (compressed) tar stream into `target`, the content of each
/// regular file hashed on its way to disk and checked against `expected`
/// (files of tree `tree`); the entries unpacked. A compressed stream is
/// decompressed in a thread of its own, so that decompressing and writing
/// the files overlap (as barman-cloud's decompression and its `tar`
/// process do).
fn unpack_stream(
    reader: pipe::PipeReader,
    compression: Option<Compression>,
    target: &Path,
    tree: &str,
    expected: Option<&mut Expected>,
) -> std::result::Result<u64, Unpacked> {
    let Some(compression) = compression else {
        return unpack_tar(Box::new(reader), target, tree, expected);
    };
    let (mut out, input) = pipe::pipe();
    std::thread::scope(|scope| {
        let decompressing = scope.spawn(move || -> io::Result<u64> {
            let mut decoder = compression.reader(reader).map_err(io::Error::other)?;
            // Chunks of 256 KiB through the pipe, not io::copy's 8 KiB.
            let mut out = io::BufWriter::with_capacity(256 << 10, &mut out);
            let n = io::copy(&mut decoder, &mut out)?;
            out.flush()?;
            Ok(n)
        });
        let unpacked = unpack_tar(Box::new(input), target, tree, expected);
        let decompressed = decompressing
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decompressing thread panicked")));
        match (decompressed, unpacked) {
            // A damaged stream: the decompressor's error says more than
            // the truncated tar it leaves (unless it only saw the
            // unpacking side stop).
            (Err(e), Err(Unpacked::Io(_))) if e.kind() != io::ErrorKind::BrokenPipe => {
                Err(Unpacked::Io(e))
            }
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(Unpacked::Io(e)),
            (Ok(_), Ok(n)) => Ok(n),
        }
    })
}

/// Unpacks a tar stream (see [`unpack_stream`]); reads `input` to its end.
fn unpack_tar(
    input: Box<dyn io::Read + '_>,
    target: &Path,
    tree: &str,
    mut expected: Option<&mut Expected>,
) -> std::result::Result<u64, Unpacked> {
    let window = Rc::new(RefCell::new(Window::default()));
    let input = Tee {
        inner: input,
        window: Rc::clone(&window),
    };
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(rustix::process::geteuid().is_root());
    archive.set_overwrite(true);
    let mut count = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let file = expected.is_some() && entry.header().entry_type().is_file();
        if file {
            window
                .borrow_mut()
                .open(entry.raw_file_position(), entry.size());
        }
        if !entry.unpack_in(target)? {
            return Err(Unpacked::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "entry `{}` would land outside {}",
                    path.display(),
                    target.display()
                ),
            )));
        }
        if let (true, Some(expected)) = (file, expected.as_deref_mut()) {
            let sum = window.borrow_mut().close().unwrap_or_default();
            expected
                .check(tree, &path.to_string_lossy(), entry.size(), &sum)
                .map_err(Unpacked::Verify)?;
        }
        count += 1;
    }
    // The end-of-archive blocks and the record's padding: read to the end,
    // so that the stages before see their stream taken whole.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(count)
}
