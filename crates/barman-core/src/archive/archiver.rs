//! `archive-wal`: moving `incoming/` and `streaming/` into `wals/`.
//!
//! Per file, in name order: check the name, the size and the page header
//! (a file that fails goes to `errors/` as `.unknown`); if `wals/` already
//! has the name, compare the content (identical: the source is dropped;
//! different: the source goes to `errors/` as `.duplicate`); otherwise
//! compress into a temporary file next to the destination, fsync it, link it
//! into place without ever replacing a file, fsync the directory, append the
//! xlog.db line (fsync'ed), and only then remove the source. Killed at any
//! instant, a rerun finishes the job: an archived file whose xlog.db line is
//! missing gets it, a half-written last line is cut first, leftover
//! temporaries are removed.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use barman_wal::{Codec, Compression, Encoder, WalFileName};

use super::inspect::{InspectError, WalExpectations, inspect, inspect_plain, same_content};
use barman_fs::{NoReplace, TempFile};

use super::store::{
    ErrorKind, create_temp, is_skipped_temp, move_to_errors, mtime_secs, parent, remove_quietly,
};
use crate::clock::Clock;
use crate::{Error, Result, ServerLayout};
use barman_catalog::fs::{create_dir_secure, fsync_dir};
use barman_catalog::lock::{LockKind, acquire_blocking, try_acquire};
use barman_catalog::{XlogDb, XlogEntry};

/// Which directory a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `incoming/` (archive_command, put-wal).
    Incoming,
    /// `streaming/` (receive-wal).
    Streaming,
}

impl Source {
    /// Barman's wording in its output.
    pub fn label(self) -> &'static str {
        match self {
            Self::Incoming => "file archival",
            Self::Streaming => "streaming",
        }
    }
}

/// Options of an archive-wal run.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// The server name (xlog.db and lock names).
    pub server: String,
    /// The directory of lock files.
    pub lock_directory: PathBuf,
    /// Compression for newly archived files (`None`: store as received).
    pub codec: Option<Codec>,
    /// What files must match.
    pub expectations: WalExpectations,
    /// Process `incoming/` (`archiver`).
    pub incoming: bool,
    /// At most this many files from `incoming/` per run (0 = all).
    pub incoming_batch_size: u64,
    /// Process `streaming/` (`streaming_archiver`).
    pub streaming: bool,
    /// At most this many files from `streaming/` per run (0 = all).
    pub streaming_batch_size: u64,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Archived; its xlog.db line.
    Archived(XlogEntry),
    /// Already archived with the same content (an earlier run was
    /// interrupted, or the file was sent twice); the source was removed.
    AlreadyArchived {
        /// Whether its missing xlog.db line was added.
        line_added: bool,
    },
    /// Moved to `errors/`.
    Rejected {
        /// Duplicate or unknown.
        kind: ErrorKind,
        /// Why.
        reason: String,
        /// Where it went.
        moved_to: PathBuf,
    },
}

/// One processed file.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// Where it came from.
    pub source: Source,
    /// Its file name.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
}

/// The result of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchiveReport {
    /// Every processed file, in order.
    pub processed: Vec<Processed>,
    /// Bytes removed from an unterminated last xlog.db line.
    pub repaired_xlogdb_bytes: u64,
    /// The observer stopped the run before this file (a pre-archive retry
    /// hook exited 63): it and every file after it, in both queues, are
    /// still where they were.
    pub stopped: Option<Stopped>,
}

/// Where and why a run was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The queue.
    pub source: Source,
    /// The file left in place.
    pub name: String,
    /// Why.
    pub reason: String,
    /// Stopped by the cancel flag (SIGINT / SIGTERM) rather than by a hook's 63.
    pub interrupted: bool,
}

impl ArchiveReport {
    /// Files moved to `errors/`.
    pub fn rejected(&self) -> impl Iterator<Item = &Processed> {
        self.processed
            .iter()
            .filter(|p| matches!(p.outcome, Outcome::Rejected { .. }))
    }
}

/// A WAL file about to be archived: what pre-archive hooks are told.
#[derive(Debug, Clone, PartialEq)]
pub struct Arriving<'a> {
    /// Its queue.
    pub source: Source,
    /// Its file name.
    pub name: &'a str,
    /// Its path in `incoming/` or `streaming/`.
    pub path: &'a Path,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, seconds since the epoch.
    pub mtime: f64,
    /// The compression it arrived with, if any.
    pub compression: Option<Compression>,
}

