//! `barman-cloud-backup`: a concurrent base backup of a running PostgreSQL
//! streamed into a bucket in Barman's layout and formats (BARMAN-CLOUD.md
//! §5–§6): `backup.info` uploaded STARTED, one tar per tablespace and the
//! PGDATA tar (`global/pg_control` then `backup_label` last), each a
//! compressed stream split into parts beyond `-S`, uploaded as multipart
//! uploads with `-J` parts in flight, then `backup.info` DONE (or FAILED
//! with the error).
//!
//! Nothing is staged on disk and memory stays within `-J` parts whatever
//! the database size (barman-cloud stages each part in temporary files).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use barman_catalog::{BackupId, BackupInfo, BackupStatus, PyFloat, PyValue};
use barman_copy::listing::list_tree;
use barman_copy::{EntryKind, Exclusions};
use barman_core::backup::pgside::{self, ServerFacts};
use barman_pg::postgres::PgConnection;
use barman_wal::{Compression, CompressionLevel, Encoder, TimelineId, WalSegmentSize};
use jiff::Zoned;

use crate::layout::{Layout, TarPart, Tree};
use crate::manifest::{self, FileSum, HashingReader, Manifest};
use crate::store::{Bucket, MultipartWriter, retry_cleanup};
use crate::{Error, Result};

/// Barman's limits of an S3 object: parts per upload and the largest
/// object (the part size is derived from `-S` with them).
const MAX_CHUNKS: u64 = 10_000;
/// The smallest part (S3's minimum).
const MIN_CHUNK: u64 = 5 << 20;
/// The largest object.
const MAX_OBJECT: u64 = 1 << 40;

/// What `barman-cloud-backup` does.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The tars' compression (`-z`, `-j`, `--snappy`, `--lz4`, `--zstd`).
    pub compression: Option<Compression>,
    /// `-S/--max-archive-size`: a part is closed once it holds more.
    pub max_archive_size: u64,
    /// `--min-chunk-size`.
    pub min_chunk_size: u64,
    /// `-J/--jobs`: parts in flight.
    pub jobs: usize,
    /// `-n/--name`.
    pub name: Option<String>,
    /// `--tags`.
    pub tags: Vec<(String, String)>,
    /// `--immediate-checkpoint`.
    pub immediate_checkpoint: bool,
    /// `--max-bandwidth`: bytes uploaded per second at most.
    pub max_bandwidth: Option<u64>,
    /// `--keepalive-interval`: a keepalive query on the backup's
    /// connection at least this often while files are read (`None`: never).
    pub keepalive: Option<std::time::Duration>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            compression: None,
            max_archive_size: 100 << 30,
            min_chunk_size: 0,
            jobs: 2,
            name: None,
            tags: Vec::new(),
            immediate_checkpoint: false,
            max_bandwidth: None,
            keepalive: Some(std::time::Duration::from_secs(60)),
        }
    }
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The backup id.
    pub backup_id: String,
    /// The tar objects uploaded.
    pub objects: Vec<String>,
    /// Bytes uploaded (compressed).
    pub bytes: u64,
}

/// The tar extension of a compression.
fn tar_extension(compression: Compression) -> Option<&'static str> {
    crate::layout::TAR_EXTENSIONS
        .iter()
        .find(|(_, name)| *name == compression.name())
        .map(|(ext, _)| *ext)
}

/// The part size of a multipart upload (Barman's `chunk` formula).
fn part_size(options: &BackupOptions) -> usize {
    let derived = 2 * (options.max_archive_size.min(MAX_OBJECT) / MAX_CHUNKS);
    usize::try_from(derived.max(MIN_CHUNK).max(options.min_chunk_size)).unwrap_or(usize::MAX)
}

/// `--max-bandwidth` over the whole backup: after each write, sleeps until
/// the bytes sent so far fit in the limit.
#[derive(Debug)]
struct Throttle {
    bytes_per_second: u64,
    start: Instant,
    sent: AtomicU64,
}

