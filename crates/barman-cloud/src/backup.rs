//! `barman-cloud-backup`: a concurrent base backup of a running PostgreSQL
//! streamed into a bucket in Barman's layout and formats (BARMAN-CLOUD.md
//! §5–§6): `backup.info` uploaded STARTED, one tar per tablespace and the
//! PGDATA tar (`global/pg_control` then `backup_label` last), each a
//! compressed stream split into parts beyond `-S`, uploaded as multipart
//! uploads with `-J` parts in flight, then `backup.info` DONE (or FAILED
//! with the error).
//!
//! The tars are barman-cloud's, header for header (the `tarfile` module):
//! Python tarfile's PAX format, members in the order and with the names,
//! owners and exclusions of barman-cloud's directory walk (the `walk` module),
//! the same compression framing.
//!
//! Nothing is staged on disk and memory stays within `-J` parts whatever
//! the database size (barman-cloud stages each part in temporary files).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use barman_catalog::{BackupId, BackupInfo, BackupStatus, PyFloat, PyValue};
use barman_core::backup::pgside::{self, ServerFacts};
use barman_pg::postgres::PgConnection;
use barman_wal::{Compression, TimelineId, WalSegmentSize};
use jiff::Zoned;

use crate::layout::{Layout, TarPart, Tree};
use crate::manifest::{self, FileSum, Manifest};
use crate::store::{Bucket, MultipartWriter, retry_cleanup};
use crate::tarfile::{Kind, Member, Mtime, TarEncoder, TarWriter};
use crate::walk::{Found, Names, Rules, Walk, gettarinfo};
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
    /// The objects uploaded: the tars and the checksum manifest.
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

/// A part's tar: the PAX writer over the compression over the upload.
type PartWriter<'b> = TarWriter<TarEncoder<Counting<MultipartWriter<'b>>>>;

/// One tree's tar objects: parts opened and closed as they fill.
struct TarStream<'b> {
    bucket: &'b Bucket,
    layout: &'b Layout,
    id: &'b str,
    tree: Tree,
    options: &'b BackupOptions,
    part: u32,
    writer: Option<PartWriter<'b>>,
    written: Arc<AtomicU64>,
    objects: Vec<String>,
    bytes: u64,
    throttle: Option<Arc<Throttle>>,
    keepalive: Option<Keepalive<'b>>,
    names: Names,
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
            writer: None,
            written: Arc::new(AtomicU64::new(0)),
            objects: Vec::new(),
            bytes: 0,
            throttle: None,
            keepalive: None,
            names: Names::default(),
            sums: Vec::new(),
        }
    }

    /// The writer of the current part, a new part when the current one
    /// holds more than `-S` (barman-cloud's `_get_tar`, called before each
    /// member: a member never spans parts).
    fn writer(&mut self) -> Result<&mut PartWriter<'b>> {
        if let Some(keepalive) = &mut self.keepalive {
            keepalive.tick();
        }
        let full = self.writer.is_some()
            && self.written.load(Ordering::Relaxed) > self.options.max_archive_size;
        if full {
            self.close()?;
            self.part += 1;
        }
        if self.writer.is_none() {
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
            // tarfile's gzip header carries `int(time.time())`.
            let now = jiff::Timestamp::now().as_second();
            let encoder = TarEncoder::new(
                self.options.compression,
                counting,
                u32::try_from(now).unwrap_or(0),
            )
            .map_err(|why| Error::Backup(why.to_owned()))?;
            self.writer = Some(TarWriter::new(encoder));
            self.objects.push(key);
        }
        Ok(self.writer.as_mut().expect("opened above"))
    }

    /// The key of the current part (for error messages).
    fn key(&self) -> String {
        self.objects.last().cloned().unwrap_or_default()
    }

    /// Ends the current part: the tar's end, the compression's end, the
    /// upload's completion.
    fn close(&mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let key = self.key();
        let encoder = writer.finish().map_err(|e| Error::Read(key.clone(), e))?;
        let counting = encoder.finish().map_err(|e| Error::Read(key.clone(), e))?;
        self.bytes += counting.inner.finish()?;
        Ok(())
    }

    /// Records a file written into the tar (its size and checksum, when it
    /// carried data) for the manifest.
    fn record(&mut self, name: &[u8], written: Option<(u64, String)>) {
        if let Some((size, blake3)) = written {
            self.sums.push(FileSum {
                tree: manifest::tree_name(&self.tree),
                path: manifest::member_path(&String::from_utf8_lossy(name)).to_owned(),
                size,
                blake3,
            });
        }
    }

    /// `tar.add(path, arcname, recursive=False)`: the member as `lstat`
    /// describes it (a regular file read as it is now: padded with NULs
    /// when it shrank, cut when it grew). `false` when the file vanished
    /// (barman-cloud skips it); a socket is left out, as tarfile does.
    fn add(&mut self, path: &Path, arcname: Vec<u8>) -> Result<bool> {
        self.writer()?;
        let key = self.key();
        let io_err = |e: io::Error| Error::Read(format!("{} (into {key})", path.display()), e);
        let Found {
            mut member,
            inode,
            nlink,
        } = match gettarinfo(path, arcname, &mut self.names) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(e)),
        };
        let writer = self.writer.as_mut().expect("opened above");
        writer.link_or_remember(&mut member, inode, nlink);
        if member.kind == Kind::Regular {
            let mut file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io_err(e)),
            };
            let written = writer.append(&member, Some(&mut file)).map_err(io_err)?;
            self.record(&member.name, written);
        } else {
            writer.append(&member, None).map_err(io_err)?;
        }
        Ok(true)
    }
}

