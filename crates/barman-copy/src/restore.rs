//! Restores a backup: pushes the files a [`Manifest`] lists from a backup
//! directory into a [`Destination`] (a local directory, or a remote host
//! through an agent session), verifying every file's blake3 while it is
//! sent.
//!
//! The order of work:
//!
//! 1. every destination root is created (mode `0700`), then listed (all of
//!    it: stale temporary files of barman-rs too): without `delta` a root
//!    holding anything is refused ([`Error::NotEmpty`]);
//! 2. directories, parents first;
//! 3. regular files, largest first, by `jobs` worker threads, each with its
//!    own destination session; with `delta`, a file already in the
//!    destination with the same size and content is kept (counted as
//!    reused) and only the others are written;
//! 4. `data/global/pg_control` last;
//! 5. symbolic links (targets overridden by
//!    [`RestoreOptions::symlink_targets`]: tablespace relocation);
//! 6. with `delta`, whatever the destination holds that the manifest does
//!    not list is removed (temporary files an interrupted restore left
//!    included);
//! 7. directories get their final modes (the data directory's root `0700`,
//!    or `0750` with group access: [`data_root_mode`]) and the destination
//!    is made durable ([`Destination::sync`]).
//!
//! A file whose content does not match the manifest's checksum is never
//! installed: the write is aborted (its temporary file removed) and the
//! restore fails with [`Error::Checksum`] naming the file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::combine::{Combined, CombinedReader};
use crate::entry::{Entry, EntryKind, FileMeta, RelPath, copy_mode, warn_setid};
use crate::exclusion::Exclusions;
use crate::executor::CONTROL_FILE;
use crate::hash::{FileHash, Hasher};
use crate::local::{self, NewFile};
use crate::manifest::{Manifest, ManifestEntry};
use crate::progress::Progress;
use crate::ratelimit::TokenBucket;
use crate::remote::{AgentFactory, AgentSource};
use crate::source::{PageChunk, Roots, Source};
use crate::{Error, Result};

/// Buffer size of file reads.
const BUF_SIZE: usize = 1 << 20;

/// The tree of the data directory.
const DATA_TREE: &str = "data";

/// The mode a restored data directory's root gets, from the backup's:
/// `0750` when the backup had PostgreSQL's group access (group read and
/// search, nothing for others: `initdb --allow-group-access`), `0700`
/// otherwise. PostgreSQL refuses to start on a more open data directory
/// (a `0755` root, say), and pg_basebackup creates it `0700` or `0750`
/// the same way.
pub fn data_root_mode(backup_mode: u32) -> u32 {
    // Group read and search (0o050), and nothing for others (0o007).
    if backup_mode & 0o057 == 0o050 {
        0o750
    } else {
        0o700
    }
}

/// The final mode of restored directory `entry`: its own, except for the
/// data directory's root ([`data_root_mode`]).
fn dir_mode(entry: &ManifestEntry) -> u32 {
    if entry.path.as_str() == DATA_TREE {
        data_root_mode(entry.mode)
    } else {
        entry.mode
    }
}

/// A session with the place a backup is restored to. One per worker.
pub trait Destination: Send {
    /// Lists tree `tree` (everything, nothing excluded), root included.
    fn list(&mut self, tree: &str) -> Result<Vec<Entry>>;
    /// Creates a directory (and missing parents) with `mode`.
    fn mkdir(&mut self, path: &RelPath, mode: u32) -> Result<()>;
    /// Creates (or replaces) a symbolic link.
    fn symlink(&mut self, path: &RelPath, target: &str) -> Result<()>;
    /// Removes a file, link or directory tree (missing is fine).
    fn remove(&mut self, path: &RelPath) -> Result<()>;
    /// Writes a file of `meta.size` bytes read from `data` (temporary
    /// name, rename), with `meta`'s mode and mtime. An error from `data`
    /// aborts the write and leaves nothing at `path`.
    fn write_file(&mut self, path: &RelPath, meta: FileMeta, data: &mut dyn Read) -> Result<()>;
    /// Whether the regular file at `path` holds exactly `entry`'s content
    /// (size and blake3, or page fingerprints).
    fn same_content(&mut self, entry: &ManifestEntry) -> Result<bool>;
    /// Makes everything written so far durable: the files and the
    /// directories `dirs` of trees `trees`.
    fn sync(&mut self, trees: &[String], dirs: &[&RelPath]) -> Result<()>;
    /// Bytes sent to the peer so far (for a local destination, written).
    fn wire_bytes(&self) -> u64;
}