impl Throttle {
    fn sent(&self, n: u64) {
        let sent = self.sent.fetch_add(n, Ordering::Relaxed) + n;
        #[allow(clippy::cast_precision_loss)]
        let due = std::time::Duration::from_secs_f64(sent as f64 / self.bytes_per_second as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Counts what goes through (shared with the stream, which cannot reach
/// it through the encoder), throttled by `--max-bandwidth`.
struct Counting<W> {
    inner: W,
    count: Arc<AtomicU64>,
    throttle: Option<Arc<Throttle>>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(throttle) = &self.throttle {
            throttle.sent(n as u64);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One tree's tar objects: parts opened and closed as they fill.
struct TarStream<'b> {
    bucket: &'b Bucket,
    layout: &'b Layout,
    id: &'b str,
    tree: Tree,
    options: &'b BackupOptions,
    part: u32,
    builder: Option<tar::Builder<Encoder<Counting<MultipartWriter<'b>>>>>,
    written: Arc<AtomicU64>,
    objects: Vec<String>,
    bytes: u64,
    throttle: Option<Arc<Throttle>>,
    keepalive: Option<Keepalive<'b>>,
    /// The checksums of the files written so far (the manifest's entries).
    sums: Vec<FileSum>,
}

/// `--keepalive-interval`: the backup's connection, kept busy while files
/// are read so that no firewall or idle timeout closes it.
struct Keepalive<'b> {
    pg: &'b PgConnection,
    every: std::time::Duration,
    last: Instant,
}

impl Keepalive<'_> {
    fn tick(&mut self) {
        if self.last.elapsed() >= self.every {
            if let Err(e) = self.pg.execute("SELECT 1") {
                tracing::warn!("keepalive query failed: {e}");
            }
            self.last = Instant::now();
        }
    }
}

impl<'b> TarStream<'b> {
    fn new(
        bucket: &'b Bucket,
        layout: &'b Layout,
        id: &'b str,
        tree: Tree,
        options: &'b BackupOptions,
    ) -> Self {
        Self {
            bucket,
            layout,
            id,
            tree,
            options,
            part: 0,
            builder: None,
            written: Arc::new(AtomicU64::new(0)),
            objects: Vec::new(),
            bytes: 0,
            throttle: None,
            keepalive: None,
            sums: Vec::new(),
        }
    }

    /// The builder of the current part, a new part when the current one
    /// holds more than `-S` (a member never spans parts).
    fn builder(&mut self) -> Result<&mut tar::Builder<Encoder<Counting<MultipartWriter<'b>>>>> {
        if let Some(keepalive) = &mut self.keepalive {
            keepalive.tick();
        }
        let full = self.builder.is_some()
            && self.written.load(Ordering::Relaxed) > self.options.max_archive_size;
        if full {
            self.close()?;
            self.part += 1;
        }
        if self.builder.is_none() {
            let part = TarPart {
                tree: self.tree.clone(),
                part: self.part,
                extension: self
                    .options
                    .compression
                    .and_then(tar_extension)
                    .map(str::to_owned),
            };
            let key = self.layout.tar_key(self.id, &part);
            let upload = self.bucket.multipart(
                &key,
                &self.options.tags,
                part_size(self.options),
                self.options.jobs,
            )?;
            self.written = Arc::new(AtomicU64::new(0));
            let counting = Counting {
                inner: upload,
                count: Arc::clone(&self.written),
                throttle: self.throttle.clone(),
            };
            let encoder = match self.options.compression {
                None => Encoder::plain(counting),
                Some(c) => c.writer(counting, CompressionLevel::Level(tar_level(c)))?,
            };
            let mut builder = tar::Builder::new(encoder);
            builder.mode(tar::HeaderMode::Complete);
            builder.follow_symlinks(false);
            self.builder = Some(builder);
            self.objects.push(key);
        }
        Ok(self.builder.as_mut().expect("opened above"))
    }

    /// Records a file written into the tar for the manifest.
    fn record(&mut self, name: &str, (size, blake3): (u64, String)) {
        self.sums.push(FileSum {
            tree: manifest::tree_name(&self.tree),
            path: manifest::member_path(name).to_owned(),
            size,
            blake3,
        });
    }

    /// Ends the current part: the tar's end, the compression's end, the
    /// upload's completion.
    fn close(&mut self) -> Result<()> {
        let Some(builder) = self.builder.take() else {
            return Ok(());
        };
        let key = self.objects.last().cloned().unwrap_or_default();
        let encoder = builder
            .into_inner()
            .map_err(|e| Error::Read(key.clone(), e))?;
        let counting = encoder.finish().map_err(|e| Error::Read(key.clone(), e))?;
        self.bytes += counting.inner.finish()?;
        Ok(())
    }
}

/// Barman's levels for tar compression: tarfile's stream mode (gzip and
/// bzip2 at 9), zstd at 3; lz4 and snappy take none.
fn tar_level(compression: Compression) -> i32 {
    match compression {
        Compression::Gzip | Compression::Bzip2 => 9,
        Compression::Zstd => 3,
        _ => 0,
    }
}

/// Adds the listed tree rooted at `root` (PGDATA or a tablespace) to
/// `stream`, names relative to `root`; PGDATA's `global/pg_control` is
/// left for the end.
fn add_tree(
    stream: &mut TarStream<'_>,
    root: &Path,
    is_data: bool,
    major_prefix: Option<&str>,
) -> Result<()> {
    let exclusions = if is_data {
        Exclusions::barman_rsync()
    } else {
        Exclusions::none()
    };
    let entries = list_tree(root, "t", &exclusions)
        .map_err(|e| Error::Unpack(root.display().to_string(), io::Error::other(e.to_string())))?;
    for entry in entries {
        let rel = entry
            .path
            .as_str()
            .strip_prefix('t')
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        if !is_data {
            // A tablespace tar holds only the PG_<major>_* directories.
            if rel.is_empty() || major_prefix.is_some_and(|p| !rel.starts_with(p)) {
                continue;
            }
        }
        if is_data
            && (rel == "global/pg_control"
                || (rel.starts_with("pg_tblspc/")
                    && matches!(entry.kind, EntryKind::Symlink { .. })))
        {
            continue;
        }
        let name = if rel.is_empty() {
            ".".to_owned()
        } else if is_data && !rel.contains('/') {
            format!("./{rel}")
        } else {
            rel.clone()
        };
        let path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        append(
            stream,
            &name,
            &path,
            &entry.kind,
            entry.mode,
            entry.mtime.secs,
        )?;
    }
    Ok(())
}

/// Appends one entry (a file read as it is now: a file that vanished is
/// skipped, one that shrank is padded with NULs up to its listed size).
fn append(
    stream: &mut TarStream<'_>,
    name: &str,
    path: &Path,
    kind: &EntryKind,
    mode: u32,
    mtime: i64,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_mtime(u64::try_from(mtime).unwrap_or(0));
    header.set_uid(0);
    header.set_gid(0);
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
    }
    let key = stream.objects.last().cloned().unwrap_or_default();
    let io_err = |e: io::Error| Error::Read(format!("{} (into {key})", path.display()), e);
    match kind {
        EntryKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            stream
                .builder()?
                .append_data(&mut header, name, io::empty())
                .map_err(io_err)?;
        }
        EntryKind::Symlink { target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            stream
                .builder()?
                .append_link(&mut header, name, target)
                .map_err(io_err)?;
        }
        EntryKind::File => {
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(e)),
            };
            let size = file.metadata().map_err(io_err)?.len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            let mut padded = HashingReader::new(file.take(size).chain(io::repeat(0)).take(size));
            stream
                .builder()?
                .append_data(&mut header, name, &mut padded)
                .map_err(io_err)?;
            stream.record(name, padded.finish());
        }
    }
    Ok(())
}

