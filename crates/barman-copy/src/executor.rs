//! Runs a [`CopyPlan`] with N workers.
//!
//! The order of work:
//!
//! 1. every directory is created (plan directories with their mode plus
//!    owner `rwx` while copying, and any missing ancestor with `0700`);
//! 2. regular files, largest first, by `jobs` worker threads pulling from one
//!    queue, each with its own source session;
//! 3. `data/global/pg_control`, alone, after every other file is done
//!    (PostgreSQL's rule: the control file is copied last);
//! 4. symbolic links, created from their target verbatim (never followed);
//! 5. directories, deepest first: final mtime and mode, fsync.
//!
//! Every file is built under a temporary name ([`barman_fs::TempFile`]),
//! given its mode and mtime, fsynced and renamed into place; a file
//! hard-linked to the previous backup is never written in place. On error or
//! cancellation all workers stop at their next chunk and the temporary files
//! they created are removed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use fast_rsync::{Signature, SignatureOptions};

use crate::entry::{Entry, EntryKind, Mtime, RelPath, copy_mode, warn_setid};
use barman_fs::{TempFile, TempPath};

use crate::fsutil;
use crate::hash::{FileHash, Hasher, PAGE_SIZE, PageHashes, is_page_structured};
use crate::manifest::{Manifest, ManifestEntry};
use crate::plan::{Action, CopyPlan, PlanItem, Reuse};
use crate::progress::Progress;
use crate::ratelimit::TokenBucket;
use crate::source::{PageChunk, Source, SourceFactory};
use crate::{Error, Result};

/// The control file, copied after every other file.
pub const CONTROL_FILE: &str = "data/global/pg_control";

/// Files (previous or new) larger than this are fetched whole instead of by
/// rsync delta: the delta path holds the previous copy in memory.
pub const RSYNC_MAX_FILE_SIZE: u64 = 64 << 20;

/// Largest rsync delta accepted from a source (an all-literal delta of a
/// file at the cap, with room for its framing).
const RSYNC_MAX_DELTA: usize = 2 * (64 << 20) + (1 << 20);

/// Block size of rsync signatures.
const RSYNC_BLOCK_SIZE: u32 = 4096;

/// Bytes of MD4 per block in rsync signatures.
const RSYNC_HASH_SIZE: u32 = 8;

/// Buffer size for local copies, hashing and writes (blake3's SIMD wants
/// large slices; every write is a large one).
const BUF_SIZE: usize = 1 << 20;

/// Threads that finish written files (mode, mtime, fsync, rename) while the
/// workers write the next ones; fsyncs from several threads also share
/// journal commits.
const INSTALLERS: usize = 4;

/// Written files waiting for an installer (each holds an open descriptor).
const INSTALL_QUEUE: usize = 16;

/// Options of [`execute`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Worker threads (and source sessions); 0 means 1.
    pub jobs: usize,
    /// Whole-copy bandwidth limit in bytes per second (`None` or 0: unlimited).
    pub bandwidth_limit: Option<u64>,
    /// Per-tree limits in bytes per second (tree name → limit), on top of the global one.
    pub tree_limits: BTreeMap<String, u64>,
    /// The previous backup's directory (for links, local copies and deltas).
    pub previous_dir: Option<PathBuf>,
    /// The previous backup's manifest (page fingerprints for page deltas).
    pub previous: Option<Arc<Manifest>>,
    /// Reuse mode (a delta that finds nothing changed links under `Link`).
    pub reuse: Reuse,
    /// Leave out files that vanish between the listing and their copy
    /// (PostgreSQL drops relations during a backup; WAL replay from the
    /// backup's start makes that consistent) instead of failing.
    pub skip_vanished: bool,
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// The new backup's manifest (every copied entry, with checksums).
    pub manifest: Manifest,
    /// Regular files in the plan.
    pub files: u64,
    /// Files fetched whole.
    pub files_fetched: u64,
    /// Files hard-linked to the previous backup.
    pub files_linked: u64,
    /// Files copied locally from the previous backup.
    pub files_copied_locally: u64,
    /// Files rebuilt from a delta.
    pub files_delta: u64,
    /// Sum of file sizes in the new backup.
    pub bytes_total: u64,
    /// Bytes of new file content written (not counting hard links).
    pub bytes_written: u64,
    /// Bytes of files reused by hard link.
    pub bytes_linked: u64,
    /// Bytes received from the source sessions (on the wire).
    pub wire_bytes: u64,
    /// Workers used.
    pub workers: usize,
    /// Wall time of the copy.
    pub elapsed: Duration,
    /// Files left out because they vanished (with `skip_vanished`).
    pub vanished: Vec<String>,
}