/// Where a file went: what post-archive hooks are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    /// Its path now: in `wals/` (archived, or already there, or where it
    /// would have gone when the run stopped or failed), or in `errors/`.
    pub path: PathBuf,
    /// Its size there (compressed size when compressed on the way).
    pub size: u64,
    /// Its compression there.
    pub compression: Option<String>,
    /// Why it was not archived (already archived, refused, stopped, failed).
    pub error: Option<String>,
}

/// A request from [`ArchiveObserver::before`] to stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopArchiving {
    /// Why (reported in [`Stopped`] and to [`ArchiveObserver::after`]).
    pub reason: String,
    /// The cancel flag (SIGINT / SIGTERM) stopped it.
    pub interrupted: bool,
}

/// Called around each WAL file (the pre/post archive hook points). Files
/// that are no WAL name or no regular file go to `errors/` without it.
pub trait ArchiveObserver {
    /// A file is about to be archived. `Err` stops the whole run: this file
    /// and every later one stay where they are.
    fn before(&mut self, wal: &Arriving<'_>) -> std::result::Result<(), StopArchiving> {
        let _ = wal;
        Ok(())
    }
    /// The file's archiving ended (successfully or not, also after `before`
    /// stopped the run).
    fn after(&mut self, wal: &Arriving<'_>, landed: &Landed) {
        let _ = (wal, landed);
    }
}

/// An observer that does nothing.
#[derive(Debug, Default)]
pub struct NoObserver;
impl ArchiveObserver for NoObserver {}

/// Runs archive-wal for one server: takes the `archive-wal` lock (busy →
/// [`barman_catalog::Error::LockBusy`]), repairs xlog.db's tail, then processes the queues.
pub fn archive_wal(
    layout: &ServerLayout,
    options: &ArchiveOptions,
    clock: &dyn Clock,
    observer: &mut dyn ArchiveObserver,
) -> Result<ArchiveReport> {
    let _lock = try_acquire(
        &options.lock_directory,
        &LockKind::ArchiveWal(options.server.clone()),
    )?;
    let xlogdb = XlogDb::new(layout.xlogdb_path(&options.server));
    let mut report = ArchiveReport::default();
    {
        let _x = acquire_blocking(
            &options.lock_directory,
            &LockKind::XlogDb(options.server.clone()),
        )?;
        report.repaired_xlogdb_bytes = xlogdb.repair_tail()?;
    }
    create_dir_secure(layout.wals_directory())?;
    let archiver = Archiver {
        layout,
        options,
        clock,
        xlogdb,
    };
    if options.incoming {
        let names = archiver.queue(layout.incoming_directory())?;
        let names = limit(names, options.incoming_batch_size);
        archiver.run_queue(Source::Incoming, names, &mut report, observer)?;
    }
    if options.streaming && report.stopped.is_none() {
        let names = archiver.queue(layout.streaming_directory())?;
        let names = limit(streaming_batch(names), options.streaming_batch_size);
        archiver.run_queue(Source::Streaming, names, &mut report, observer)?;
    }
    Ok(report)
}

fn limit(mut names: Vec<String>, batch: u64) -> Vec<String> {
    if batch > 0 {
        names.truncate(usize::try_from(batch).unwrap_or(usize::MAX));
    }
    names
}

/// The files of a sorted `streaming/` listing that may be archived now
/// (BARMAN-BEHAVIOUR.md §3.5): the newest `.partial` is being written and
/// stays; older `.partial` files (timeline switches) go; with no `.partial`
/// at all the newest complete segment stays, as the restart point.
pub fn streaming_batch(names: Vec<String>) -> Vec<String> {
    let partials: Vec<&String> = names.iter().filter(|n| n.ends_with(".partial")).collect();
    let held: Option<String> = if let Some(last) = partials.last() {
        Some((*last).clone())
    } else {
        names
            .iter()
            .rev()
            .find(|n| n.parse::<WalFileName>().is_ok_and(|w| w.is_segment()))
            .cloned()
    };
    names
        .into_iter()
        .filter(|n| Some(n) != held.as_ref())
        .collect()
}

struct Archiver<'a> {
    layout: &'a ServerLayout,
    options: &'a ArchiveOptions,
    clock: &'a dyn Clock,
    xlogdb: XlogDb,
}