/// Appends `backup_label` as Barman does (mode 0644, mtime 0, uid 0, the
/// group of PGDATA).
fn append_label(stream: &mut TarStream<'_>, label: &str, data_gid: u64) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(data_gid);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(label.len() as u64);
    let key = stream.objects.last().cloned().unwrap_or_default();
    let mut content = HashingReader::new(label.as_bytes());
    stream
        .builder()?
        .append_data(&mut header, "backup_label", &mut content)
        .map_err(|e| Error::Read(key, e))?;
    stream.record("backup_label", content.finish());
    Ok(())
}

/// Uploads `info` as `backup.info`.
fn upload_info(
    bucket: &Bucket,
    layout: &Layout,
    info: &BackupInfo,
    tags: &[(String, String)],
) -> Result<()> {
    let text = info.to_file_string();
    bucket
        .put(
            &layout.backup_info_key(info.backup_id().as_ref()),
            &mut text.as_bytes(),
            tags,
        )
        .map(drop)
}

/// Takes a backup of the server `pg` is connected to (as a superuser or a
/// role with the backup functions), reading its files at `facts.data_directory`.
///
/// # Errors
/// [`Error::Backup`] when PostgreSQL refuses or a file cannot be read,
/// [`Error::Store`] when an upload fails; `backup.info` is then uploaded
/// FAILED with the error when the backup had started.
pub fn backup(
    bucket: &Bucket,
    layout: &Layout,
    pg: &PgConnection,
    options: &BackupOptions,
) -> Result<BackupReport> {
    let pg_err = |e: barman_core::Error| Error::Backup(e.to_string());
    let facts = pgside::server_facts(pg).map_err(pg_err)?;
    if let Some(why) = facts.backup_obstacle(false) {
        return Err(Error::Backup(why));
    }
    let begin = Zoned::now();
    let id_text = begin.strftime("%Y%m%dT%H%M%S").to_string();
    let id: BackupId = id_text.parse().map_err(Error::Catalog)?;
    let mut info = BackupInfo::new("cloud", id.clone());
    fill_facts(&mut info, &facts, options)?;
    let label = format!("Barman backup cloud {id_text}");
    let start = pgside::start_backup(pg, facts.version, &label, options.immediate_checkpoint)
        .map_err(pg_err)?;
    info.set_status(BackupStatus::Started);
    info.set_begin_time(Some(&begin));
    let size = WalSegmentSize::new(facts.wal_segment_size).unwrap_or(WalSegmentSize::DEFAULT);
    upload_info(bucket, layout, &info, &options.tags)?;
    let started = Instant::now();
    match copy_and_stop(bucket, layout, pg, &facts, options, &id_text) {
        Ok((objects, bytes, stop)) => {
            let facts_label = pgside::parse_label(&stop.label).map_err(pg_err)?;
            let timeline: TimelineId = facts_label.timeline;
            let (begin_wal, begin_offset) = pgside::wal_position(timeline, start, size);
            let (end_wal, end_offset) = pgside::wal_position(timeline, stop.lsn, size);
            info.set_backup_label(Some(&stop.label));
            info.set_begin_wal(Some(&begin_wal.to_string()))
                .map_err(Error::Catalog)?;
            info.set_begin_xlog(Some(&start.to_string()))
                .map_err(Error::Catalog)?;
            info.set_begin_offset(Some(begin_offset));
            info.set_end_wal(Some(&end_wal.to_string()))
                .map_err(Error::Catalog)?;
            info.set_end_xlog(Some(&stop.lsn.to_string()))
                .map_err(Error::Catalog)?;
            info.set_end_offset(Some(end_offset));
            info.set_timeline(Some(timeline.get()));
            info.set_end_time(Some(&Zoned::now()));
            let total = started.elapsed().as_secs_f64();
            info.set_copy_stats(Some(&copy_stats(total, options.jobs, &facts)));
            info.set_status(BackupStatus::Done);
            upload_info(bucket, layout, &info, &options.tags)?;
            Ok(BackupReport {
                backup_id: id_text,
                objects,
                bytes,
            })
        }
        Err(e) => {
            let first_line = e.to_string().lines().next().unwrap_or_default().to_owned();
            info.set_status(BackupStatus::Failed);
            info.set_end_time(Some(&Zoned::now()));
            let _ = info.set_error(Some(&format!("failure uploading data ({first_line})")));
            // Told to the store even if it was briefly unreachable (the
            // failure may be that): barman-cloud leaves it STARTED then.
            if let Err(info_error) =
                retry_cleanup(|| upload_info(bucket, layout, &info, &options.tags))
            {
                tracing::warn!("could not upload the FAILED backup.info: {info_error}");
            }
            // Leave no backup open on the server.
            let _ = pgside::stop_backup(pg, facts.version);
            Err(e)
        }
    }
}