/// Executes `plan` into `dest` (the new backup directory; tree roots are
/// `dest/<tree>`), reading from sessions opened by `sources`. Every file is
/// written to a temporary name, fsynced and renamed; modes and mtimes are
/// set; directories are fsynced. `cancel` is polled between chunks and
/// between files ([`Error::Cancelled`]).
///
/// Planned actions fall back to a whole fetch when the previous copy they
/// rely on is missing, not a regular file, or (for local copies and deltas)
/// does not match the previous manifest's checksum. A file that vanished at
/// the source is [`Error::Vanished`]. A plan entry inside one of the plan's
/// symbolic links, or whose action does not fit its kind, is
/// [`Error::UnsafePath`].
pub fn execute(
    plan: &CopyPlan,
    sources: &dyn SourceFactory,
    dest: &Path,
    options: &ExecOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CopyReport> {
    let started = Instant::now();
    let work = Work::prepare(plan)?;
    let file_count = work.files.len() + usize::from(work.control.is_some());
    let file_bytes = work
        .files
        .iter()
        .chain(&work.control)
        .map(|item| item.entry.size)
        .sum();
    progress.start(file_count as u64, file_bytes);

    let shared = Shared::new(dest, options, progress, cancel);
    shared.check()?;
    fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    make_dirs(dest, &work.dirs)?;

    let (mut done, mut sessions) = std::thread::scope(|scope| {
        let (install, pending) = crossbeam_channel::bounded(INSTALL_QUEUE);
        for _ in 0..INSTALLERS {
            let pending = pending.clone();
            let shared = &shared;
            scope.spawn(move || installer_loop(shared, &pending));
        }
        drop(pending);
        run_workers(&shared, sources, &work.files, options.jobs, &install)
        // `install` is dropped here: the installers finish the queue and
        // the scope waits for them.
    })?;
    if let Some(error) = shared.take_error() {
        return Err(error);
    }
    let mut workers = sessions.len();
    if let Some(control) = work.control {
        shared.check()?;
        let source = if let Some(source) = sessions.pop() {
            source
        } else {
            workers = 1;
            sources.open()?
        };
        let mut worker = Worker::new(&shared, source, None);
        done.push(worker.copy(control)?);
        sessions.push(worker.source);
    }

    shared.check()?;
    make_symlinks(dest, &work.symlinks)?;
    finish_dirs(dest, &work.dirs)?;

    let mut report = CopyReport {
        files: file_count as u64,
        wire_bytes: sessions.iter().map(|s| s.wire_bytes()).sum(),
        workers,
        ..CopyReport::default()
    };
    for entry in work.dirs.values().flatten().chain(&work.symlinks) {
        report.manifest.insert(ManifestEntry {
            entry: Entry {
                path: entry.path.clone(),
                kind: entry.kind.clone(),
                size: 0,
                mtime: entry.mtime,
                mode: entry.mode,
            },
            blake3: None,
            pages: None,
        });
    }
    for file in done {
        let size = file.entry.size;
        report.bytes_total += size;
        let (files, bytes) = match file.how {
            How::Linked => (&mut report.files_linked, &mut report.bytes_linked),
            How::Fetched => (&mut report.files_fetched, &mut report.bytes_written),
            How::CopiedLocally => (&mut report.files_copied_locally, &mut report.bytes_written),
            How::Delta => (&mut report.files_delta, &mut report.bytes_written),
        };
        *files += 1;
        *bytes += size;
        report.manifest.insert(file.entry);
    }
    report.files -= shared
        .vanished
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len() as u64;
    report.vanished = shared
        .vanished
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The plan sorted into the executor's steps.
struct Work<'p> {
    /// Every directory to create, by path (so parents come before their
    /// children); `None` for an ancestor the plan does not list.
    dirs: BTreeMap<RelPath, Option<&'p Entry>>,
    /// Symbolic links.
    symlinks: Vec<&'p Entry>,
    /// Regular files but the control file, largest first.
    files: Vec<&'p PlanItem>,
    /// The control file.
    control: Option<&'p PlanItem>,
}

impl<'p> Work<'p> {
    fn prepare(plan: &'p CopyPlan) -> Result<Self> {
        let links: HashSet<&RelPath> = plan
            .items
            .iter()
            .filter(|item| item.action == Action::Symlink)
            .map(|item| &item.entry.path)
            .collect();
        let mut work = Work {
            dirs: BTreeMap::new(),
            symlinks: Vec::new(),
            files: Vec::new(),
            control: None,
        };
        for item in &plan.items {
            let entry = &item.entry;
            let unsafe_path = |reason| Error::UnsafePath {
                path: entry.path.to_string(),
                reason,
            };
            let fits = match item.action {
                Action::Mkdir => entry.kind == EntryKind::Dir,
                Action::Symlink => matches!(entry.kind, EntryKind::Symlink { .. }),
                _ => entry.is_file(),
            };
            if !fits {
                return Err(unsafe_path(
                    "the planned action does not fit the entry's kind",
                ));
            }
            // A tree root is `dest/<tree>`: never a link (to anywhere) nor a file.
            if entry.path.parent().is_none() && entry.kind != EntryKind::Dir {
                return Err(unsafe_path("a tree root must be a directory"));
            }
            if entry.is_file() {
                warn_setid(&entry.path, entry.mode);
            }
            let mut ancestor = entry.path.parent();
            while let Some(dir) = ancestor {
                if links.contains(&dir) {
                    return Err(unsafe_path("inside a symbolic link of the plan"));
                }
                ancestor = dir.parent();
                work.dirs.entry(dir).or_insert(None);
            }
            match item.action {
                Action::Mkdir => {
                    work.dirs.insert(entry.path.clone(), Some(entry));
                }
                Action::Symlink => work.symlinks.push(entry),
                _ if entry.path.as_str() == CONTROL_FILE => work.control = Some(item),
                _ => work.files.push(item),
            }
        }
        work.files.sort_by_key(|item| Reverse(item.entry.size));
        Ok(work)
    }
}

/// Creates the directories, parents first, with owner `rwx` for the copy.
fn make_dirs(dest: &Path, dirs: &BTreeMap<RelPath, Option<&Entry>>) -> Result<()> {
    for (path, entry) in dirs {
        let dir = path.under(dest);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(&dir).map_err(|e| Error::io(&dir, e))?;
                if !meta.is_dir() {
                    return Err(Error::io(&dir, e));
                }
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let mode = entry.map_or(0o700, |entry| entry.mode | 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&dir, e))?;
    }
    Ok(())
}

