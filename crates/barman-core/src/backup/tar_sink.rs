//! `backup_method = postgres` with `backup_compression` in tar format:
//! each archive of `BASE_BACKUP` stored as one file, `data/base.<ext>` and
//! `data/<oid>.<ext>` (`ext`: `tar.gz`, `tar.lz4`, `tar.zst`, or `tar` for
//! `none`), as Barman's `pg_basebackup --format=tar --compress=...` leaves
//! them.
//!
//! With `backup_compression_location = client` the tar stream is compressed
//! here; with `server` the bytes PostgreSQL compressed are stored as they
//! arrive. Either way `backup_label` and `tablespace_map` (the first
//! entries of the base archive) are read from the stream on the way, and
//! every stored archive's blake3 goes into our manifest, so a recovery
//! verifies what it unpacks. The `backup_manifest`, the tree roots
//! (`data/`, the empty `<oid>/` of each tablespace) and the counters are
//! [`DirSink`]'s.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use barman_config::{BackupCompression, BackupCompressionSettings};
use barman_copy::hash::Hasher;
use barman_copy::{Entry, EntryKind, ManifestEntry, Mtime, Progress, RelPath};
use barman_pg::replication::{ArchiveFile, BaseBackupSink, TablespaceInfo};
use barman_wal::{Compression, CompressionLevel};

use super::streamed::DirSink;

/// Buffer size of the copies.
const BUF: usize = 1 << 20;

/// How the archives are stored.
#[derive(Debug, Clone, Copy)]
pub struct TarFormat {
    /// The stored files' suffix (`tar.gz`, ...).
    pub extension: &'static str,
    /// We compress (client side): the algorithm, level and workers.
    pub client: Option<(BackupCompression, Option<i32>, Option<u32>)>,
    /// PostgreSQL compressed the bytes (server side): to read the label.
    pub server: Option<Compression>,
}

impl TarFormat {
    /// The storage of `settings` (tar format).
    pub fn of(settings: &BackupCompressionSettings) -> Self {
        let server = settings.location == barman_config::BackupCompressionLocation::Server;
        let algorithm = wal_compression(settings.algorithm);
        Self {
            extension: settings.file_extension(),
            client: (!server && algorithm.is_some()).then_some((
                settings.algorithm,
                settings.level,
                settings.workers,
            )),
            server: algorithm.filter(|_| server),
        }
    }
}

/// The stream algorithm of a backup compression (`None` for `none`).
pub fn wal_compression(algorithm: BackupCompression) -> Option<Compression> {
    match algorithm {
        BackupCompression::Gzip => Some(Compression::Gzip),
        BackupCompression::Lz4 => Some(Compression::Lz4),
        BackupCompression::Zstd => Some(Compression::Zstd),
        BackupCompression::None => None,
    }
}

/// Writes each archive of a base backup stream as one (compressed) tar file.
pub struct TarSink<'a> {
    inner: DirSink<'a>,
    dir: std::path::PathBuf,
    format: TarFormat,
    /// The file name of the current archive.
    name: String,
    /// Whether the current archive is the base one (holds backup_label).
    base: bool,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
}

impl std::fmt::Debug for TarSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarSink")
            .field("dir", &self.dir)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl<'a> TarSink<'a> {
    /// A sink writing under `dir` (the backup directory).
    pub fn new(
        dir: &Path,
        format: TarFormat,
        progress: &'a dyn Progress,
        cancel: &'a AtomicBool,
    ) -> Self {
        Self {
            inner: DirSink::new(dir, progress, cancel),
            dir: dir.to_path_buf(),
            format,
            name: String::new(),
            base: false,
            progress,
            cancel,
        }
    }

    /// The [`DirSink`] that kept the manifest, label and counters.
    pub fn into_inner(self) -> DirSink<'a> {
        self.inner
    }

    /// Stores one archive: `data` through the compressor (client side) or
    /// as is, into `data/<name>`, hashed; the label read on the way.
    fn store(&mut self, data: &mut dyn Read) -> io::Result<()> {
        let rel = RelPath::new(format!("data/{}", self.name)).map_err(invalid)?;
        let target = rel.under(&self.dir);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Removed when dropped (any error below) unless renamed into place.
        let file = barman_fs::TempFile::create(&target, 0o600)?;
        let counted = Counted {
            file,
            hasher: Hasher::new(false),
            size: 0,
        };
        let mut out = Compressor::new(self.format.client, counted)?;
        let mut tee = Tee {
            src: data,
            out: &mut out,
            progress: self.progress,
            cancel: self.cancel,
        };
        if self.base {
            let (label, map) = read_label(&mut tee, self.format.server)?;
            self.inner.label = label;
            self.inner.tablespace_map = map;
        }
        // The rest of the archive, through the tee.
        io::copy(&mut tee, &mut io::sink())?;
        let Counted { file, hasher, size } = out.finish()?;
        let meta = file.file().metadata()?;
        file.rename_unsynced()?;
        self.inner.manifest.insert(ManifestEntry {
            entry: Entry {
                path: rel.clone(),
                kind: EntryKind::File,
                size,
                mtime: Mtime::of(&meta),
                mode: 0o600,
            },
            blake3: Some(hasher.finish().0),
            pages: None,
        });
        self.inner.files += 1;
        self.inner.bytes += size;
        self.progress.file_done(&rel);
        Ok(())
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// `backup_label` and `tablespace_map` from the first entries of a base
/// archive (PostgreSQL sends them first); stops at the first other entry.
fn read_label(
    tee: &mut dyn Read,
    server: Option<Compression>,
) -> io::Result<(Option<String>, Option<String>)> {
    let plain: Box<dyn Read + '_> = match server {
        Some(c) => Box::new(c.reader(tee).map_err(invalid)?),
        None => Box::new(tee),
    };
    let mut archive = tar::Archive::new(plain);
    let (mut label, mut map) = (None, None);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path_bytes().into_owned();
        let slot = match path.strip_prefix(b"./").unwrap_or(&path) {
            b"backup_label" => &mut label,
            b"tablespace_map" => &mut map,
            _ => break,
        };
        if entry.size() > 1 << 20 {
            return Err(invalid("backup_label or tablespace_map is over 1 MiB"));
        }
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        *slot = Some(text);
        if label.is_some() && map.is_some() {
            break;
        }
    }
    Ok((label, map))
}