impl Archiver<'_> {
    /// Sorted entry names of `dir`, temporaries excluded (old hidden ones
    /// of ours are removed).
    fn queue(&self, dir: &Path) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list", dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_skipped_temp(&name) {
                self.remove_stale_temp(&entry.path(), &name);
                continue;
            }
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    /// Hidden temporaries (ours: `.<name>.<pid>.<n>.barman-tmp`) older
    /// than an hour belong to a put-wal that died: remove them.
    fn remove_stale_temp(&self, path: &Path, name: &str) {
        if !name.starts_with('.') {
            return;
        }
        let Ok(meta) = path.symlink_metadata() else {
            return;
        };
        #[allow(clippy::cast_precision_loss)] // seconds since 1970 fit in f64
        let age = self.clock.now().as_second() as f64 - mtime_secs(&meta);
        if meta.is_file() && age > 3600.0 {
            tracing::info!("removing stale temporary file {}", path.display());
            remove_quietly(path);
        }
    }

    fn run_queue(
        &self,
        source: Source,
        names: Vec<String>,
        report: &mut ArchiveReport,
        observer: &mut dyn ArchiveObserver,
    ) -> Result<()> {
        let dir = match source {
            Source::Incoming => self.layout.incoming_directory(),
            Source::Streaming => self.layout.streaming_directory(),
        };
        for name in names {
            let path = dir.join(&name);
            let meta = path
                .symlink_metadata()
                .map_err(|e| Error::io("cannot stat", &path, e))?;
            let wal = name.parse::<WalFileName>();
            let outcome = match wal {
                Err(_) => self.reject(
                    &path,
                    &name,
                    ErrorKind::Unknown,
                    "not a WAL file name".into(),
                )?,
                Ok(_) if !meta.is_file() => self.reject(
                    &path,
                    &name,
                    ErrorKind::Unknown,
                    "not a regular file".into(),
                )?,
                Ok(wal) => {
                    let arriving = Arriving {
                        source,
                        name: &name,
                        path: &path,
                        size: meta.len(),
                        mtime: mtime_secs(&meta),
                        compression: super::inspect::detect_compression(
                            &path,
                            self.options.codec.as_ref(),
                        )?,
                    };
                    let dest = self.layout.wal_path(&wal);
                    if let Err(stop) = observer.before(&arriving) {
                        observer.after(&arriving, &arriving.landed(dest, Some(&stop.reason)));
                        tracing::warn!(
                            "archive-wal {}: archiving of `{name}` stopped: {}; it stays in {}",
                            self.options.server,
                            stop.reason,
                            dir.display()
                        );
                        report.stopped = Some(Stopped {
                            source,
                            name,
                            reason: stop.reason,
                            interrupted: stop.interrupted,
                        });
                        return Ok(());
                    }
                    let result = self.process(&arriving, &wal, &meta, &dest);
                    let landed = match &result {
                        Ok(outcome) => arriving.landed_as(outcome, dest),
                        Err(e) => arriving.landed(dest, Some(&e.to_string())),
                    };
                    observer.after(&arriving, &landed);
                    result?
                }
            };
            report.processed.push(Processed {
                source,
                name,
                outcome,
            });
        }
        Ok(())
    }

    fn reject(&self, path: &Path, name: &str, kind: ErrorKind, reason: String) -> Result<Outcome> {
        let moved_to =
            move_to_errors(path, name, self.layout.errors_directory(), kind, self.clock)?;
        tracing::error!(
            "archive-wal {}: `{name}` moved to {}: {reason}",
            self.options.server,
            moved_to.display()
        );
        Ok(Outcome::Rejected {
            kind,
            reason,
            moved_to,
        })
    }

    /// Archives the regular file `wal` of `arriving` (of metadata `meta`)
    /// into `dest`.
    fn process(
        &self,
        arriving: &Arriving<'_>,
        wal: &WalFileName,
        meta: &std::fs::Metadata,
        dest: &Path,
    ) -> Result<Outcome> {
        let (path, name) = (arriving.path, arriving.name);
        let codec = self.options.codec.as_ref();
        let canonical = wal.to_string();
        remove_own_temps(parent(dest), &canonical);
        if dest.symlink_metadata().is_ok() {
            // An invalid file is reported as such even when its name is taken.
            match inspect(path, wal, &self.options.expectations, codec) {
                Ok(_) => return self.already_there(path, name, dest),
                Err(InspectError::Invalid(reason)) => {
                    return self.reject(path, name, ErrorKind::Unknown, reason);
                }
                Err(InspectError::Io(e)) => return Err(e),
            }
        }
        create_dir_secure(parent(dest))?;
        let time = arriving.mtime;
        let modified = meta.modified().ok();
        // The checks run on exactly the bytes that are stored: while
        // compressing a plain file, or on the stored copy otherwise.
        let (tmp, checked, compression) = match (codec, arriving.compression) {
            (Some(codec), None) => {
                let (tmp, checked) = self.compress_checked(path, dest, wal, codec, modified)?;
                (tmp, checked, Some(codec.compression()))
            }
            (_, stored) => {
                let tmp = Self::copy_to_temp(path, dest, modified)?;
                let checked =
                    inspect(tmp.path(), wal, &self.options.expectations, codec).map(|_| ());
                (tmp, checked, stored)
            }
        };
        // `tmp` is removed when dropped (any return before it is installed).
        match checked {
            Ok(()) => {}
            Err(InspectError::Invalid(reason)) => {
                drop(tmp);
                return self.reject(path, name, ErrorKind::Unknown, reason);
            }
            Err(InspectError::Io(e)) => return Err(e),
        }
        let size = tmp
            .file()
            .metadata()
            .map_err(|e| Error::io("cannot stat", tmp.path(), e))?
            .len();
        if let NoReplace::Exists(tmp) = tmp.commit_no_replace()? {
            drop(tmp);
            return self.already_there(path, name, dest);
        }
        let mut entry = XlogEntry::new(wal.to_string(), size, time);
        entry.compression = compression.map(|c| c.name().to_owned());
        self.append(&entry)?;
        remove_source(path)?;
        Ok(Outcome::Archived(entry))
    }

    /// `dest` exists: identical content → make sure xlog.db lists it and
    /// drop the source; different → the source is a duplicate.
    fn already_there(&self, path: &Path, name: &str, dest: &Path) -> Result<Outcome> {
        if !same_content(path, dest, self.options.codec.as_ref())? {
            return self.reject(
                path,
                name,
                ErrorKind::Duplicate,
                format!(
                    "a different file with this name is already archived at {}",
                    dest.display()
                ),
            );
        }
        let wal_name = name
            .parse::<WalFileName>()
            .map_or_else(|_| name.to_owned(), |w| w.to_string());
        let line_added = if self.xlogdb.contains(&wal_name)? {
            false
        } else {
            let meta = std::fs::metadata(dest).map_err(|e| Error::io("cannot stat", dest, e))?;
            let mut entry = XlogEntry::new(wal_name, meta.len(), mtime_secs(&meta));
            entry.compression =
                super::inspect::detect_compression(dest, self.options.codec.as_ref())?
                    .map(|c| c.name().to_owned());
            self.append(&entry)?;
            true
        };
        remove_source(path)?;
        Ok(Outcome::AlreadyArchived { line_added })
    }

    fn append(&self, entry: &XlogEntry) -> Result<()> {
        let _x = acquire_blocking(
            &self.options.lock_directory,
            &LockKind::XlogDb(self.options.server.clone()),
        )?;
        self.xlogdb.append(entry).map_err(crate::Error::from)
    }

    /// A durable byte copy of `path` next to `dest` (never a hard link: the
    /// archive must not share an inode with a file another program may
    /// rewrite in place).
    fn copy_to_temp(path: &Path, dest: &Path, modified: Option<SystemTime>) -> Result<TempFile> {
        let mut tmp = create_temp(dest)?;
        File::open(path)
            .and_then(|mut src| io::copy(&mut src, &mut tmp))
            .and_then(|_| modified.map_or(Ok(()), |m| tmp.file().set_modified(m)))
            .map_err(|e| Error::io("cannot copy into", tmp.path(), e))?;
        tmp.sync()?;
        Ok(tmp)
    }

    /// Compresses plain `path` into a temporary file next to `dest`,
    /// checking the plain bytes as they pass; returns the durable temporary
    /// file and the check's verdict.
    fn compress_checked(
        &self,
        path: &Path,
        dest: &Path,
        wal: &WalFileName,
        codec: &Codec,
        modified: Option<SystemTime>,
    ) -> Result<(TempFile, std::result::Result<(), InspectError>)> {
        let out = create_temp(dest)?;
        // Dropped on any error below (in the encoder or the writer), the
        // temporary file is removed.
        let tmp_path = out.path().to_path_buf();
        let src = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        let enc: Encoder<io::BufWriter<TempFile>> =
            codec.writer(io::BufWriter::with_capacity(256 * 1024, out))?;
        let mut tee = TeeReader {
            inner: io::BufReader::with_capacity(256 * 1024, src),
            sink: enc,
            error: None,
        };
        let checked = inspect_plain(&mut tee, path, wal, &self.options.expectations).map(|_| ());
        let TeeReader { sink, error, .. } = tee;
        if let Some(e) = error {
            return Err(Error::io("cannot compress into", &tmp_path, e));
        }
        let mut w = sink
            .finish()
            .map_err(|e| Error::io("cannot compress into", &tmp_path, e))?;
        w.flush()
            .map_err(|e| Error::io("cannot write", &tmp_path, e))?;
        let tmp = w
            .into_inner()
            .map_err(|e| Error::io("cannot write", &tmp_path, e.into_error()))?;
        if let Some(m) = modified {
            tmp.file()
                .set_modified(m)
                .map_err(|e| Error::io("cannot set the mtime of", &tmp_path, e))?;
        }
        tmp.sync()?;
        Ok((tmp, checked))
    }
}