/// Creates the symbolic links with their targets verbatim.
fn make_symlinks(dest: &Path, links: &[&Entry]) -> Result<()> {
    for entry in links {
        let EntryKind::Symlink { target } = &entry.kind else {
            continue;
        };
        let path = entry.path.under(dest);
        std::os::unix::fs::symlink(target, &path).map_err(|e| Error::io(&path, e))?;
        let time = entry.mtime.to_filetime();
        filetime::set_symlink_file_times(&path, time, time).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Deepest first: sets the planned directories' mtimes and modes, fsyncs
/// every directory, then `dest`.
fn finish_dirs(dest: &Path, dirs: &BTreeMap<RelPath, Option<&Entry>>) -> Result<()> {
    for (path, entry) in dirs.iter().rev() {
        let dir = path.under(dest);
        let io = |e| Error::io(&dir, e);
        let handle = File::open(&dir).map_err(io)?;
        if let Some(entry) = entry {
            filetime::set_file_handle_times(&handle, None, Some(entry.mtime.to_filetime()))
                .map_err(io)?;
            handle
                .set_permissions(fs::Permissions::from_mode(entry.mode))
                .map_err(io)?;
        }
        handle.sync_all().map_err(io)?;
    }
    Ok(barman_fs::fsync_dir(dest)?)
}

/// Runs the regular files on `jobs` workers; returns what each file became
/// and the sessions, or the first error.
fn run_workers(
    shared: &Shared<'_>,
    sources: &dyn SourceFactory,
    files: &[&PlanItem],
    jobs: usize,
    install: &Sender<Pending>,
) -> Result<(Vec<FileDone>, Sessions)> {
    let mut done = Vec::with_capacity(files.len());
    let mut sessions = Vec::new();
    if files.is_empty() {
        return Ok((done, sessions));
    }
    let (queue, work) = crossbeam_channel::unbounded();
    for item in files {
        // The receiver is alive: this cannot fail.
        let _ = queue.send(*item);
    }
    drop(queue);
    let workers = jobs.clamp(1, files.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| worker_loop(shared, sources, &work, install)))
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(Some((source, files))) => {
                    sessions.push(source);
                    done.extend(files);
                }
                Ok(None) => {}
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    match shared.take_error() {
        Some(error) => Err(error),
        None => Ok((done, sessions)),
    }
}

/// One worker: opens a session and copies files from the queue until it is
/// empty or the copy stops. `None` when it failed (the error is recorded).
fn worker_loop(
    shared: &Shared<'_>,
    sources: &dyn SourceFactory,
    work: &Receiver<&PlanItem>,
    install: &Sender<Pending>,
) -> Option<(Box<dyn Source>, Vec<FileDone>)> {
    let run = || -> Result<(Box<dyn Source>, Vec<FileDone>)> {
        let mut worker = Worker::new(shared, sources.open()?, Some(install.clone()));
        let mut done = Vec::new();
        let mut ahead = ReadAhead::default();
        while let Some(item) = ahead.next(work, worker.source.as_mut()) {
            shared.check()?;
            match worker.copy(item) {
                Ok(file) => done.push(file),
                Err(Error::Vanished { path }) if shared.options.skip_vanished => {
                    tracing::info!("{path} vanished during the copy (dropped?): left out");
                    shared
                        .vanished
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(path);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((worker.source, done))
    };
    run().map_err(|error| shared.fail(error)).ok()
}

/// Files at most this large are read ahead (larger ones take long enough
/// that one round trip each does not matter).
const READ_AHEAD_MAX_FILE: u64 = 1 << 20;
/// At most this many files are claimed ahead by one worker…
const READ_AHEAD_FILES: usize = 32;
/// …holding at most about this many bytes.
const READ_AHEAD_BYTES: u64 = 8 << 20;

/// A worker's window of claimed files: small whole-file fetches are
/// announced to the source ([`Source::read_ahead`]) before they are copied,
/// so that an agent streams them back to back. The window only ever holds
/// small files besides at most one other, so the large files stay shared
/// among the workers.
#[derive(Default)]
struct ReadAhead<'p> {
    window: std::collections::VecDeque<&'p PlanItem>,
    bytes: u64,
}

impl<'p> ReadAhead<'p> {
    fn small_fetch(item: &PlanItem) -> bool {
        item.action == Action::Fetch && item.entry.size <= READ_AHEAD_MAX_FILE
    }

    /// The next file to copy, after topping up the window and announcing
    /// its small fetches.
    fn next(
        &mut self,
        work: &Receiver<&'p PlanItem>,
        source: &mut dyn Source,
    ) -> Option<&'p PlanItem> {
        let item = match self.window.pop_front() {
            Some(item) => {
                self.bytes -= item.entry.size;
                item
            }
            None => work.recv().ok()?,
        };
        if !Self::small_fetch(item) {
            return Some(item);
        }
        while self.window.len() < READ_AHEAD_FILES
            && self.bytes < READ_AHEAD_BYTES
            && self
                .window
                .back()
                .is_none_or(|last| Self::small_fetch(last))
        {
            let Ok(next) = work.try_recv() else { break };
            self.bytes += next.entry.size;
            self.window.push_back(next);
        }
        // The source skips the files it was told about already.
        let paths: Vec<&RelPath> = std::iter::once(item)
            .chain(
                self.window
                    .iter()
                    .copied()
                    .take_while(|i| Self::small_fetch(i)),
            )
            .map(|i| &i.entry.path)
            .collect();
        source.read_ahead(&paths);
        Some(item)
    }
}

/// One installer: finishes written files until the queue closes. Once the
/// copy is interrupted, the files left are dropped (their temporary files
/// removed).
fn installer_loop(shared: &Shared<'_>, pending: &Receiver<Pending>) {
    while let Ok(file) = pending.recv() {
        if shared.interrupted() {
            continue;
        }
        if let Err(error) = file.install() {
            shared.fail(error);
        }
    }
}

/// Source sessions, one per worker.
type Sessions = Vec<Box<dyn Source>>;

/// State shared by the workers.
struct Shared<'a> {
    dest: &'a Path,
    options: &'a ExecOptions,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
    /// Set when a worker failed: the others stop.
    stop: AtomicBool,
    /// The first error.
    error: Mutex<Option<Error>>,
    /// Files that vanished (with `skip_vanished`).
    vanished: Mutex<Vec<String>>,
    global: Option<TokenBucket>,
    trees: BTreeMap<String, TokenBucket>,
}

impl<'a> Shared<'a> {
    fn new(
        dest: &'a Path,
        options: &'a ExecOptions,
        progress: &'a dyn Progress,
        cancel: &'a AtomicBool,
    ) -> Self {
        Self {
            dest,
            options,
            progress,
            cancel,
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
            vanished: Mutex::new(Vec::new()),
            global: options
                .bandwidth_limit
                .filter(|&rate| rate > 0)
                .map(TokenBucket::new),
            trees: options
                .tree_limits
                .iter()
                .filter(|&(_, &rate)| rate > 0)
                .map(|(tree, &rate)| (tree.clone(), TokenBucket::new(rate)))
                .collect(),
        }
    }

    fn interrupted(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.stop.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once the copy is cancelled or a worker failed.
    fn check(&self) -> Result<()> {
        if self.interrupted() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Accounts for `bytes` received from the source for a file of `tree`:
    /// waits for the bandwidth limits.
    fn received(&self, tree: &str, bytes: usize) -> Result<()> {
        self.check()?;
        let bytes = bytes as u64;
        let interrupted = || self.interrupted();
        for bucket in self.global.iter().chain(self.trees.get(tree)) {
            if !bucket.take_until(bytes, &interrupted) {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    }

    /// Records a worker's error (the first one wins) and stops the others.
    fn fail(&self, error: Error) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    fn take_error(&self) -> Option<Error> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// How a file came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Fetched,
    Linked,
    CopiedLocally,
    Delta,
}

/// A finished file.
struct FileDone {
    entry: ManifestEntry,
    how: How,
}

impl FileDone {
    /// A file written by this copy, with the plan entry's mtime and mode.
    fn written(entry: &Entry, hashed: Hashed, how: How) -> Self {
        Self {
            entry: ManifestEntry {
                entry: Entry {
                    path: entry.path.clone(),
                    kind: EntryKind::File,
                    size: hashed.size,
                    mtime: entry.mtime,
                    mode: copy_mode(entry.mode),
                },
                blake3: Some(hashed.blake3),
                pages: hashed.pages,
            },
            how,
        }
    }
}

/// A file's length and fingerprints.
struct Hashed {
    size: u64,
    blake3: FileHash,
    pages: Option<PageHashes>,
}

impl Hashed {
    /// Finishes `hasher`; page fingerprints are kept only when the file
    /// (`path` inside its tree, at its final size) is page-structured.
    fn finish(hasher: Hasher, path: &RelPath) -> Self {
        let size = hasher.len();
        let (blake3, pages) = hasher.finish();
        Self {
            size,
            blake3,
            pages: pages.filter(|_| is_page_structured(path.in_tree(), size)),
        }
    }

    /// Whether this is the content `previous` describes.
    fn matches(&self, previous: &ManifestEntry) -> bool {
        previous.blake3 == Some(self.blake3) && previous.size == self.size
    }
}

/// A hasher sized for `entry`.
fn hasher_for(entry: &Entry) -> Hasher {
    Hasher::new(is_page_structured(entry.path.in_tree(), entry.size))
}

/// The previous backup's copy of a file.
struct Previous<'m> {
    /// Its manifest entry.
    entry: &'m ManifestEntry,
    /// Where it is.
    path: PathBuf,
    /// Its metadata (a regular file).
    meta: fs::Metadata,
}

/// Creates the temporary file for `entry` under `dest`
/// ([`barman_fs::TempFile`]: a new name, created exclusively, removed when
/// dropped unless renamed into place), readable and writable by the owner
/// whatever the entry's mode is.
fn create_temp(dest: &Path, entry: &Entry) -> Result<TempFile> {
    Ok(TempFile::create(
        entry.path.under(dest),
        copy_mode(entry.mode) | 0o600,
    )?)
}

/// A written temporary file, not yet installed.
struct Pending {
    temp: TempFile,
    mode: u32,
    mtime: Mtime,
}

impl Pending {
    /// The written `temp`, to be given the entry's mode and mtime, fsynced
    /// and renamed into place by [`Pending::install`].
    fn new(temp: TempFile, entry: &Entry) -> Self {
        Self {
            temp,
            mode: copy_mode(entry.mode),
            mtime: entry.mtime,
        }
    }

    /// Sets mode and mtime, fsyncs, renames into place (the directories
    /// are fsynced at the end, by `finish_dirs`).
    fn install(self) -> Result<()> {
        let Self { temp, mode, mtime } = self;
        let io = |e| Error::io(temp.path(), e);
        let file = temp.file();
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io)?;
        filetime::set_file_handle_times(file, None, Some(mtime.to_filetime())).map_err(io)?;
        temp.sync()?;
        Ok(temp.rename_unsynced()?)
    }
}

/// Where the bytes of a new file go: hashed as they reach the file, with
/// write-behind ([`fsutil::WriteBehind`]).
struct Sink<'f> {
    file: &'f File,
    hasher: Hasher,
    behind: fsutil::WriteBehind,
}

impl Sink<'_> {
    fn emit(&mut self, data: &[u8]) -> io::Result<()> {
        self.hasher.update(data);
        let mut file = self.file;
        file.write_all(data)?;
        self.behind.wrote(self.file, data.len());
        Ok(())
    }
}

/// A new file being written: buffered (large writes go straight through),
/// hashed in large slices as the bytes reach the file.
struct Output<'f> {
    sink: Sink<'f>,
    buf: Vec<u8>,
}