/// Copies the tablespaces and PGDATA, stops the backup and appends its
/// label; the objects, the bytes and the stop result.
fn copy_and_stop(
    bucket: &Bucket,
    layout: &Layout,
    pg: &PgConnection,
    facts: &ServerFacts,
    options: &BackupOptions,
    id: &str,
) -> Result<(Vec<String>, u64, pgside::StopResult)> {
    let mut uploaded = Uploaded::new();
    let major = format!("PG_{}_", major_of(facts.version));
    let throttle = throttle_of(options);
    let stream_of = |tree: Tree| {
        let mut stream = TarStream::new(bucket, layout, id, tree, options);
        stream.throttle.clone_from(&throttle);
        stream.keepalive = options.keepalive.map(|every| Keepalive {
            pg,
            every,
            last: Instant::now(),
        });
        stream
    };
    for t in &facts.tablespaces {
        let mut stream = stream_of(Tree::Tablespace(t.oid));
        add_tree(&mut stream, Path::new(&t.location), false, Some(&major))?;
        uploaded.absorb(stream)?;
    }
    let data = PathBuf::from(&facts.data_directory);
    let mut stream = stream_of(Tree::Data);
    let meta = add_data(&mut stream, &data)?;
    let stop = pgside::stop_backup(pg, facts.version).map_err(|e| Error::Backup(e.to_string()))?;
    let _ = pg.execute(&format!(
        "SELECT pg_catalog.pg_create_restore_point('barman_{id}')"
    ));
    let _ = pg.switch_wal();
    append_label(&mut stream, &stop.label, u64::from(meta.gid()))?;
    uploaded.absorb(stream)?;
    // The checksum manifest, before backup.info says DONE.
    let (objects, bytes) = uploaded.finish(bucket, layout, id, &options.tags)?;
    Ok((objects, bytes, stop))
}

