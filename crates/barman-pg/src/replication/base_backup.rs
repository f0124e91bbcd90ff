//! `BASE_BACKUP`: the 15+ form (one CopyOut stream of typed messages) and
//! the older one (one CopyOut per tablespace, then one for the manifest),
//! with the tar archives unpacked as they stream into a [`BaseBackupSink`].
//! Nothing is buffered beyond one CopyData message.

use std::cell::Cell;
use std::io::{self, Read};
use std::time::Duration;

use barman_wal::Lsn;
use bytes::{Buf, Bytes};
use postgres_protocol::message::backend::Message;

use super::wire::{self, Frame};
use super::{Error, ReplicationConnection, Result, parse_column, server_error, text, unexpected};

/// How long to wait for the server to become ready again after it failed
/// a backup.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `BASE_BACKUP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBackupOptions {
    /// The backup label (in `backup_label` and `pg_stat_progress_basebackup`).
    pub label: String,
    /// Request an immediate checkpoint (`CHECKPOINT 'fast'`) instead of a
    /// spread one.
    pub fast: bool,
    /// Server-side rate limit in kB/s (`MAX_RATE`, 32 to 1048576); `None`
    /// or 0: unlimited.
    pub max_rate_kbps: Option<u64>,
    /// Ask for a `backup_manifest` (PostgreSQL 13+), given to
    /// [`BaseBackupSink::manifest`].
    pub manifest: bool,
    /// Ask the server to compute tablespace sizes first (`PROGRESS`), so
    /// [`BaseBackupSink::progress`] gets a total.
    pub progress: bool,
    /// Include the WAL needed for consistency in the main archive (`WAL`).
    pub wal: bool,
    /// Wait for the last WAL segment to be archived (`WAIT`, the server's
    /// default); `false` sends `WAIT false` (`NOWAIT` before 15).
    pub wait: bool,
    /// Send a `tablespace_map` file instead of `pg_tblspc` symlinks
    /// (`TABLESPACE_MAP`).
    pub tablespace_map: bool,
    /// An incremental backup (`INCREMENTAL`, PostgreSQL 17+) relative to
    /// the manifest sent first with
    /// [`upload_manifest`](ReplicationConnection::upload_manifest):
    /// relation files then come as `INCREMENTAL.<name>` files holding the
    /// blocks changed since that backup.
    pub incremental: bool,
    /// Server-side compression of the archives (PostgreSQL 15+); see
    /// [`ServerCompression`].
    pub compression: Option<ServerCompression>,
}

/// Server-side compression of the archives: `COMPRESSION` and
/// `COMPRESSION_DETAIL` (PostgreSQL 15+). The archives arrive compressed
/// (named `base.tar.gz`, ...): a sink that wants their bytes
/// ([`BaseBackupSink::wants_archive_bytes`]) gets them as sent; otherwise
/// they are decompressed and unpacked as usual. The manifest is never
/// compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerCompression {
    /// The algorithm: gzip, lz4 or zstd (the others are refused).
    pub method: barman_wal::Compression,
    /// The level (`level=N`), else the server's default.
    pub level: Option<i32>,
    /// Worker threads (`workers=N`, zstd).
    pub workers: Option<u32>,
}

impl ServerCompression {
    /// The `COMPRESSION` and `COMPRESSION_DETAIL` options.
    fn options(&self) -> Result<Vec<String>> {
        use barman_wal::Compression as C;
        let method = match self.method {
            C::Gzip => "gzip",
            C::Lz4 => "lz4",
            C::Zstd => "zstd",
            other => {
                return Err(Error::Unsupported(format!(
                    "server-side compression with {other}"
                )));
            }
        };
        let mut out = vec![format!("COMPRESSION '{method}'")];
        let mut detail = Vec::new();
        if let Some(level) = self.level {
            detail.push(format!("level={level}"));
        }
        if let Some(workers) = self.workers {
            detail.push(format!("workers={workers}"));
        }
        if !detail.is_empty() {
            out.push(format!("COMPRESSION_DETAIL '{}'", detail.join(",")));
        }
        Ok(out)
    }
}

impl Default for BaseBackupOptions {
    fn default() -> Self {
        Self {
            label: "barman-rs base backup".to_owned(),
            fast: false,
            max_rate_kbps: None,
            manifest: true,
            progress: true,
            wal: false,
            wait: true,
            tablespace_map: true,
            incremental: false,
            compression: None,
        }
    }
}