impl<'f> Output<'f> {
    /// Writes to `file` (empty), hashing with `hasher`.
    fn new(file: &'f File, hasher: Hasher) -> Self {
        Self {
            sink: Sink {
                file,
                hasher,
                behind: fsutil::WriteBehind::default(),
            },
            buf: Vec::with_capacity(BUF_SIZE),
        }
    }

    /// Writes to `file`, hashed as `entry` is.
    fn for_entry(file: &'f File, entry: &Entry) -> Self {
        Self::new(file, hasher_for(entry))
    }

    /// Bytes written so far (buffered ones included).
    fn len(&self) -> u64 {
        self.sink.behind.written() + self.buf.len() as u64
    }

    /// Appends `data`.
    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        if self.buf.len() + data.len() > self.buf.capacity() {
            self.flush_buf()?;
        }
        if data.len() >= self.buf.capacity() {
            self.sink.emit(data)
        } else {
            self.buf.extend_from_slice(data);
            Ok(())
        }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.sink.emit(&self.buf);
        self.buf.clear();
        result
    }

    /// Writes what is buffered; returns the hasher.
    fn finish(mut self) -> io::Result<Hasher> {
        self.flush_buf()?;
        Ok(self.sink.hasher)
    }
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}

/// Copies the previous copy of a file into a page delta's output, from
/// where the output stands to a given offset.
struct BaseCopy<'b, 's, 'a> {
    base: &'b File,
    base_path: &'b Path,
    out_path: &'b Path,
    buf: &'b mut [u8],
    /// Set when the previous copy ended early (the rest is zeros, which
    /// the page check then refuses).
    short: bool,
    shared: &'s Shared<'a>,
}