/// barman-cloud's `upload_directory`: `src` walked top-down in directory
/// order; each directory the rules allow (`.` for `src`, then names
/// relative to it) is added, then its files the rules allow (`./name` at
/// the top); a directory left out or vanished leaves out its files but
/// not its subdirectories. Vanished files are skipped.
fn upload_directory(stream: &mut TarStream<'_>, src: &Path, rules: &Rules) -> Result<()> {
    for dir in Walk::new(src) {
        let dir = dir.map_err(|(path, e)| Error::Read(path.display().to_string(), e))?;
        if !rules.allowed(&dir.rel, true) {
            continue;
        }
        if !stream.add(&dir.path, dir.rel.clone())? {
            continue;
        }
        for name in &dir.files {
            let rel = dir.child_rel(name);
            if rules.allowed(&rel, false) {
                stream.add(&dir.path.join(name), rel)?;
            }
        }
    }
    Ok(())
}

/// PGDATA at `data` (without the `excluded` paths) then
/// `global/pg_control`, as barman-cloud's `_backup_data_files`.
fn add_data(stream: &mut TarStream<'_>, data: &Path, excluded: Vec<String>) -> Result<()> {
    upload_directory(stream, data, &Rules::pgdata(excluded))?;
    add_file(
        stream,
        &data.join("global/pg_control"),
        b"global/pg_control",
    )
}

/// `tar.add(path, arcname)` of a file that must be there (`add_file`).
fn add_file(stream: &mut TarStream<'_>, path: &Path, arcname: &[u8]) -> Result<()> {
    if stream.add(path, arcname.to_vec())? {
        Ok(())
    } else {
        Err(Error::Read(
            path.display().to_string(),
            io::Error::from(io::ErrorKind::NotFound),
        ))
    }
}