/// What the tar streams of a backup uploaded: their objects, bytes and
/// file checksums.
struct Uploaded {
    objects: Vec<String>,
    bytes: u64,
    sums: Manifest,
}

impl Uploaded {
    fn new() -> Self {
        Self {
            objects: Vec::new(),
            bytes: 0,
            sums: Manifest::new(),
        }
    }

    /// Closes `stream` (a tree's tars: at least one part, even for an
    /// empty tree) and keeps what it uploaded.
    fn absorb(&mut self, mut stream: TarStream<'_>) -> Result<()> {
        if stream.objects.is_empty() {
            stream.builder()?;
        }
        stream.close()?;
        self.objects.append(&mut stream.objects);
        self.sums.files.append(&mut stream.sums);
        self.bytes += stream.bytes;
        Ok(())
    }

    /// Uploads the checksum manifest; the objects and bytes uploaded.
    fn finish(
        mut self,
        bucket: &Bucket,
        layout: &Layout,
        id: &str,
        tags: &[(String, String)],
    ) -> Result<(Vec<String>, u64)> {
        let key = layout.manifest_key(id);
        bucket.put(&key, &mut self.sums.to_json().as_bytes(), tags)?;
        self.objects.push(key);
        Ok((self.objects, self.bytes))
    }
}