impl BaseCopy<'_, '_, '_> {
    /// Appends the previous copy's bytes `out.len()..to` to `out`.
    fn copy_to(&mut self, out: &mut Output<'_>, to: u64) -> Result<()> {
        while out.len() < to {
            self.shared.check()?;
            let at = out.len();
            let want = usize::try_from(to - at).map_or(self.buf.len(), |n| n.min(self.buf.len()));
            let n = if self.short {
                self.buf[..want].fill(0);
                want
            } else {
                match self.base.read_at(&mut self.buf[..want], at) {
                    Ok(0) => {
                        self.short = true;
                        continue;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(self.base_path, e)),
                }
            };
            out.put(&self.buf[..n])
                .map_err(|e| Error::io(self.out_path, e))?;
            self.shared.progress.advance(n as u64);
        }
        Ok(())
    }
}

/// Whether every page of `pages` (a page delta's result) outside the runs
/// the source sent has the previous copy's fingerprint (those pages came
/// from the previous copy).
fn unsent_pages_match(pages: &PageHashes, previous: &PageHashes, sent: &[(u64, u64)]) -> bool {
    let mut runs = sent.iter().peekable();
    pages.0.iter().enumerate().all(|(n, page)| {
        let n64 = n as u64;
        while runs
            .next_if(|&&(first, count)| first + count <= n64)
            .is_some()
        {}
        if runs.peek().is_some_and(|&&(first, _)| first <= n64) {
            return true;
        }
        previous.0.get(n) == Some(page)
    })
}

