//! `backup_method = postgres`: `BASE_BACKUP` over our replication client,
//! streamed straight into `base/<id>/data` and `base/<id>/<oid>` as plain
//! files (no tar on disk), with a blake3 manifest like the rsync methods.
//!
//! Every path from the server is validated ([`RelPath`]: no `..`, no
//! absolute paths); tablespace links in `pg_tblspc` are left out (the
//! tablespaces are recorded in backup.info and `tablespace_map`, as for the
//! rsync methods); PostgreSQL's `backup_manifest` is kept in `data/`.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use barman_copy::hash::{Hasher, is_page_structured};
use barman_copy::{Entry, EntryKind, Manifest, ManifestEntry, Mtime, Progress, RelPath};

use barman_pg::replication::{ArchiveFile, BaseBackupSink, TablespaceInfo};

/// Buffer size of file writes.
const BUF: usize = 1 << 20;

/// Writes a base backup stream into a backup directory.
pub struct DirSink<'a> {
    dir: PathBuf,
    tree: String,
    /// The backup's manifest, built as files arrive.
    pub manifest: Manifest,
    /// Bytes of regular files written.
    pub bytes: u64,
    /// Files written.
    pub files: u64,
    /// `data/backup_label` as received.
    pub label: Option<String>,
    /// `data/tablespace_map` as received.
    pub tablespace_map: Option<String>,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
}

impl std::fmt::Debug for DirSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirSink")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl<'a> DirSink<'a> {
    /// A sink writing under `dir` (the backup directory).
    pub fn new(dir: &Path, progress: &'a dyn Progress, cancel: &'a AtomicBool) -> Self {
        Self {
            dir: dir.to_path_buf(),
            tree: "data".to_owned(),
            manifest: Manifest::default(),
            bytes: 0,
            files: 0,
            label: None,
            tablespace_map: None,
            progress,
            cancel,
        }
    }

    fn rel(&self, path: &str) -> io::Result<RelPath> {
        let path = path.trim_end_matches('/');
        if path.is_empty() || path == "." {
            return RelPath::new(self.tree.clone()).map_err(invalid);
        }
        RelPath::new(format!("{}/{}", self.tree, path.trim_start_matches("./"))).map_err(invalid)
    }

    fn mtime(secs: i64) -> Mtime {
        Mtime { secs, nanos: 0 }
    }
}

impl BaseBackupSink for DirSink<'_> {
    fn started(
        &mut self,
        _start: barman_wal::Lsn,
        _timeline: u32,
        tablespaces: &[TablespaceInfo],
    ) -> io::Result<()> {
        let total: u64 = tablespaces.iter().filter_map(|t| t.size_kb).sum::<u64>() * 1024;
        self.progress.start(0, total);
        Ok(())
    }

    fn begin_archive(
        &mut self,
        tablespace: Option<u32>,
        _location: Option<&str>,
    ) -> io::Result<()> {
        self.tree = tablespace.map_or_else(|| "data".to_owned(), |oid| oid.to_string());
        let root = self.dir.join(&self.tree);
        fs::create_dir_all(&root)?;
        let rel = RelPath::new(self.tree.clone()).map_err(invalid)?;
        let meta = fs::metadata(&root)?;
        self.manifest.insert(ManifestEntry {
            entry: Entry {
                path: rel,
                kind: EntryKind::Dir,
                size: 0,
                mtime: Mtime::of(&meta),
                mode: 0o700,
            },
            blake3: None,
            pages: None,
        });
        Ok(())
    }

    fn directory(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let rel = self.rel(path)?;
        fs::create_dir_all(rel.under(&self.dir))?;
        self.manifest.insert(ManifestEntry {
            entry: Entry {
                path: rel,
                kind: EntryKind::Dir,
                size: 0,
                mtime: Mtime::default(),
                mode: mode & 0o7777,
            },
            blake3: None,
            pages: None,
        });
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        // pg_tblspc links: the tablespaces are their own trees.
        tracing::debug!("base backup link {path} -> {target} left out");
        Ok(())
    }

    fn file(&mut self, file: ArchiveFile<'_>, data: &mut dyn Read) -> io::Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("backup cancelled"));
        }
        let rel = self.rel(file.path)?;
        let target = rel.under(&self.dir);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        // Removed when dropped (any error below) unless renamed into place.
        let mut tmp = barman_fs::TempFile::create(&target, 0o600)?;
        let mut hasher = Hasher::new(is_page_structured(rel.in_tree(), file.size));
        let mut keep_text =
            rel.as_str() == "data/backup_label" || rel.as_str() == "data/tablespace_map";
        let mut text = Vec::new();
        let mut buf = vec![0u8; BUF.min(usize::try_from(file.size).unwrap_or(BUF).max(1))];
        let mut left = file.size;
        let mut behind = barman_copy::fsutil::WriteBehind::default();
        let result = (|| {
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
                let n = data.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(invalid(format!("{rel}: the stream ended inside the file")));
                }
                tmp.write_all(&buf[..n])?;
                behind.wrote(tmp.file(), n);
                hasher.update(&buf[..n]);
                if keep_text {
                    text.extend_from_slice(&buf[..n]);
                    keep_text = text.len() < (1 << 20);
                }
                left -= n as u64;
                self.progress.advance(n as u64);
            }
            tmp.file()
                .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(
                    file.mode & 0o7777,
                ))?;
            let when = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(file.mtime).unwrap_or(0));
            tmp.file().set_modified(when)?;
            Ok(())
        })();
        result?;
        // Made durable at the end of the backup, with one syncfs.
        tmp.rename_unsynced()?;
        let (blake3, pages) = hasher.finish();
        if rel.as_str() == "data/backup_label" {
            self.label = Some(String::from_utf8_lossy(&text).into_owned());
        } else if rel.as_str() == "data/tablespace_map" {
            self.tablespace_map = Some(String::from_utf8_lossy(&text).into_owned());
        }
        self.manifest.insert(ManifestEntry {
            entry: Entry {
                path: rel.clone(),
                kind: EntryKind::File,
                size: file.size,
                mtime: Self::mtime(file.mtime),
                mode: file.mode & 0o7777,
            },
            blake3: Some(blake3),
            pages,
        });
        self.files += 1;
        self.bytes += file.size;
        self.progress.file_done(&rel);
        Ok(())
    }

    fn end_archive(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn manifest(&mut self, data: &mut dyn Read) -> io::Result<()> {
        let target = self.dir.join("data/backup_manifest");
        let mut file = barman_fs::TempFile::create(&target, 0o600)?;
        let mut hasher = Hasher::new(false);
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = data.read(&mut buf)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])?;
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let meta = file.file().metadata()?;
        file.rename_unsynced()?;
        self.manifest.insert(ManifestEntry {
            entry: Entry {
                path: RelPath::new("data/backup_manifest").map_err(invalid)?,
                kind: EntryKind::File,
                size,
                mtime: Mtime::of(&meta),
                mode: 0o600,
            },
            blake3: Some(hasher.finish().0),
            pages: None,
        });
        self.bytes += size;
        self.files += 1;
        Ok(())
    }
}

/// Makes a streamed backup durable: one syncfs for the backup's file system.
pub fn sync_dir(dir: &Path) -> crate::Result<()> {
    barman_catalog::fs::fsync_dir(dir)?;
    // syncfs through barman-copy's restore destination (one per file system).
    let mut dest =
        barman_copy::LocalDestination::new([("backup".to_owned(), dir.to_path_buf())].into());
    barman_copy::Destination::sync(&mut dest, &["backup".to_owned()], &[])
        .map_err(crate::Error::from)
}
