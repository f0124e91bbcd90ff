//! `barman-cloud-restore`: a backup of a bucket unpacked into a directory
//! (BARMAN-CLOUD.md §10): every tar object streamed, decompressed by its
//! extension and unpacked in Rust (barman-cloud pipes it into the `tar`
//! program), PGDATA into the destination and each tablespace into its
//! location (or the one `--tablespace NAME:LOCATION` gives), then the
//! `pg_tblspc/<oid>` links and `pg_wal` when the backup has none.
//!
//! Every entry stays inside its destination (no `..`, no absolute path, no
//! write through a link the archive planted), and the restored tree is
//! made durable (`syncfs`) before the restore reports success.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use barman_catalog::Tablespace;
use barman_wal::Compression;

use crate::catalog::CloudBackup;
use crate::layout::{TarPart, Tree};
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
    let result = unpack_all(bucket, backup, dest, &targets, &tablespaces, info);
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

/// Unpacks every tar object, links the tablespaces, adds `pg_wal`, syncs.
fn unpack_all(
    bucket: &Bucket,
    backup: &CloudBackup,
    dest: &Path,
    targets: &BTreeMap<Tree, PathBuf>,
    tablespaces: &[Tablespace],
    info: &barman_catalog::BackupInfo,
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
        report.entries += unpack(bucket, part, listed, target)?;
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

/// Streams one tar object into `target`; the entries unpacked.
fn unpack(bucket: &Bucket, part: &TarPart, listed: &Listed, target: &Path) -> Result<u64> {
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
        let unpacking = scope.spawn(move || unpack_stream(reader, compression, target));
        let got = bucket.get(&listed.key, &mut writer);
        drop(writer);
        let unpacked = unpacking
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the unpacking thread panicked")));
        got?;
        // The tar crate keeps the cause of a failed entry in the source.
        unpacked.map_err(|e| {
            let text = crate::store::error_chain(&e);
            Error::Unpack(listed.key.clone(), io::Error::new(e.kind(), text))
        })
    })
}

/// Unpacks a (compressed) tar stream into `target`; the entries unpacked.
fn unpack_stream(
    reader: pipe::PipeReader,
    compression: Option<Compression>,
    target: &Path,
) -> io::Result<u64> {
    let input: Box<dyn io::Read> = match compression {
        None => Box::new(reader),
        Some(c) => Box::new(c.reader(reader).map_err(io::Error::other)?),
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
        if !entry.unpack_in(target)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "entry `{}` would land outside {}",
                    path.display(),
                    target.display()
                ),
            ));
        }
        count += 1;
    }
    Ok(count)
}