impl BaseBackupSink for TarSink<'_> {
    fn started(
        &mut self,
        start: barman_wal::Lsn,
        timeline: u32,
        tablespaces: &[TablespaceInfo],
    ) -> io::Result<()> {
        self.inner.started(start, timeline, tablespaces)
    }

    fn begin_archive(&mut self, tablespace: Option<u32>, location: Option<&str>) -> io::Result<()> {
        // `data/`, or the tablespace's (empty) `<oid>/`, as Barman has it.
        self.inner.begin_archive(tablespace, location)?;
        let stem = tablespace.map_or_else(|| "base".to_owned(), |oid| oid.to_string());
        self.name = format!("{stem}.{}", self.format.extension);
        self.base = tablespace.is_none();
        Ok(())
    }

    fn wants_archive_bytes(&self) -> bool {
        true
    }

    fn archive_bytes(&mut self, data: &mut dyn Read) -> io::Result<()> {
        self.store(data)
    }

    fn file(&mut self, file: ArchiveFile<'_>, _data: &mut dyn Read) -> io::Result<()> {
        Err(invalid(format!("unexpected unpacked file `{}`", file.path)))
    }

    fn directory(&mut self, path: &str, _mode: u32) -> io::Result<()> {
        Err(invalid(format!("unexpected unpacked directory `{path}`")))
    }

    fn symlink(&mut self, path: &str, _target: &str) -> io::Result<()> {
        Err(invalid(format!("unexpected unpacked link `{path}`")))
    }

    fn end_archive(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn manifest(&mut self, data: &mut dyn Read) -> io::Result<()> {
        self.inner.manifest(data)
    }
}

/// Reads `src`, writing whatever it reads to `out`.
struct Tee<'s, 'o, 'p> {
    src: &'s mut dyn Read,
    out: &'o mut dyn Write,
    progress: &'p dyn Progress,
    cancel: &'p AtomicBool,
}

impl Read for Tee<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("backup cancelled"));
        }
        let n = self.src.read(buf)?;
        self.out.write_all(&buf[..n])?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// The stored file, with the blake3 and size of what is written.
struct Counted {
    file: barman_fs::TempFile,
    hasher: Hasher,
    size: u64,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Client-side compression of an archive (or none).
enum Compressor<W: Write> {
    /// Stored as received.
    Plain(io::BufWriter<W>),
    /// gzip or lz4.
    Stream(barman_wal::Encoder<io::BufWriter<W>>),
    /// zstd, with its level and workers.
    Zstd(zstd::stream::write::Encoder<'static, io::BufWriter<W>>),
}

impl<W: Write> Compressor<W> {
    fn new(
        client: Option<(BackupCompression, Option<i32>, Option<u32>)>,
        inner: W,
    ) -> io::Result<Self> {
        let inner = io::BufWriter::with_capacity(BUF, inner);
        Ok(match client {
            None | Some((BackupCompression::None, ..)) => Self::Plain(inner),
            Some((BackupCompression::Zstd, level, workers)) => {
                // PostgreSQL's default zstd level is 3.
                let mut enc = zstd::stream::write::Encoder::new(inner, level.unwrap_or(3))?;
                if let Some(workers) = workers.filter(|w| *w > 0) {
                    enc.multithread(workers)?;
                }
                Self::Zstd(enc)
            }
            Some((algorithm, level, _)) => {
                let compression = wal_compression(algorithm).unwrap_or(Compression::Gzip);
                // gzip's -1 is its default, 6 (lz4_flex has one level).
                let level = match level {
                    None | Some(-1) => CompressionLevel::Level(6),
                    Some(n) => CompressionLevel::Level(n),
                };
                Self::Stream(compression.writer(inner, level).map_err(invalid)?)
            }
        })
    }

    /// Ends the stream; the inner writer, flushed.
    fn finish(self) -> io::Result<W> {
        let buffered = match self {
            Self::Plain(w) => w,
            Self::Stream(e) => e.finish()?,
            Self::Zstd(e) => e.finish()?,
        };
        buffered
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Stream(e) => e.write(buf),
            Self::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Stream(e) => e.flush(),
            Self::Zstd(e) => e.flush(),
        }
    }
}