/// A tablespace of the backup (the main data directory has no oid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablespaceInfo {
    /// The tablespace oid; `None` for the main data directory.
    pub oid: Option<u32>,
    /// The tablespace's directory on the server; `None` for the main data directory.
    pub location: Option<String>,
    /// Its size in kB when `progress` was asked for.
    pub size_kb: Option<u64>,
}

/// What `BASE_BACKUP` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBackupResult {
    /// Where the backup starts (its checkpoint's redo position).
    pub start_lsn: Lsn,
    /// The timeline at the start.
    pub start_timeline: u32,
    /// Where the backup ends: WAL up to here is needed for consistency.
    pub end_lsn: Lsn,
    /// The timeline at the end.
    pub end_timeline: u32,
    /// The tablespaces, main data directory included.
    pub tablespaces: Vec<TablespaceInfo>,
    /// Bytes received (tar streams and manifest).
    pub bytes: u64,
}

/// A regular file of a backup archive: its name and the tar header's
/// fields (the bytes come with it, see [`BaseBackupSink::file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveFile<'a> {
    /// The path in the archive.
    pub path: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Its mode, as the server's tar header has it.
    pub mode: u32,
    /// Its modification time, in seconds since the epoch.
    pub mtime: i64,
}

/// Receives a base backup as it streams: one archive per tablespace, each
/// a sequence of entries, then the manifest.
///
/// Paths are relative to the archive's root (the data directory or the
/// tablespace directory), without a leading `./` or trailing `/`. An error
/// aborts the backup; the connection is then unusable (the server is still
/// sending).
pub trait BaseBackupSink {
    /// The backup started at `start` on `timeline`; these are the
    /// tablespaces that will follow (sizes when `progress` was asked for).
    fn started(
        &mut self,
        start: Lsn,
        timeline: u32,
        tablespaces: &[TablespaceInfo],
    ) -> io::Result<()> {
        let _ = (start, timeline, tablespaces);
        Ok(())
    }

    /// An archive begins: `tablespace` is `None` for the main data
    /// directory, else the oid, with its `location` on the server.
    fn begin_archive(&mut self, tablespace: Option<u32>, location: Option<&str>) -> io::Result<()>;