impl Arriving<'_> {
    /// The file at `path` (size and compression as it arrived), with `error`.
    fn landed(&self, path: PathBuf, error: Option<&str>) -> Landed {
        Landed {
            path,
            size: self.size,
            compression: self.compression.map(|c| c.name().to_owned()),
            error: error.map(str::to_owned),
        }
    }

    /// Where `outcome` left the file (`dest` when archived or already there).
    fn landed_as(&self, outcome: &Outcome, dest: PathBuf) -> Landed {
        match outcome {
            Outcome::Archived(entry) => Landed {
                path: dest,
                size: entry.size,
                compression: entry.compression.clone(),
                error: None,
            },
            Outcome::AlreadyArchived { .. } => self.landed(
                dest,
                Some("already archived with the same content: the source was removed"),
            ),
            Outcome::Rejected {
                reason, moved_to, ..
            } => self.landed(moved_to.clone(), Some(reason)),
        }
    }
}

/// A reader that copies everything it reads into `sink`; a write error is
/// kept and reported as a read error.
struct TeeReader<R, W> {
    inner: R,
    sink: W,
    error: Option<io::Error>,
}

impl<R: io::Read, W: Write> io::Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            let kind = e.kind();
            self.error = Some(e);
            return Err(io::Error::new(kind, "cannot write the compressed copy"));
        }
        Ok(n)
    }
}