/// Opens destination sessions (one per worker).
pub trait DestinationFactory: Send + Sync {
    /// A new session.
    fn open(&self) -> Result<Box<dyn Destination>>;
}

/// A local directory tree as a [`Destination`]; files are renamed into
/// place without an fsync each, and [`sync`](Destination::sync) calls
/// `syncfs` on every root's file system.
#[derive(Debug, Clone)]
pub struct LocalDestination {
    roots: Roots,
    written: u64,
}

impl LocalDestination {
    /// A destination writing under `roots` (tree name → local directory).
    pub fn new(roots: Roots) -> Self {
        Self { roots, written: 0 }
    }
}

impl DestinationFactory for LocalDestination {
    fn open(&self) -> Result<Box<dyn Destination>> {
        Ok(Box::new(Self::new(self.roots.clone())))
    }
}

impl Destination for LocalDestination {
    fn list(&mut self, tree: &str) -> Result<Vec<Entry>> {
        local::list(&self.roots, tree, &Exclusions::none())
    }

    fn mkdir(&mut self, path: &RelPath, mode: u32) -> Result<()> {
        local::mkdir(&self.roots, path, mode)
    }

    fn symlink(&mut self, path: &RelPath, target: &str) -> Result<()> {
        local::symlink(&self.roots, path, target)
    }

    fn remove(&mut self, path: &RelPath) -> Result<()> {
        local::remove(&self.roots, path).map(|_| ())
    }