    /// A regular file: exactly `file.size` bytes can be read from `data`
    /// (whatever is not read is skipped).
    fn file(&mut self, file: ArchiveFile<'_>, data: &mut dyn Read) -> io::Result<()>;

    /// A directory.
    fn directory(&mut self, path: &str, mode: u32) -> io::Result<()>;

    /// A symbolic link (`pg_tblspc/<oid>` without `tablespace_map`).
    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()>;

    /// The current archive is complete.
    fn end_archive(&mut self) -> io::Result<()>;

    /// The `backup_manifest`, streamed.
    fn manifest(&mut self, data: &mut dyn Read) -> io::Result<()>;

    /// Whether archives are given as their bytes, as the server sends them
    /// ([`archive_bytes`](Self::archive_bytes): a tar stream, compressed
    /// with [`ServerCompression`]) rather than unpacked into
    /// [`file`](Self::file), [`directory`](Self::directory) and
    /// [`symlink`](Self::symlink).
    fn wants_archive_bytes(&self) -> bool {
        false
    }

    /// The bytes of the current archive, between
    /// [`begin_archive`](Self::begin_archive) and
    /// [`end_archive`](Self::end_archive), when
    /// [`wants_archive_bytes`](Self::wants_archive_bytes).
    fn archive_bytes(&mut self, data: &mut dyn Read) -> io::Result<()> {
        let _ = data;
        Err(io::Error::other("this sink does not take archive bytes"))
    }

    /// Bytes received so far, and the expected total when known. Called
    /// after each entry.
    fn progress(&mut self, done: u64, total: Option<u64>) {
        let _ = (done, total);
    }
}

/// Size of the CopyData messages of [`ReplicationConnection::upload_manifest`].
const UPLOAD_CHUNK: usize = 64 * 1024;

impl ReplicationConnection {
    /// Sends the `backup_manifest` of the backup an incremental backup
    /// builds on (`UPLOAD_MANIFEST`, PostgreSQL 17+), streamed from
    /// `manifest`; the next [`base_backup`](Self::base_backup) with
    /// [`BaseBackupOptions::incremental`] is relative to it.
    ///
    /// A manifest the server refuses (not a manifest, another system, WAL
    /// summaries missing for its range) is an [`Error::Server`], and the
    /// connection stays usable; a read error from `manifest` cancels the
    /// upload (CopyFail) and is an [`Error::Sink`].
    pub fn upload_manifest(&mut self, manifest: &mut dyn Read) -> Result<()> {
        if self.server_version < 170_000 {
            return Err(Error::Unsupported(
                "incremental backups need PostgreSQL 17 or later".into(),
            ));
        }
        self.send_query("UPLOAD_MANIFEST")?;
        let mut error = None;
        loop {
            match self.next_message()? {
                Frame::Message(Message::CopyInResponse(_)) => break,
                Frame::Message(Message::ErrorResponse(body)) => {
                    error.get_or_insert(server_error(&body));
                }
                Frame::Message(Message::ReadyForQuery(_)) => {
                    self.ready = true;
                    return Err(error.unwrap_or_else(|| {
                        Error::protocol("UPLOAD_MANIFEST ended without a copy")
                    }));
                }
                other => return Err(unexpected("in reply to UPLOAD_MANIFEST", &other)),
            }
        }
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        let mut failure = None;
        loop {
            match manifest.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.send_copy_data(&buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = &failure {
            let mut msg = bytes::BytesMut::new();
            postgres_protocol::message::frontend::copy_fail("manifest unreadable", &mut msg)
                .map_err(|e| Error::protocol(format!("cannot encode CopyFail: {e}")))?;
            self.wire.send(&msg)?;
            tracing::debug!("{}: UPLOAD_MANIFEST cancelled: {e}", self.target);
        } else {
            self.send_copy_done()?;
        }
        loop {
            match self.next_message()? {
                Frame::Message(Message::CommandComplete(_)) => {}
                Frame::Message(Message::ErrorResponse(body)) => {
                    error.get_or_insert(server_error(&body));
                }
                Frame::Message(Message::ReadyForQuery(_)) => {
                    self.ready = true;
                    if let Some(e) = failure {
                        return Err(Error::Sink(e));
                    }
                    return error.map_or(Ok(()), Err);
                }
                other => return Err(unexpected("after UPLOAD_MANIFEST", &other)),
            }
        }
    }

    /// Takes a base backup with `BASE_BACKUP`, streaming it into `sink`.
    ///
    /// PostgreSQL 15+ gets the parenthesised syntax and one CopyOut stream;
    /// older servers the old syntax with one CopyOut per tablespace. A
    /// server error (e.g. `MAX_RATE` out of range, a file that cannot be
    /// read) is an [`Error::Server`]; a sink error is an [`Error::Sink`] and
    /// leaves the connection unusable.
    pub fn base_backup(
        &mut self,
        options: &BaseBackupOptions,
        sink: &mut dyn BaseBackupSink,
    ) -> Result<BaseBackupResult> {
        let sql = base_backup_command(options, self.server_version)?;
        self.send_query(&sql)?;
        tracing::debug!("{}: {sql}", self.target);
        let received = Cell::new(0);
        let outcome = self.receive_backup(options, sink, &received);
        if let Err(Error::Server(e)) = &outcome
            && !self.ready
            && e.severity == "ERROR"
        {
            // The server went back to command mode after its error.
            let _ = self.drain_until_ready(RECOVER_TIMEOUT);
        }
        let (sets, tablespaces) = outcome?;
        let start = sets
            .first()
            .and_then(|rows| rows.first())
            .ok_or_else(|| Error::protocol("BASE_BACKUP sent no start position"))?;
        let end = sets
            .get(2..)
            .and_then(|rest| rest.iter().rev().find_map(|rows| rows.first()))
            .ok_or_else(|| Error::protocol("BASE_BACKUP sent no end position"))?;
        Ok(BaseBackupResult {
            start_lsn: parse_column(start, 0, "BASE_BACKUP start position")?,
            start_timeline: parse_column(start, 1, "BASE_BACKUP start timeline")?,
            end_lsn: parse_column(end, 0, "BASE_BACKUP end position")?,
            end_timeline: parse_column(end, 1, "BASE_BACKUP end timeline")?,
            tablespaces,
            bytes: received.get(),
        })
    }

    /// Reads the whole reply: result sets (start, tablespaces, end) and the
    /// copy streams, until ReadyForQuery.
    fn receive_backup(
        &mut self,
        options: &BaseBackupOptions,
        sink: &mut dyn BaseBackupSink,
        received: &Cell<u64>,
    ) -> Result<(Vec<Vec<Row>>, Vec<TablespaceInfo>)> {
        let typed = self.server_version >= 150_000;
        let mut sets: Vec<Vec<Row>> = Vec::new();
        let mut tablespaces: Option<Vec<TablespaceInfo>> = None;
        let mut copies = 0;
        let mut error = None;
        loop {
            match self.next_message()? {
                Frame::Message(Message::RowDescription(_)) => sets.push(Vec::new()),
                Frame::Message(Message::DataRow(body)) => sets
                    .last_mut()
                    .ok_or_else(|| Error::protocol("DataRow without RowDescription"))?
                    .push(wire::row_values(&body)?),
                Frame::Message(Message::CommandComplete(_) | Message::EmptyQueryResponse) => {}
                Frame::Message(Message::CopyOutResponse(_)) => {
                    if tablespaces.is_none() {
                        tablespaces = Some(begin(&sets, sink)?);
                    }
                    let list = tablespaces.as_deref().unwrap_or_default();
                    let total = expected_total(list);
                    let mut reader = CopyReader {
                        conn: self,
                        typed,
                        chunk: Bytes::new(),
                        boundary: None,
                        failure: None,
                        received,
                        total,
                        compression: options.compression.map(|c| c.method),
                    };
                    if typed {
                        reader.typed_stream(sink)?;
                    } else if let Some(ts) = list.get(copies) {
                        sink.begin_archive(ts.oid, ts.location.as_deref())
                            .map_err(Error::Sink)?;
                        reader.archive(sink)?;
                    } else if copies == list.len() && options.manifest {
                        reader.manifest(sink)?;
                    } else {
                        return Err(Error::protocol(
                            "BASE_BACKUP sent more copy streams than expected",
                        ));
                    }
                    copies += 1;
                }
                Frame::Message(Message::ErrorResponse(body)) => {
                    error.get_or_insert(server_error(&body));
                }
                Frame::Message(Message::ReadyForQuery(_)) => {
                    self.ready = true;
                    if let Some(e) = error {
                        return Err(e);
                    }
                    let tablespaces = tablespaces
                        .ok_or_else(|| Error::protocol("BASE_BACKUP sent no archive"))?;
                    return Ok((sets, tablespaces));
                }
                other => return Err(unexpected("in reply to BASE_BACKUP", &other)),
            }
        }
    }
}

/// One row of a result set.
type Row = Vec<Option<Bytes>>;

/// The start position and tablespace list (the first two result sets),
/// given to the sink.
fn begin(sets: &[Vec<Row>], sink: &mut dyn BaseBackupSink) -> Result<Vec<TablespaceInfo>> {
    let (Some(start), Some(list)) = (sets.first().and_then(|s| s.first()), sets.get(1)) else {
        return Err(Error::protocol(
            "BASE_BACKUP started copying before sending its start position and tablespaces",
        ));
    };
    let start_lsn: Lsn = parse_column(start, 0, "BASE_BACKUP start position")?;
    let timeline: u32 = parse_column(start, 1, "BASE_BACKUP start timeline")?;
    let tablespaces = list
        .iter()
        .map(|row| {
            let number = |index, what| {
                text(row, index, what)?
                    .map(|v| {
                        v.parse::<u64>()
                            .map_err(|_| Error::protocol(format!("{what}: invalid value `{v}`")))
                    })
                    .transpose()
            };
            Ok(TablespaceInfo {
                oid: number(0, "tablespace oid")?
                    .map(|oid| {
                        u32::try_from(oid)
                            .map_err(|_| Error::protocol("tablespace oid out of range"))
                    })
                    .transpose()?,
                location: text(row, 1, "tablespace location")?,
                size_kb: number(2, "tablespace size")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    sink.started(start_lsn, timeline, &tablespaces)
        .map_err(Error::Sink)?;
    Ok(tablespaces)
}

/// The backup's size in bytes from the tablespace sizes the server sent
/// (in kB), when it sent them all and they add up to a `u64`.
fn expected_total(tablespaces: &[TablespaceInfo]) -> Option<u64> {
    tablespaces.iter().try_fold(0u64, |total, t| {
        total.checked_add(t.size_kb?.checked_mul(1024)?)
    })
}

/// `BASE_BACKUP` in the syntax of `server_version`.
fn base_backup_command(options: &BaseBackupOptions, server_version: u32) -> Result<String> {
    let label = options.label.replace('\'', "''");
    let max_rate = options.max_rate_kbps.filter(|r| *r > 0);
    if options.manifest && server_version < 130_000 {
        return Err(Error::Unsupported(
            "backup manifests need PostgreSQL 13 or later".into(),
        ));
    }
    if options.incremental && server_version < 170_000 {
        return Err(Error::Unsupported(
            "incremental backups need PostgreSQL 17 or later".into(),
        ));
    }
    if options.compression.is_some() && server_version < 150_000 {
        return Err(Error::Unsupported(
            "server-side compression needs PostgreSQL 15 or later".into(),
        ));
    }
    if server_version >= 150_000 {
        let mut parts = vec![format!("LABEL '{label}'")];
        if options.progress {
            parts.push("PROGRESS".into());
        }
        if options.fast {
            parts.push("CHECKPOINT 'fast'".into());
        }
        if options.wal {
            parts.push("WAL".into());
        }
        if !options.wait {
            parts.push("WAIT false".into());
        }
        if let Some(rate) = max_rate {
            parts.push(format!("MAX_RATE {rate}"));
        }
        if options.tablespace_map {
            parts.push("TABLESPACE_MAP".into());
        }
        if options.manifest {
            parts.push("MANIFEST 'yes'".into());
        }
        if options.incremental {
            parts.push("INCREMENTAL".into());
        }
        if let Some(compression) = &options.compression {
            parts.extend(compression.options()?);
        }
        return Ok(format!("BASE_BACKUP ({})", parts.join(", ")));
    }
    let mut sql = format!("BASE_BACKUP LABEL '{label}'");
    for (on, keyword) in [
        (options.progress, " PROGRESS"),
        (options.fast, " FAST"),
        (options.wal, " WAL"),
        (!options.wait, " NOWAIT"),
    ] {
        if on {
            sql.push_str(keyword);
        }
    }
    if let Some(rate) = max_rate {
        sql.push_str(" MAX_RATE ");
        sql.push_str(&rate.to_string());
    }
    if options.tablespace_map {
        sql.push_str(" TABLESPACE_MAP");
    }
    if options.manifest {
        sql.push_str(" MANIFEST 'yes'");
    }
    Ok(sql)
}

/// Where a part of the copy stream ends.
#[derive(Debug, PartialEq, Eq)]
enum Boundary {
    /// `n`: a new archive (15+): its name (`base.tar`, `<oid>.tar`) and the
    /// tablespace location (empty for the main directory).
    Archive { name: String, location: String },
    /// `m`: the manifest follows (15+).
    Manifest,
    /// CopyDone.
    End,
}

/// The bytes of one part of a copy stream (an archive or the manifest) as
/// a `Read` that ends at the next [`Boundary`].
struct CopyReader<'c> {
    conn: &'c mut ReplicationConnection,
    /// 15+ typed messages (`n`, `d`, `m`, `p`) rather than raw bytes.
    typed: bool,
    /// What is left of the current CopyData payload.
    chunk: Bytes,
    /// Set when the part ended.
    boundary: Option<Boundary>,
    /// The error that made `read` fail (the sink only sees an `io::Error`).
    failure: Option<Error>,
    received: &'c Cell<u64>,
    total: Option<u64>,
    /// Server-side compression of the archives.
    compression: Option<barman_wal::Compression>,
}

impl CopyReader<'_> {
    /// The 15+ stream: archives announced by `n`, then the manifest after `m`.
    fn typed_stream(&mut self, sink: &mut dyn BaseBackupSink) -> Result<()> {
        loop {
            match self.next_boundary()? {
                Boundary::Archive { name, location } => {
                    // `base.tar`, `<oid>.tar`, with a suffix when compressed
                    // on the server (`base.tar.gz`).
                    let stem = name.split_once(".tar").map(|(stem, _)| stem);
                    let oid = match stem {
                        Some("base") => None,
                        other => Some(other.and_then(|oid| oid.parse::<u32>().ok()).ok_or_else(
                            || Error::protocol(format!("unexpected archive name `{name}`")),
                        )?),
                    };
                    let location = Some(location.as_str()).filter(|l| !l.is_empty());
                    sink.begin_archive(oid, location).map_err(Error::Sink)?;
                    self.archive(sink)?;
                }
                Boundary::Manifest => self.manifest(sink)?,
                Boundary::End => return Ok(()),
            }
        }
    }

    /// Unpacks one tar archive into `sink`, then skips to the part's end.
    fn archive(&mut self, sink: &mut dyn BaseBackupSink) -> Result<()> {
        let received = self.received;
        let total = self.total;
        let outcome = if sink.wants_archive_bytes() {
            sink.archive_bytes(&mut *self).map_err(Error::Sink)
        } else if let Some(compression) = self.compression {
            match compression.reader(&mut *self) {
                Ok(mut plain) => walk_tar(&mut plain, sink, received, total),
                Err(e) => Err(Error::protocol(format!(
                    "cannot decompress the {compression} archive: {e}"
                ))),
            }
        } else {
            walk_tar(&mut *self, sink, received, total)
        };
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        outcome?;
        sink.end_archive().map_err(Error::Sink)?;
        self.skip_to_boundary()
    }

    /// Gives the manifest to `sink`, then skips to the part's end.
    fn manifest(&mut self, sink: &mut dyn BaseBackupSink) -> Result<()> {
        let outcome = sink.manifest(&mut *self);
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        outcome.map_err(Error::Sink)?;
        self.skip_to_boundary()
    }

    /// Discards the rest of the current part (tar padding, ...).
    fn skip_to_boundary(&mut self) -> Result<()> {
        while self.boundary.is_none() {
            self.chunk.clear();
            self.fetch()?;
        }
        Ok(())
    }

    /// Skips to the end of the current part and takes its boundary.
    fn next_boundary(&mut self) -> Result<Boundary> {
        self.skip_to_boundary()?;
        self.chunk.clear();
        self.boundary
            .take()
            .ok_or_else(|| Error::protocol("copy stream boundary lost"))
    }

    /// Reads the next CopyData payload into `chunk`, or the boundary.
    fn fetch(&mut self) -> Result<()> {
        loop {
            match self.conn.next_message()? {
                Frame::Message(Message::CopyData(body)) => {
                    let mut data = body.into_bytes();
                    if self.typed {
                        let Some(&kind) = data.first() else {
                            return Err(Error::protocol("empty CopyData in BASE_BACKUP"));
                        };
                        data.advance(1);
                        match kind {
                            b'd' => {}
                            b'n' => {
                                let (name, rest) = c_string(&data)?;
                                let (location, _) = c_string(rest)?;
                                self.boundary = Some(Boundary::Archive { name, location });
                                return Ok(());
                            }
                            b'm' => {
                                self.boundary = Some(Boundary::Manifest);
                                return Ok(());
                            }
                            // Server-side progress: we count bytes ourselves.
                            b'p' => continue,
                            other => {
                                return Err(Error::protocol(format!(
                                    "unknown BASE_BACKUP message `{}`",
                                    char::from(other).escape_default()
                                )));
                            }
                        }
                    }
                    self.received.set(self.received.get() + data.len() as u64);
                    self.chunk = data;
                    return Ok(());
                }
                Frame::Message(Message::CopyDone) => {
                    self.boundary = Some(Boundary::End);
                    return Ok(());
                }
                Frame::Message(Message::ErrorResponse(body)) => return Err(server_error(&body)),
                other => return Err(unexpected("in a BASE_BACKUP copy stream", &other)),
            }
        }
    }
}

impl Read for CopyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if let Some(e) = &self.failure {
                return Err(io::Error::other(e.to_string()));
            }
            if self.boundary.is_some() {
                return Ok(0);
            }
            if let Err(e) = self.fetch() {
                let error = io::Error::other(e.to_string());
                self.failure = Some(e);
                return Err(error);
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// A NUL-terminated string at the start of `data`, and what follows it.
fn c_string(data: &[u8]) -> Result<(String, &[u8])> {
    let end = data
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| Error::protocol("unterminated string in BASE_BACKUP message"))?;
    let text = String::from_utf8(data[..end].to_vec())
        .map_err(|_| Error::protocol("BASE_BACKUP string is not UTF-8"))?;
    Ok((text, &data[end + 1..]))
}

/// Feeds the entries of one tar archive read from `reader` to `sink`.
fn walk_tar(
    reader: &mut dyn Read,
    sink: &mut dyn BaseBackupSink,
    received: &Cell<u64>,
    total: Option<u64>,
) -> Result<()> {
    let tar_error = |e: io::Error| Error::protocol(format!("malformed tar stream: {e}"));
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        let raw_path = entry.path_bytes().into_owned();
        let path = String::from_utf8(raw_path).map_err(|e| {
            Error::protocol(format!(
                "file name `{}` in the backup is not UTF-8",
                String::from_utf8_lossy(e.as_bytes())
            ))
        })?;
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let header = entry.header();
        let mode = header.mode().map_err(tar_error)?;
        let kind = header.entry_type();
        if kind.is_file() || kind.is_contiguous() {
            let mtime = i64::try_from(header.mtime().map_err(tar_error)?).unwrap_or(i64::MAX);
            let size = entry.size();
            let file = ArchiveFile {
                path: &path,
                size,
                mode,
                mtime,
            };
            sink.file(file, &mut entry).map_err(Error::Sink)?;
        } else if kind.is_dir() {
            sink.directory(&path, mode).map_err(Error::Sink)?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .ok_or_else(|| Error::protocol(format!("symlink `{path}` has no target")))?;
            sink.symlink(&path, &target).map_err(Error::Sink)?;
        } else {
            tracing::warn!("base backup: skipping `{path}` (tar entry type {kind:?})");
        }
        sink.progress(received.get(), total);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_per_version() {
        let mut options = BaseBackupOptions {
            label: "it's".into(),
            fast: true,
            max_rate_kbps: Some(1024),
            wait: false,
            ..BaseBackupOptions::default()
        };
        assert_eq!(
            base_backup_command(&options, 150_004).unwrap(),
            "BASE_BACKUP (LABEL 'it''s', PROGRESS, CHECKPOINT 'fast', WAIT false, MAX_RATE 1024, \
             TABLESPACE_MAP, MANIFEST 'yes')"
        );
        assert_eq!(
            base_backup_command(&options, 130_010).unwrap(),
            "BASE_BACKUP LABEL 'it''s' PROGRESS FAST NOWAIT MAX_RATE 1024 TABLESPACE_MAP MANIFEST 'yes'"
        );
        options = BaseBackupOptions {
            label: "x".into(),
            max_rate_kbps: Some(0),
            manifest: false,
            progress: false,
            wal: true,
            tablespace_map: false,
            ..BaseBackupOptions::default()
        };
        assert_eq!(
            base_backup_command(&options, 170_000).unwrap(),
            "BASE_BACKUP (LABEL 'x', WAL)"
        );
        assert_eq!(
            base_backup_command(&options, 120_000).unwrap(),
            "BASE_BACKUP LABEL 'x' WAL"
        );
        assert!(matches!(
            base_backup_command(&BaseBackupOptions::default(), 120_000),
            Err(Error::Unsupported(_))
        ));
        options.incremental = true;
        assert_eq!(
            base_backup_command(&options, 170_000).unwrap(),
            "BASE_BACKUP (LABEL 'x', WAL, INCREMENTAL)"
        );
        assert!(matches!(
            base_backup_command(&options, 160_000),
            Err(Error::Unsupported(_))
        ));
        options.incremental = false;
        // Server-side compression: 15+ only.
        options.compression = Some(ServerCompression {
            method: barman_wal::Compression::Zstd,
            level: Some(3),
            workers: Some(4),
        });
        assert_eq!(
            base_backup_command(&options, 150_000).unwrap(),
            "BASE_BACKUP (LABEL 'x', WAL, COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=3,workers=4')"
        );
        options.compression = Some(ServerCompression {
            method: barman_wal::Compression::Gzip,
            level: None,
            workers: None,
        });
        assert_eq!(
            base_backup_command(&options, 160_000).unwrap(),
            "BASE_BACKUP (LABEL 'x', WAL, COMPRESSION 'gzip')"
        );
        assert!(matches!(
            base_backup_command(&options, 140_000),
            Err(Error::Unsupported(_))
        ));
    }

    /// Tablespace sizes are the server's numbers: sizes that overflow a
    /// `u64` make the total unknown instead of an arithmetic overflow (a
    /// panic in debug builds).
    #[test]
    fn expected_total_of_huge_sizes_is_unknown() {
        let ts = |size_kb| TablespaceInfo {
            oid: None,
            location: None,
            size_kb,
        };
        assert_eq!(expected_total(&[ts(Some(1)), ts(Some(2))]), Some(3072));
        assert_eq!(expected_total(&[ts(Some(1)), ts(None)]), None);
        assert_eq!(expected_total(&[ts(Some(u64::MAX / 1000))]), None);
        assert_eq!(
            expected_total(&[ts(Some(u64::MAX / 2048)), ts(Some(u64::MAX / 2048))]),
            Some(u64::MAX / 2048 * 2048)
        );
        assert_eq!(
            expected_total(&[ts(Some(u64::MAX / 1024)), ts(Some(u64::MAX / 1024))]),
            None
        );
    }

    #[test]
    fn c_strings() {
        let (a, rest) = c_string(b"base.tar\0/ts\0").unwrap();
        let (b, rest) = c_string(rest).unwrap();
        assert_eq!(
            (a.as_str(), b.as_str(), rest),
            ("base.tar", "/ts", &b""[..])
        );
        assert!(c_string(b"no end").is_err());
        assert!(c_string(b"\xff\0").is_err());
    }

    /// A sink that records what it is given.
    #[derive(Default)]
    struct Recorder {
        events: Vec<String>,
        fail_on: Option<&'static str>,
    }

    impl BaseBackupSink for Recorder {
        fn begin_archive(
            &mut self,
            tablespace: Option<u32>,
            location: Option<&str>,
        ) -> io::Result<()> {
            self.events
                .push(format!("begin {tablespace:?} {location:?}"));
            Ok(())
        }
        fn file(&mut self, file: ArchiveFile<'_>, data: &mut dyn Read) -> io::Result<()> {
            let ArchiveFile {
                path,
                size,
                mode,
                mtime,
            } = file;
            if self.fail_on == Some(path) {
                return Err(io::Error::other("disk full"));
            }
            let mut content = String::new();
            data.read_to_string(&mut content)?;
            self.events
                .push(format!("file {path} {size} {mode:o} {mtime} {content}"));
            Ok(())
        }
        fn directory(&mut self, path: &str, mode: u32) -> io::Result<()> {
            self.events.push(format!("dir {path} {mode:o}"));
            Ok(())
        }
        fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
            self.events.push(format!("link {path} {target}"));
            Ok(())
        }
        fn end_archive(&mut self) -> io::Result<()> {
            self.events.push("end".into());
            Ok(())
        }
        fn manifest(&mut self, data: &mut dyn Read) -> io::Result<()> {
            let mut m = String::new();
            data.read_to_string(&mut m)?;
            self.events.push(format!("manifest {m}"));
            Ok(())
        }
    }

    fn tar_bytes() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_ustar();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o700);
        dir.set_size(0);
        dir.set_cksum();
        builder.append_data(&mut dir, "base/", io::empty()).unwrap();
        let mut file = tar::Header::new_ustar();
        file.set_mode(0o600);
        file.set_mtime(1_700_000_000);
        file.set_size(5);
        file.set_cksum();
        builder
            .append_data(&mut file, "base/1/112", &b"hello"[..])
            .unwrap();
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        builder
            .append_link(&mut link, "pg_tblspc/16384", "/srv/ts")
            .unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn tar_entries_reach_the_sink() {
        let bytes = tar_bytes();
        let mut sink = Recorder::default();
        let received = Cell::new(7);
        walk_tar(&mut &bytes[..], &mut sink, &received, Some(10)).unwrap();
        assert_eq!(
            sink.events,
            [
                "dir base 700",
                "file base/1/112 5 600 1700000000 hello",
                "link pg_tblspc/16384 /srv/ts",
            ]
        );
        // A sink error stops the walk.
        let mut sink = Recorder {
            fail_on: Some("base/1/112"),
            ..Recorder::default()
        };
        let err = walk_tar(&mut &bytes[..], &mut sink, &received, None).unwrap_err();
        assert!(matches!(err, Error::Sink(_)), "{err}");
        // A corrupt header is a protocol error, not a panic.
        let mut corrupt = bytes.clone();
        corrupt[148..156].copy_from_slice(b"9999999\0");
        let mut sink = Recorder::default();
        assert!(matches!(
            walk_tar(&mut &corrupt[..], &mut sink, &received, None),
            Err(Error::Protocol(_))
        ));
    }
}