/// Adds PGDATA at `data` to `stream`, `global/pg_control` last; the
/// metadata of pg_control.
fn add_data(stream: &mut TarStream<'_>, data: &Path) -> Result<std::fs::Metadata> {
    add_tree(stream, data, true, None)?;
    append_file(stream, "global/pg_control", &data.join("global/pg_control"))
}

/// Appends the regular file `path` as `name` with its mode and mtime; its
/// metadata.
fn append_file(stream: &mut TarStream<'_>, name: &str, path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Read(path.display().to_string(), e))?;
    append(
        stream,
        name,
        path,
        &EntryKind::File,
        meta.permissions().mode() & 0o7777,
        meta.mtime(),
    )?;
    Ok(meta)
}

/// The largest server `backup.info` read by the hook mode.
const MAX_SERVER_INFO_BYTES: u64 = 1 << 20;

/// Barman's hook mode (`barman-cloud-backup` as a `post_backup_script`):
/// uploads the finished backup `backup_id` of a Barman or barman-rs server,
/// its PGDATA at `backup_dir/data` and each tablespace at
/// `backup_dir/<oid>`, as a cloud backup (tars as [`backup`] writes them,
/// `global/pg_control` last, the checksum manifest), then the server's
/// `backup.info` at `info_path` verbatim, as barman-cloud does.
///
/// # Errors
/// [`Error::Backup`] when the backup.info cannot be read or the backup is
/// compressed (Barman refuses those); [`Error::Store`] / [`Error::Read`]
/// when an upload or a file fails. Nothing is marked FAILED in the bucket
/// (the backup.info belongs to the server's backup, as in Barman): a failed
/// upload leaves no backup.info, so no catalog lists it, and its multipart
/// uploads are aborted.
pub fn upload_existing(
    bucket: &Bucket,
    layout: &Layout,
    backup_dir: &Path,
    info_path: &Path,
    backup_id: &str,
    options: &BackupOptions,
) -> Result<BackupReport> {
    let mut text = String::new();
    File::open(info_path)
        .and_then(|f| f.take(MAX_SERVER_INFO_BYTES).read_to_string(&mut text))
        .map_err(|e| Error::Read(info_path.display().to_string(), e))?;
    let id: BackupId = backup_id
        .parse()
        .map_err(|_| Error::Backup(format!("`{backup_id}` is not a backup id")))?;
    let info = BackupInfo::parse(&text, id, info_path).map_err(Error::Catalog)?;
    if info.compression().is_some_and(|c| c != "None") {
        return Err(Error::Backup(
            "Compressed backups are not supported when running as a hook script".into(),
        ));
    }
    let version = info.version().map_err(Error::Catalog)?.unwrap_or(0);
    let major = format!("PG_{}_", major_of(version));
    let throttle = throttle_of(options);
    let mut uploaded = Uploaded::new();
    let tablespaces = info
        .tablespaces()
        .map_err(Error::Catalog)?
        .unwrap_or_default();
    for t in &tablespaces {
        let mut stream =
            TarStream::new(bucket, layout, backup_id, Tree::Tablespace(t.oid), options);
        stream.throttle.clone_from(&throttle);
        add_tree(
            &mut stream,
            &backup_dir.join(t.oid.to_string()),
            false,
            Some(&major),
        )?;
        uploaded.absorb(stream)?;
    }
    let data = backup_dir.join("data");
    let data =
        std::fs::canonicalize(&data).map_err(|e| Error::Read(data.display().to_string(), e))?;
    let mut stream = TarStream::new(bucket, layout, backup_id, Tree::Data, options);
    stream.throttle.clone_from(&throttle);
    let meta = add_data(&mut stream, &data)?;
    // The backup's own label (which the PGDATA listing leaves out: a live
    // PGDATA's belongs to another backup). Barman's server backups hold it
    // in data/, as barman-rs's do; a label only in the backup.info is
    // taken from there. A cloud backup needs it in the tar either way.
    let own_label = data.join("backup_label");
    if std::fs::symlink_metadata(&own_label).is_ok_and(|m| m.is_file()) {
        append_file(&mut stream, "backup_label", &own_label)?;
    } else {
        let label = info
            .backup_label()
            .map_err(Error::Catalog)?
            .ok_or_else(|| {
                Error::Backup(format!(
                    "{}: no backup_label, neither in data/ nor in its backup.info",
                    backup_dir.display()
                ))
            })?;
        append_label(&mut stream, &label, u64::from(meta.gid()))?;
    }
    uploaded.absorb(stream)?;
    let (objects, bytes) = uploaded.finish(bucket, layout, backup_id, &options.tags)?;
    // The server's backup.info, as it is.
    bucket.put(
        &layout.backup_info_key(backup_id),
        &mut text.as_bytes(),
        &options.tags,
    )?;
    Ok(BackupReport {
        backup_id: backup_id.to_owned(),
        objects,
        bytes,
    })
}