/// One worker: a source session and a buffer.
struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    source: Box<dyn Source>,
    buf: Vec<u8>,
    /// The installers' queue (`None`: files are installed in place).
    install: Option<Sender<Pending>>,
    /// Directories of the previous backup known to be real directories.
    previous_dirs: HashSet<RelPath>,
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(
        shared: &'s Shared<'a>,
        source: Box<dyn Source>,
        install: Option<Sender<Pending>>,
    ) -> Self {
        Self {
            shared,
            source,
            buf: vec![0; BUF_SIZE],
            install,
            previous_dirs: HashSet::new(),
        }
    }

    /// Finishes a written file: through the installers, or here.
    fn install(&self, temp: TempFile, entry: &Entry) -> Result<()> {
        let pending = Pending::new(temp, entry);
        match &self.install {
            Some(queue) => match queue.send(pending) {
                Ok(()) => Ok(()),
                Err(crossbeam_channel::SendError(pending)) => pending.install(),
            },
            None => pending.install(),
        }
    }

    /// Copies one file as planned.
    fn copy(&mut self, item: &PlanItem) -> Result<FileDone> {
        let entry = &item.entry;
        let done = match item.action {
            Action::Link => self.link_or_fetch(entry)?,
            Action::CopyPrevious => self.copy_previous_or_fetch(entry)?,
            Action::DeltaPages => self.delta_pages(entry)?,
            Action::DeltaRsync => self.delta_rsync(entry)?,
            Action::Fetch | Action::Mkdir | Action::Symlink => self.fetch(entry)?,
        };
        self.shared.progress.file_done(&entry.path);
        Ok(done)
    }

    /// Streams the whole file from the source.
    fn fetch(&mut self, entry: &Entry) -> Result<FileDone> {
        let shared = self.shared;
        let temp = create_temp(shared.dest, entry)?;
        let hasher = {
            let mut out = Output::for_entry(temp.file(), entry);
            let tree = entry.path.tree();
            self.source.read(&entry.path, &mut |chunk| {
                shared.received(tree, chunk.len())?;
                out.put(chunk).map_err(|e| Error::io(temp.path(), e))?;
                shared.progress.advance(chunk.len() as u64);
                Ok(())
            })?;
            out.finish().map_err(|e| Error::io(temp.path(), e))?
        };
        let hashed = Hashed::finish(hasher, &entry.path);
        // A file fetched whole (small, or compared because it was modified
        // after the previous backup started) that turns out identical to the
        // previous copy is linked under `Reuse::Link`, so unchanged content
        // is never stored twice.
        if shared.options.reuse == Reuse::Link
            && let Some(previous) = self.previous(&entry.path)?
            && previous.meta.len() == previous.entry.size
            && hashed.matches(previous.entry)
        {
            drop(temp);
            if let Some(done) = self.link(entry, &previous)? {
                return Ok(done);
            }
            return self.fetch(entry);
        }
        self.install(temp, entry)?;
        Ok(FileDone::written(entry, hashed, How::Fetched))
    }

    /// The previous backup's copy of `path`, if there is a usable one: listed
    /// in the previous manifest as a file, a regular file under real
    /// directories of the previous backup.
    fn previous(&mut self, path: &RelPath) -> Result<Option<Previous<'a>>> {
        let options = self.shared.options;
        let (Some(dir), Some(manifest)) = (&options.previous_dir, &options.previous) else {
            return Ok(None);
        };
        let Some(entry) = manifest.get(path).filter(|e| e.kind == EntryKind::File) else {
            return Ok(None);
        };
        let mut checked = Vec::new();
        let mut ancestor = path.parent();
        while let Some(parent) = ancestor.filter(|p| !self.previous_dirs.contains(p)) {
            match fs::symlink_metadata(parent.under(dir)) {
                Ok(meta) if meta.is_dir() => {}
                _ => {
                    tracing::warn!(%path, "the previous backup's copy is not under a directory");
                    return Ok(None);
                }
            }
            ancestor = parent.parent();
            checked.push(parent);
        }
        self.previous_dirs.extend(checked);
        let file = path.under(dir);
        match fs::symlink_metadata(&file) {
            Ok(meta) if meta.is_file() => Ok(Some(Previous {
                entry,
                path: file,
                meta,
            })),
            Ok(_) => {
                tracing::warn!(%path, "the previous backup's copy is not a regular file");
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(%path, "the previous backup's copy is missing");
                Ok(None)
            }
            Err(e) => Err(Error::io(file, e)),
        }
    }

    /// Hard-links the previous copy, or fetches.
    fn link_or_fetch(&mut self, entry: &Entry) -> Result<FileDone> {
        if let Some(previous) = self.previous(&entry.path)? {
            if previous.meta.len() != previous.entry.size {
                tracing::warn!(path = %entry.path, "the previous backup's copy changed size");
            } else if let Some(done) = self.link(entry, &previous)? {
                return Ok(done);
            }
        }
        self.fetch(entry)
    }

    /// Hard-links `previous` at the entry's place (through a temporary name,
    /// renamed over); falls back to a local copy when the link cannot be
    /// made. `None` when the previous copy is gone.
    fn link(&mut self, entry: &Entry, previous: &Previous<'_>) -> Result<Option<FileDone>> {
        let temp = match TempPath::hard_link(&previous.path, &entry.path.under(self.shared.dest)) {
            Ok(temp) => temp,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                tracing::warn!(path = %entry.path, error = %e, "cannot hard-link the previous backup's copy; copying it");
                return self.copy_previous(entry, previous);
            }
        };
        temp.rename_unsynced()?;
        let meta = &previous.meta;
        self.shared.progress.advance(meta.len());
        Ok(Some(FileDone {
            entry: ManifestEntry {
                entry: Entry {
                    path: entry.path.clone(),
                    kind: EntryKind::File,
                    size: meta.len(),
                    mtime: Mtime::of(meta),
                    mode: meta.mode() & 0o7777,
                },
                blake3: previous.entry.blake3,
                pages: previous.entry.pages.clone(),
            },
            how: How::Linked,
        }))
    }

    /// Copies the previous copy locally, or fetches.
    fn copy_previous_or_fetch(&mut self, entry: &Entry) -> Result<FileDone> {
        if let Some(previous) = self.previous(&entry.path)?
            && let Some(done) = self.copy_previous(entry, &previous)?
        {
            return Ok(done);
        }
        self.fetch(entry)
    }

    /// Copies `previous` to a temporary file, checking it against the
    /// previous manifest. `None` (nothing left behind) when it differs.
    fn copy_previous(
        &mut self,
        entry: &Entry,
        previous: &Previous<'_>,
    ) -> Result<Option<FileDone>> {
        let temp = create_temp(self.shared.dest, entry)?;
        let Some(hashed) = self.copy_base(entry, previous, &temp)? else {
            return Ok(None);
        };
        self.install(temp, entry)?;
        self.shared.progress.advance(hashed.size);
        Ok(Some(FileDone::written(entry, hashed, How::CopiedLocally)))
    }

    /// Copies `previous` into `temp` (a new temporary file) while hashing
    /// it; `None` when it does not match the previous manifest.
    fn copy_base(
        &mut self,
        entry: &Entry,
        previous: &Previous<'_>,
        temp: &TempFile,
    ) -> Result<Option<Hashed>> {
        let mut source = File::open(&previous.path).map_err(|e| Error::io(&previous.path, e))?;
        let mut out = Output::for_entry(temp.file(), entry);
        self.pump(&mut source, &previous.path, &mut out, temp.path())?;
        let hasher = out.finish().map_err(|e| Error::io(temp.path(), e))?;
        let hashed = Hashed::finish(hasher, &entry.path);
        if hashed.matches(previous.entry) {
            Ok(Some(hashed))
        } else {
            tracing::warn!(
                path = %entry.path,
                "the previous backup's copy does not match its manifest; fetching the file"
            );
            Ok(None)
        }
    }

    /// Copies `reader` to `out` in chunks, checking for cancellation.
    fn pump(
        &mut self,
        reader: &mut dyn Read,
        reader_path: &Path,
        out: &mut Output<'_>,
        out_path: &Path,
    ) -> Result<()> {
        loop {
            self.shared.check()?;
            let n = match reader.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(reader_path, e)),
            };
            out.put(&self.buf[..n])
                .map_err(|e| Error::io(out_path, e))?;
        }
    }

    /// Page delta, in one pass: the new file is written in order, runs of
    /// unchanged pages read from the previous copy between the changed
    /// pages the source sends. The pages taken from the previous copy are
    /// checked against the previous manifest's fingerprints (a mismatch:
    /// the file is fetched). When the source finds no page changed and the
    /// size unchanged, nothing is written: under `Reuse::Link` the previous
    /// copy is linked, else copied.
    fn delta_pages(&mut self, entry: &Entry) -> Result<FileDone> {
        let Some(previous) = self.previous(&entry.path)? else {
            return self.fetch(entry);
        };
        let Some(previous_pages) = previous.entry.pages.as_ref() else {
            return self.fetch(entry);
        };
        if previous.meta.len() != previous.entry.size {
            tracing::warn!(path = %entry.path, "the previous backup's copy changed size");
            return self.fetch(entry);
        }
        let base = match File::open(&previous.path) {
            Ok(base) => base,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.fetch(entry),
            Err(e) => return Err(Error::io(&previous.path, e)),
        };
        let shared = self.shared;
        let temp = create_temp(shared.dest, entry)?;
        let mut out = Output::new(temp.file(), Hasher::new(true));
        let mut base_copy = BaseCopy {
            base: &base,
            base_path: &previous.path,
            out_path: temp.path(),
            buf: &mut self.buf,
            short: false,
            shared,
        };
        // Runs of pages sent by the source: (first, count).
        let mut sent: Vec<(u64, u64)> = Vec::new();
        let tree = entry.path.tree();
        let end = self
            .source
            .changed_pages(&entry.path, previous_pages, &mut |chunk| {
                let PageChunk::Pages { first, data } = chunk;
                shared.received(tree, data.len())?;
                let offset = first.checked_mul(PAGE_SIZE as u64).ok_or_else(|| {
                    Error::Protocol(format!("{}: page number {first} out of range", entry.path))
                })?;
                if offset < out.len() {
                    return Err(Error::Protocol(format!(
                        "{}: page {first} sent out of order",
                        entry.path
                    )));
                }
                base_copy.copy_to(&mut out, offset)?;
                out.put(data).map_err(|e| Error::io(temp.path(), e))?;
                shared.progress.advance(data.len() as u64);
                let pages = (data.len() as u64).div_ceil(PAGE_SIZE as u64);
                match sent.last_mut() {
                    Some((start, count)) if *start + *count == first => *count += pages,
                    _ => sent.push((first, pages)),
                }
                Ok(())
            })?;
        if out.len() > end.size {
            return Err(Error::Protocol(format!(
                "{}: pages sent beyond the file's end ({} bytes)",
                entry.path, end.size
            )));
        }
        if sent.is_empty() && end.size == previous.entry.size {
            // Unchanged: the previous copy's fingerprints are the source's.
            drop(temp);
            if self.shared.options.reuse == Reuse::Link {
                if let Some(done) = self.link(entry, &previous)? {
                    return Ok(done);
                }
                return self.fetch(entry);
            }
            if let Some(mut done) = self.copy_previous(entry, &previous)? {
                done.how = How::Delta;
                return Ok(done);
            }
            return self.fetch(entry);
        }
        base_copy.copy_to(&mut out, end.size)?;
        let short = base_copy.short;
        let hasher = out.finish().map_err(|e| Error::io(temp.path(), e))?;
        let size = hasher.len();
        let (blake3, pages) = hasher.finish();
        let pages = pages.unwrap_or_default();
        if short || !unsent_pages_match(&pages, previous_pages, &sent) {
            tracing::warn!(
                path = %entry.path,
                "the previous backup's copy does not match its manifest; fetching the file"
            );
            drop(temp);
            return self.fetch(entry);
        }
        let hashed = Hashed {
            size,
            blake3,
            pages: Some(pages).filter(|_| is_page_structured(entry.path.in_tree(), size)),
        };
        self.finish_delta(entry, &previous, temp, hashed)
    }

    /// Installs a file rebuilt from a delta, or, when it is the previous
    /// copy unchanged and reuse is by hard link, links that instead.
    fn finish_delta(
        &mut self,
        entry: &Entry,
        previous: &Previous<'_>,
        temp: TempFile,
        hashed: Hashed,
    ) -> Result<FileDone> {
        if self.shared.options.reuse == Reuse::Link && hashed.matches(previous.entry) {
            drop(temp);
            if let Some(done) = self.link(entry, previous)? {
                return Ok(done);
            }
            return self.fetch(entry);
        }
        self.install(temp, entry)?;
        Ok(FileDone::written(entry, hashed, How::Delta))
    }

    /// rsync delta against the previous copy (held in memory, so only up to
    /// [`RSYNC_MAX_FILE_SIZE`]).
    fn delta_rsync(&mut self, entry: &Entry) -> Result<FileDone> {
        let Some(previous) = self.previous(&entry.path)? else {
            return self.fetch(entry);
        };
        if previous.meta.len() > RSYNC_MAX_FILE_SIZE || entry.size > RSYNC_MAX_FILE_SIZE {
            return self.fetch(entry);
        }
        let mut base = Vec::new();
        File::open(&previous.path)
            .and_then(|f| f.take(RSYNC_MAX_FILE_SIZE + 1).read_to_end(&mut base))
            .map_err(|e| Error::io(&previous.path, e))?;
        let base_size = base.len() as u64;
        if base_size != previous.entry.size
            || previous.entry.blake3 != Some(FileHash(*blake3::hash(&base).as_bytes()))
        {
            tracing::warn!(
                path = %entry.path,
                "the previous backup's copy does not match its manifest; fetching the file"
            );
            return self.fetch(entry);
        }
        let signature = Signature::calculate(
            &base,
            SignatureOptions {
                block_size: RSYNC_BLOCK_SIZE,
                crypto_hash_size: RSYNC_HASH_SIZE,
            },
        );
        let shared = self.shared;
        let tree = entry.path.tree();
        let mut delta = Vec::new();
        self.source
            .rsync_delta(&entry.path, signature.serialized(), &mut |chunk| {
                shared.received(tree, chunk.len())?;
                if delta.len() + chunk.len() > RSYNC_MAX_DELTA {
                    return Err(Error::Protocol(format!(
                        "{}: rsync delta larger than {RSYNC_MAX_DELTA} bytes",
                        entry.path
                    )));
                }
                delta.extend_from_slice(chunk);
                Ok(())
            })?;
        shared.check()?;
        let temp = create_temp(shared.dest, entry)?;
        let hasher = {
            let mut out = Output::for_entry(temp.file(), entry);
            fast_rsync::apply(&base, &delta, &mut out).map_err(|e| match e {
                fast_rsync::ApplyError::Io(e) => Error::io(temp.path(), e),
                e => Error::Protocol(format!("{}: bad rsync delta: {e}", entry.path)),
            })?;
            out.finish().map_err(|e| Error::io(temp.path(), e))?
        };
        drop((base, delta));
        let hashed = Hashed::finish(hasher, &entry.path);
        shared.progress.advance(hashed.size);
        self.finish_delta(entry, &previous, temp, hashed)
    }
}