    fn write_file(&mut self, path: &RelPath, meta: FileMeta, data: &mut dyn Read) -> Result<()> {
        let FileMeta { size, mode, mtime } = meta;
        let mut file = NewFile::create(&self.roots, path, mode)?;
        let mut buf = vec![0; BUF_SIZE.min(usize::try_from(size).unwrap_or(BUF_SIZE).max(1))];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Dropping `file` removes its temporary file.
                Err(e) => return Err(Error::io(path.as_str(), e)),
            };
            file.write(&buf[..n])?;
            left -= n as u64;
            self.written += n as u64;
        }
        file.finish_unsynced(size, mode, mtime)
    }

    fn same_content(&mut self, entry: &ManifestEntry) -> Result<bool> {
        let Some(expected) = entry.blake3 else {
            return Ok(false);
        };
        let (mut file, meta) = match local::open_regular(&self.roots, &entry.path) {
            Ok(f) => f,
            Err(Error::Vanished { .. } | Error::UnsafePath { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if meta.len() != entry.size {
            return Ok(false);
        }
        let (_, actual, _) = crate::hash::hash_reader(&mut file, false)
            .map_err(|e| Error::io(entry.path.as_str(), e))?;
        Ok(actual == expected)
    }

    fn sync(&mut self, trees: &[String], _dirs: &[&RelPath]) -> Result<()> {
        // One syncfs per file system covers every file and directory.
        for tree in trees {
            if let Some(root) = self.roots.get(tree) {
                let dir = File::open(root).map_err(|e| Error::io(root, e))?;
                rustix::fs::syncfs(&dir).map_err(|e| Error::io(root, e.into()))?;
            }
        }
        Ok(())
    }

    fn wire_bytes(&self) -> u64 {
        self.written
    }
}

impl Destination for AgentSource {
    fn list(&mut self, tree: &str) -> Result<Vec<Entry>> {
        Source::list(self, tree, &Exclusions::none())
    }

    fn mkdir(&mut self, path: &RelPath, mode: u32) -> Result<()> {
        AgentSource::mkdir(self, path, mode)
    }

    fn symlink(&mut self, path: &RelPath, target: &str) -> Result<()> {
        AgentSource::symlink(self, path, target)
    }

    fn remove(&mut self, path: &RelPath) -> Result<()> {
        AgentSource::remove(self, path)
    }

    fn write_file(&mut self, path: &RelPath, meta: FileMeta, data: &mut dyn Read) -> Result<()> {
        AgentSource::write_file_unsynced(self, path, meta, data)
    }

    fn same_content(&mut self, entry: &ManifestEntry) -> Result<bool> {
        let checked = if let Some(pages) = &entry.pages {
            // The agent compares its pages with the fingerprints and sends
            // only the ones that differ: nothing sent means the same content.
            let mut sent = 0_u64;
            Source::changed_pages(self, &entry.path, pages, &mut |chunk| {
                let PageChunk::Pages { data, .. } = chunk;
                sent += data.len() as u64;
                Ok(())
            })
            .map(|end| end.size == entry.size && end.pages_sent == 0 && sent == 0)
        } else if let Some(expected) = entry.blake3 {
            let mut hasher = Hasher::new(false);
            Source::read(self, &entry.path, &mut |chunk| {
                hasher.update(chunk);
                Ok(())
            })
            .map(|size| size == entry.size && hasher.finish().0 == expected)
        } else {
            Ok(false)
        };
        match checked {
            Ok(same) => Ok(same),
            // A missing or unreadable file is simply not the same.
            Err(Error::Vanished { .. } | Error::Agent(_) | Error::UnsafePath { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn sync(&mut self, trees: &[String], _dirs: &[&RelPath]) -> Result<()> {
        // Files were written without an fsync each: one syncfs per tree's
        // file system on the agent's host covers files and directories.
        for tree in trees {
            self.syncfs(&RelPath::new(tree.as_str())?)?;
        }
        Ok(())
    }

    fn wire_bytes(&self) -> u64 {
        self.bytes_sent()
    }
}

impl DestinationFactory for AgentFactory {
    fn open(&self) -> Result<Box<dyn Destination>> {
        Ok(Box::new(self.session()?))
    }
}

/// Options of [`restore`].
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Worker threads (and destination sessions); 0 means 1.
    pub jobs: usize,
    /// Bandwidth limit in bytes per second (`None` or 0: unlimited).
    pub bandwidth_limit: Option<u64>,
    /// Delta restore: the destination may hold files; identical ones are
    /// kept, the others rewritten, extra ones removed.
    pub delta: bool,
    /// Symbolic links whose target is replaced (path → new target):
    /// `data/pg_tblspc/<oid>` of relocated tablespaces.
    pub symlink_targets: BTreeMap<RelPath, String>,
}

/// What a restore did (serialised without the workers and the wall time,
/// which the caller reports its own way).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreReport {
    /// Regular files in the backup.
    pub files: u64,
    /// Files written.
    pub files_written: u64,
    /// Files already in the destination with the right content (delta).
    pub files_reused: u64,
    /// Entries of the destination removed because the backup does not
    /// hold them (delta).
    pub files_removed: u64,
    /// Files written without a checksum to verify against.
    pub files_unverified: u64,
    /// Files produced by combining an incremental backup chain
    /// ([`restore_combined`]): reconstructed relation files and the
    /// rewritten backup label, verified through their sources.
    pub files_combined: u64,
    /// Sum of the sizes of the backup's files.
    pub bytes_total: u64,
    /// Bytes of files written.
    pub bytes_written: u64,
    /// Bytes sent to the destination sessions (on the wire).
    pub wire_bytes: u64,
    /// Worker sessions used.
    #[serde(skip)]
    pub workers: usize,
    /// Wall time.
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Restores the entries of `manifest` from `backup_dir` (tree roots are
/// `backup_dir/<tree>`) into sessions opened by `dest`.
///
/// # Errors
///
/// [`Error::NotEmpty`] when a destination tree holds something and
/// `delta` is off; [`Error::Checksum`] naming the first file whose content
/// differs from the manifest; [`Error::Cancelled`] when `cancel` is set;
/// I/O and session errors otherwise. Nothing is ever removed from the
/// destination before every check that can refuse the restore has passed.
pub fn restore(
    manifest: &Manifest,
    backup_dir: &Path,
    dest: &dyn DestinationFactory,
    options: &RestoreOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<RestoreReport> {
    restore_with(manifest, backup_dir, None, dest, options, progress, cancel)
}

/// Restores the combined data directory of an incremental backup chain
/// (planned by [`crate::combine::plan`]): as [`restore`] of
/// [`Combined::manifest`] from the leaf's directory, the files the plan
/// produces streamed from the chain's sources (verified against their
/// manifests) instead of read from the leaf.
///
/// # Errors
///
/// As [`restore`]; [`Error::Checksum`] naming a source file of the chain
/// that does not match its backup's manifest, [`Error::Incremental`] for a
/// malformed incremental file. A file whose sources fail is not installed.
pub fn restore_combined(
    combined: &Combined<'_>,
    dest: &dyn DestinationFactory,
    options: &RestoreOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<RestoreReport> {
    restore_with(
        combined.manifest(),
        combined.leaf_dir(),
        Some(combined),
        dest,
        options,
        progress,
        cancel,
    )
}

/// [`restore`], with the files `combined` plans produced by it.
fn restore_with(
    manifest: &Manifest,
    backup_dir: &Path,
    combined: Option<&Combined<'_>>,
    dest: &dyn DestinationFactory,
    options: &RestoreOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<RestoreReport> {
    let started = Instant::now();
    // `data` first: a non-empty data directory is refused before any
    // tablespace directory is created.
    let mut trees: Vec<String> = manifest
        .iter()
        .filter(|e| e.path.parent().is_none())
        .map(|e| e.path.as_str().to_owned())
        .collect();
    trees.sort_by_key(|t| t != "data");
    let mut main = dest.open()?;

    // 1. Roots, and what the destination already holds.
    let mut existing = list_roots(main.as_mut(), &trees, options.delta)?;

    // 2. Directories (a non-directory in the way is removed first).
    let mut report = RestoreReport::default();
    let kinds = Kinds::of(manifest);
    for dir in &kinds.dirs {
        check(cancel)?;
        if let Some(old) = existing.get(&dir.path)
            && old.kind != EntryKind::Dir
        {
            main.remove(&dir.path)?;
            report.files_removed += 1;
            existing.remove(&dir.path);
        }
        // Owner rwx while restoring; the final mode is set at the end.
        main.mkdir(&dir.path, dir_mode(dir) | 0o700)?;
    }

    // 3. Files, largest first; 4. `global/pg_control` last.
    let shared = Shared {
        backup_dir,
        combined,
        existing: &existing,
        options,
        progress,
        cancel,
        bucket: options
            .bandwidth_limit
            .filter(|&rate| rate > 0)
            .map(TokenBucket::new),
        next: Mutex::new(0),
        error: Mutex::new(None),
        totals: Mutex::new(Totals::default()),
        failed: AtomicBool::new(false),
    };
    let mut sessions = copy_files(&shared, main, dest, kinds.files, kinds.control, &mut report)?;
    let mut main = sessions.swap_remove(0);

    // 5. Symbolic links.
    for link in &kinds.links {
        check(cancel)?;
        let EntryKind::Symlink { target } = &link.kind else {
            continue;
        };
        let target = options
            .symlink_targets
            .get(&link.path)
            .map_or(target.as_str(), String::as_str);
        if let Some(old) = existing.get(&link.path)
            && !matches!(old.kind, EntryKind::Symlink { .. })
        {
            main.remove(&link.path)?;
            report.files_removed += 1;
        }
        main.symlink(&link.path, target)?;
    }

    // 6. Extra entries (delta).
    if options.delta {
        report.files_removed += remove_extra(main.as_mut(), manifest, &existing, cancel)?;
    }

    // 7. Final directory modes, durability.
    for dir in kinds.dirs.iter().rev() {
        let mode = dir_mode(dir);
        if mode & 0o700 != 0o700 {
            main.mkdir(&dir.path, mode)?;
        }
    }
    let dir_paths: Vec<&RelPath> = kinds.dirs.iter().map(|d| &d.path).collect();
    main.sync(&trees, &dir_paths)?;
    report.wire_bytes = main.wire_bytes() + sessions.iter().map(|s| s.wire_bytes()).sum::<u64>();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// [`Error::Cancelled`] once `cancel` is set.
fn check(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// Creates every root and lists what the destination holds below them;
/// without `delta`, a root holding anything is refused.
fn list_roots(
    main: &mut dyn Destination,
    trees: &[String],
    delta: bool,
) -> Result<HashMap<RelPath, Entry>> {
    let mut existing: HashMap<RelPath, Entry> = HashMap::new();
    for tree in trees {
        let root = RelPath::new(tree.as_str())?;
        main.mkdir(&root, 0o700)?;
        for entry in main.list(tree)? {
            if entry.path.parent().is_none() {
                continue;
            }
            if !delta {
                return Err(Error::NotEmpty {
                    tree: tree.clone(),
                    example: entry.path.to_string(),
                });
            }
            existing.insert(entry.path.clone(), entry);
        }
    }
    Ok(existing)
}

/// The manifest's entries by kind, in manifest order.
struct Kinds<'a> {
    dirs: Vec<&'a ManifestEntry>,
    links: Vec<&'a ManifestEntry>,
    /// Regular files but `global/pg_control`.
    files: Vec<&'a ManifestEntry>,
    control: Option<&'a ManifestEntry>,
}

impl<'a> Kinds<'a> {
    fn of(manifest: &'a Manifest) -> Self {
        let mut kinds = Kinds {
            dirs: Vec::new(),
            links: Vec::new(),
            files: Vec::new(),
            control: None,
        };
        for entry in manifest.iter() {
            match &entry.kind {
                EntryKind::Dir => kinds.dirs.push(entry),
                EntryKind::Symlink { .. } => kinds.links.push(entry),
                EntryKind::File if entry.path.as_str() == CONTROL_FILE => {
                    kinds.control = Some(entry);
                }
                EntryKind::File => kinds.files.push(entry),
            }
        }
        kinds
    }
}

/// Copies the regular files, largest first, by `jobs` workers (`main`
/// the first), then `control` through `main`; returns the sessions,
/// `main` first.
fn copy_files(
    shared: &Shared<'_>,
    main: Box<dyn Destination>,
    dest: &dyn DestinationFactory,
    mut files: Vec<&ManifestEntry>,
    control: Option<&ManifestEntry>,
    report: &mut RestoreReport,
) -> Result<Vec<Box<dyn Destination>>> {
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    report.files = (files.len() + usize::from(control.is_some())) as u64;
    report.bytes_total = files.iter().chain(&control).map(|e| e.size).sum();
    shared.progress.start(report.files, report.bytes_total);
    let jobs = shared.options.jobs.max(1).min(files.len().max(1));
    let mut sessions: Vec<Box<dyn Destination>> = vec![main];
    for _ in 1..jobs {
        sessions.push(dest.open()?);
    }
    report.workers = sessions.len();
    let files = Arc::new(files);
    let mut sessions: Vec<Box<dyn Destination>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .into_iter()
            .map(|mut session| {
                let files = Arc::clone(&files);
                scope.spawn(move || {
                    shared.work(session.as_mut(), &files);
                    session
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    if let Some(error) = shared
        .error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        return Err(error);
    }
    check(shared.cancel)?;
    if let Some(control) = control {
        shared.one(sessions[0].as_mut(), control)?;
    }
    let totals = shared.totals.lock().unwrap_or_else(PoisonError::into_inner);
    report.files_written = totals.files_written;
    report.files_reused = totals.files_reused;
    report.files_unverified = totals.files_unverified;
    report.files_combined = totals.files_combined;
    report.bytes_written = totals.bytes_written;
    Ok(sessions)
}

/// Removes what the destination holds that the manifest does not list:
/// deepest first, skipping what a removed directory took with it.
/// Returns how many entries were removed.
fn remove_extra(
    main: &mut dyn Destination,
    manifest: &Manifest,
    existing: &HashMap<RelPath, Entry>,
    cancel: &AtomicBool,
) -> Result<u64> {
    // Entries below a path the backup holds as a file or link went
    // with the directory that was there.
    let replaced = |path: &RelPath| {
        std::iter::successors(path.parent(), RelPath::parent).any(|ancestor| {
            manifest
                .get(&ancestor)
                .is_some_and(|e| e.kind != EntryKind::Dir)
        })
    };
    let mut extra: Vec<&RelPath> = existing
        .keys()
        .filter(|path| manifest.get(path).is_none() && !replaced(path))
        .collect();
    extra.sort();
    let mut removed: Vec<&RelPath> = Vec::new();
    for path in extra {
        if removed
            .last()
            .is_some_and(|dir| path.as_str().starts_with(&format!("{}/", dir.as_str())))
        {
            continue;
        }
        check(cancel)?;
        main.remove(path)?;
        removed.push(path);
    }
    Ok(removed.len() as u64)
}

/// Counters shared by the workers.
#[derive(Debug, Default)]
struct Totals {
    files_written: u64,
    files_reused: u64,
    files_unverified: u64,
    files_combined: u64,
    bytes_written: u64,
}

/// State shared by the workers.
struct Shared<'a> {
    backup_dir: &'a Path,
    /// The combined restore of an incremental chain, if this is one.
    combined: Option<&'a Combined<'a>>,
    existing: &'a HashMap<RelPath, Entry>,
    options: &'a RestoreOptions,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
    bucket: Option<TokenBucket>,
    next: Mutex<usize>,
    error: Mutex<Option<Error>>,
    totals: Mutex<Totals>,
    failed: AtomicBool,
}

impl Shared<'_> {
    fn stopped(&self) -> bool {
        self.failed.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed)
    }

    fn work(&self, session: &mut dyn Destination, files: &[&ManifestEntry]) {
        loop {
            if self.stopped() {
                return;
            }
            let index = {
                let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
                let index = *next;
                *next += 1;
                index
            };
            let Some(entry) = files.get(index) else {
                return;
            };
            if let Err(e) = self.one(session, entry) {
                let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.is_none() {
                    *slot = Some(e);
                }
                self.failed.store(true, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Restores one regular file.
    fn one(&self, session: &mut dyn Destination, entry: &ManifestEntry) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let old = self.existing.get(&entry.path);
        if self.options.delta
            && let Some(old) = old
        {
            if old.kind == EntryKind::File {
                if old.size == entry.size && session.same_content(entry)? {
                    self.progress.advance(entry.size);
                    self.progress.file_done(&entry.path);
                    self.totals
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .files_reused += 1;
                    return Ok(());
                }
            } else {
                session.remove(&entry.path)?;
            }
        }
        if let Some(combined) = self.combined
            && let Some(reader) = combined.open(&entry.path, &|| self.stopped())?
        {
            return self.one_combined(session, entry, reader);
        }
        let source = entry.path.under(self.backup_dir);
        let file = File::open(&source).map_err(|e| Error::io(&source, e))?;
        let meta = file.metadata().map_err(|e| Error::io(&source, e))?;
        if meta.len() != entry.size {
            return Err(Error::Checksum {
                path: entry.path.to_string(),
                expected: format!("{} bytes", entry.size),
                actual: format!("{} bytes", meta.size()),
            });
        }
        let mut reader = Verifying {
            file,
            source: source.clone(),
            hasher: entry.blake3.map(|_| blake3::Hasher::new()),
            entry,
            read: 0,
            shared: self,
            mismatch: None,
        };
        warn_setid(&entry.path, entry.mode);
        let meta = FileMeta {
            size: entry.size,
            mode: copy_mode(entry.mode),
            mtime: entry.mtime,
        };
        let result = session.write_file(&entry.path, meta, &mut reader);
        if let Some(mismatch) = reader.mismatch.take() {
            return Err(mismatch);
        }
        result?;
        if reader.read != entry.size {
            return Err(Error::Checksum {
                path: entry.path.to_string(),
                expected: format!("{} bytes", entry.size),
                actual: format!("{} bytes", reader.read),
            });
        }
        self.progress.file_done(&entry.path);
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        totals.files_written += 1;
        totals.bytes_written += entry.size;
        if entry.blake3.is_none() {
            totals.files_unverified += 1;
        }
        Ok(())
    }

    /// Restores one file a [`Combined`] plan produces, read from `reader`
    /// (which verifies its sources and fails before handing out bytes that
    /// do not match them).
    fn one_combined(
        &self,
        session: &mut dyn Destination,
        entry: &ManifestEntry,
        reader: CombinedReader<'_>,
    ) -> Result<()> {
        let mut metered = Metered {
            inner: reader,
            read: 0,
            shared: self,
        };
        warn_setid(&entry.path, entry.mode);
        let meta = FileMeta {
            size: entry.size,
            mode: copy_mode(entry.mode),
            mtime: entry.mtime,
        };
        let result = session.write_file(&entry.path, meta, &mut metered);
        if let Some(error) = metered.inner.take_error() {
            return Err(error);
        }
        result?;
        if metered.read != entry.size {
            return Err(Error::Checksum {
                path: entry.path.to_string(),
                expected: format!("{} bytes", entry.size),
                actual: format!("{} bytes", metered.read),
            });
        }
        self.progress.file_done(&entry.path);
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        totals.files_written += 1;
        totals.files_combined += 1;
        totals.bytes_written += entry.size;
        Ok(())
    }
}

/// A reader with the restore's bandwidth limit, progress and stop checks.
struct Metered<'a, 'b, R> {
    inner: R,
    read: u64,
    shared: &'a Shared<'b>,
}

impl<R: Read> Read for Metered<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shared.stopped() {
            return Err(io::Error::other("restore stopped"));
        }
        let n = self.inner.read(buf)?;
        if let Some(bucket) = &self.shared.bucket
            && !bucket.take_until(n as u64, &|| self.shared.stopped())
        {
            return Err(io::Error::other("restore stopped"));
        }
        self.read += n as u64;
        self.shared.progress.advance(n as u64);
        Ok(n)
    }
}

/// Reads a backup file, hashing it; the read that reaches the announced
/// size fails when the content does not match the manifest, so the
/// destination aborts the write before installing the file.
struct Verifying<'a, 'b> {
    file: File,
    source: PathBuf,
    hasher: Option<blake3::Hasher>,
    entry: &'a ManifestEntry,
    read: u64,
    shared: &'a Shared<'b>,
    mismatch: Option<Error>,
}

impl Read for Verifying<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shared.stopped() {
            return Err(io::Error::other("restore stopped"));
        }
        let left = self.entry.size - self.read;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            let error = Error::Checksum {
                path: self.entry.path.to_string(),
                expected: format!("{} bytes", self.entry.size),
                actual: format!("{} bytes ({} is shorter)", self.read, self.source.display()),
            };
            self.mismatch = Some(error);
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its manifest entry",
            ));
        }
        if let Some(bucket) = &self.shared.bucket
            && !bucket.take_until(n as u64, &|| self.shared.stopped())
        {
            return Err(io::Error::other("restore stopped"));
        }
        self.read += n as u64;
        self.shared.progress.advance(n as u64);
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
            if self.read == self.entry.size
                && let Some(expected) = self.entry.blake3
            {
                let actual = FileHash(*hasher.finalize().as_bytes());
                if actual != expected {
                    self.mismatch = Some(Error::Checksum {
                        path: self.entry.path.to_string(),
                        expected: expected.to_hex(),
                        actual: actual.to_hex(),
                    });
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "checksum mismatch",
                    ));
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests;