/// Removes the temporaries of `name` an interrupted run left in `dir`
/// ([`barman_fs::remove_stale_temps`]). Only archive-wal writes them there
/// and the caller holds its lock, so none of them is in use.
fn remove_own_temps(dir: &Path, name: &str) {
    for path in barman_fs::remove_stale_temps(dir, name) {
        tracing::info!(
            "removed {} left by an interrupted archive-wal",
            path.display()
        );
    }
}

/// Removes an archived source and fsyncs its directory.
fn remove_source(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| Error::io("cannot remove", path, e))?;
    fsync_dir(parent(path)).map_err(crate::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn streaming_holds_back_the_newest_partial() {
        let got = streaming_batch(v(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003.partial",
        ]));
        assert_eq!(
            got,
            v(&["000000010000000000000001", "000000010000000000000002"])
        );
    }

    #[test]
    fn streaming_archives_older_partials() {
        let got = streaming_batch(v(&[
            "000000010000000000000003.partial",
            "00000002.history",
            "000000020000000000000003.partial",
        ]));
        assert_eq!(
            got,
            v(&["000000010000000000000003.partial", "00000002.history"])
        );
    }

    #[test]
    fn streaming_without_partial_holds_back_the_newest_segment() {
        let got = streaming_batch(v(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "00000002.history",
        ]));
        assert_eq!(got, v(&["000000010000000000000001", "00000002.history"]));
        assert!(streaming_batch(Vec::new()).is_empty());
    }

    #[test]
    fn batch_limit() {
        assert_eq!(limit(v(&["a", "b", "c"]), 2), v(&["a", "b"]));
        assert_eq!(limit(v(&["a", "b", "c"]), 0).len(), 3);
    }
}