/// The `--max-bandwidth` throttle of a backup, if any.
fn throttle_of(options: &BackupOptions) -> Option<Arc<Throttle>> {
    options
        .max_bandwidth
        .filter(|&b| b > 0)
        .map(|bytes_per_second| {
            Arc::new(Throttle {
                bytes_per_second,
                start: Instant::now(),
                sent: AtomicU64::new(0),
            })
        })
}

/// `server_version_num` → the major of `PG_<major>_<catversion>`.
fn major_of(version: u32) -> String {
    if version >= 100_000 {
        (version / 10_000).to_string()
    } else {
        format!("{}.{}", version / 10_000, version / 100 % 100)
    }
}

/// The fields a cloud backup.info takes from the server.
fn fill_facts(info: &mut BackupInfo, facts: &ServerFacts, options: &BackupOptions) -> Result<()> {
    let c = Error::Catalog;
    info.set_version(Some(facts.version));
    info.set_systemid(Some(&facts.systemid.to_string()))
        .map_err(c)?;
    info.set_pgdata(Some(&facts.data_directory)).map_err(c)?;
    info.set_config_file(facts.config_file.as_deref())
        .map_err(c)?;
    info.set_hba_file(facts.hba_file.as_deref()).map_err(c)?;
    info.set_ident_file(facts.ident_file.as_deref())
        .map_err(c)?;
    info.set_data_checksums(facts.data_checksums.as_deref())
        .map_err(c)?;
    info.set_cluster_size(facts.cluster_size);
    info.set_xlog_segment_size(facts.wal_segment_size);
    if !facts.tablespaces.is_empty() {
        info.set_tablespaces(&facts.tablespaces);
    }
    if let Some(name) = &options.name {
        info.set_backup_name(Some(name)).map_err(c)?;
    }
    Ok(())
}

/// Barman's `copy_stats` of a cloud backup.
fn copy_stats(total: f64, jobs: usize, facts: &ServerFacts) -> PyValue {
    let f = |v: f64| PyValue::Float(PyFloat::new((v * 1e6).round() / 1e6));
    let s = |k: &str| PyValue::Str(k.to_owned());
    let mut per_item = vec![];
    for t in &facts.tablespaces {
        per_item.push((s(&t.oid.to_string()), PyValue::Int(0)));
    }
    per_item.push((s("data"), PyValue::Int(0)));
    PyValue::Dict(vec![
        (s("total_time"), f(total)),
        (
            s("number_of_workers"),
            PyValue::Int(i128::try_from(jobs).unwrap_or(1)),
        ),
        (s("analysis_time"), PyValue::Int(0)),
        (s("analysis_time_per_item"), PyValue::Dict(per_item.clone())),
        (
            s("copy_time_per_item"),
            PyValue::Dict(
                per_item
                    .iter()
                    .map(|(k, _)| (k.clone(), f(total)))
                    .collect(),
            ),
        ),
        (
            s("serialized_copy_time_per_item"),
            PyValue::Dict(
                per_item
                    .iter()
                    .map(|(k, _)| (k.clone(), f(total)))
                    .collect(),
            ),
        ),
        (s("copy_time"), f(total)),
        (s("serialized_copy_time"), f(total)),
    ])
}