/// Appends `backup_label` as barman-cloud does (`add_fileobj` of a bare
/// `TarInfo`): mode 0644, mtime 0 (an int: no PAX header), uid 0, the
/// group of PGDATA (Barman writes the uid into `gid`, then the gid over
/// it), no user or group name.
fn append_label(stream: &mut TarStream<'_>, label: &str, data_gid: u64) -> Result<()> {
    let member = Member {
        name: b"backup_label".to_vec(),
        kind: Kind::Regular,
        mode: 0o644,
        uid: 0,
        gid: data_gid,
        size: label.len() as u64,
        mtime: Mtime::Int(0),
        uname: Vec::new(),
        gname: Vec::new(),
    };
    stream.writer()?;
    let key = stream.key();
    let written = stream
        .writer
        .as_mut()
        .expect("opened above")
        .append(&member, Some(&mut label.as_bytes()))
        .map_err(|e| Error::Read(key, e))?;
    stream.record(&member.name, written);
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
    // Each tablespace's `PG_<major>_*` directories (a tablespace with
    // nothing to add gets no tar, as with barman-cloud).
    let tablespace_rules = Rules::tablespace(&major_of(facts.version));
    for t in &facts.tablespaces {
        let mut stream = stream_of(Tree::Tablespace(t.oid));
        upload_directory(&mut stream, Path::new(&t.location), &tablespace_rules)?;
        uploaded.absorb(stream)?;
    }
    // PGDATA (its target when it is a link), without the tablespaces.
    let pgdata = facts.data_directory.as_str();
    let mut data = PathBuf::from(pgdata);
    if std::fs::symlink_metadata(&data).is_ok_and(|m| m.file_type().is_symlink()) {
        data = std::fs::canonicalize(&data).map_err(|e| Error::Read(pgdata.to_owned(), e))?;
    }
    let mut excluded = Vec::new();
    for t in &facts.tablespaces {
        if let Some(inside) = t.location.strip_prefix(pgdata)
            && inside.starts_with('/')
        {
            excluded.push(inside.to_owned());
        }
        excluded.push(format!("/pg_tblspc/{}", t.oid));
    }
    let mut stream = stream_of(Tree::Data);
    add_data(&mut stream, &data, excluded)?;
    // The configuration files outside PGDATA, at the tar's top under their
    // base names (a missing ident file is no error, as for PostgreSQL).
    for (file, optional) in [
        (&facts.config_file, false),
        (&facts.hba_file, false),
        (&facts.ident_file, true),
    ] {
        let Some(file) = file.as_deref().filter(|f| !f.is_empty()) else {
            continue;
        };
        let path = Path::new(file);
        if file.starts_with(pgdata) || (optional && !path.exists()) {
            continue;
        }
        let base = path
            .file_name()
            .map(std::os::unix::ffi::OsStrExt::as_bytes)
            .unwrap_or_default();
        add_file(&mut stream, path, base)?;
    }
    let stop = pgside::stop_backup(pg, facts.version).map_err(|e| Error::Backup(e.to_string()))?;
    let _ = pg.execute(&format!(
        "SELECT pg_catalog.pg_create_restore_point('barman_{id}')"
    ));
    let _ = pg.switch_wal();
    let data_gid = std::fs::metadata(pgdata)
        .map_err(|e| Error::Read(pgdata.to_owned(), e))?
        .gid();
    append_label(&mut stream, &stop.label, u64::from(data_gid))?;
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

    /// Closes `stream` (a tree with nothing to add has no tar, as with
    /// barman-cloud) and keeps what it uploaded.
    fn absorb(&mut self, mut stream: TarStream<'_>) -> Result<()> {
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

/// The largest server `backup.info` read by the hook mode.
const MAX_SERVER_INFO_BYTES: u64 = 1 << 20;

/// Barman's hook mode (`barman-cloud-backup` as a `post_backup_script`):
/// uploads the finished backup `backup_id` of a Barman or barman-rs server,
/// its PGDATA at `backup_dir/data` and each tablespace at
/// `backup_dir/<oid>` (as barman-cloud's `CloudBackupUploaderBarman`: the
/// same walk and rules as a live backup, `global/pg_control` last), the
/// checksum manifest, then the server's `backup.info` at `info_path`
/// verbatim.
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
    let throttle = throttle_of(options);
    let mut uploaded = Uploaded::new();
    let tablespaces = info
        .tablespaces()
        .map_err(Error::Catalog)?
        .unwrap_or_default();
    let tablespace_rules = Rules::tablespace(&major_of(version));
    for t in &tablespaces {
        let mut stream =
            TarStream::new(bucket, layout, backup_id, Tree::Tablespace(t.oid), options);
        stream.throttle.clone_from(&throttle);
        upload_directory(
            &mut stream,
            &backup_dir.join(t.oid.to_string()),
            &tablespace_rules,
        )?;
        uploaded.absorb(stream)?;
    }
    let data = backup_dir.join("data");
    let data =
        std::fs::canonicalize(&data).map_err(|e| Error::Read(data.display().to_string(), e))?;
    let excluded = tablespaces
        .iter()
        .map(|t| format!("/pg_tblspc/{}", t.oid))
        .collect::<Vec<_>>();
    let mut stream = TarStream::new(bucket, layout, backup_id, Tree::Data, options);
    stream.throttle.clone_from(&throttle);
    add_data(&mut stream, &data, excluded)?;
    // The backup's own label: Barman's and barman-rs's server backups hold
    // it in data/ (the walk added it); one only in the backup.info is
    // taken from there. A cloud backup needs it in the tar either way.
    if !data.join("backup_label").is_file() {
        let label = info
            .backup_label()
            .map_err(Error::Catalog)?
            .ok_or_else(|| {
                Error::Backup(format!(
                    "{}: no backup_label, neither in data/ nor in its backup.info",
                    backup_dir.display()
                ))
            })?;
        let gid = std::fs::metadata(&data)
            .map_err(|e| Error::Read(data.display().to_string(), e))?
            .gid();
        append_label(&mut stream, &label, u64::from(gid))?;
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
