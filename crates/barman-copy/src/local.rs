//! The local file system as a [`Source`] (the `local-rsync` method), and the
//! file operations the agent performs on its host.
//!
//! Every path is resolved with [`resolve`]: the tree must be one of the
//! roots, and no component below the root may be a symbolic link (the last
//! one may be, for operations on links themselves; reading a file refuses a
//! link). The checks use `lstat` before the operation, so a tree rewritten
//! concurrently by someone with write access to it could still race them;
//! they guard against links stored in the tree, not against its owner.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use crate::entry::{Entry, Mtime, RelPath};
use crate::exclusion::Exclusions;
use crate::hash::{PAGE_SIZE, PageHash, PageHashes};
use crate::protocol::{CHUNK, read_full};
use crate::source::{ByteSink, PageChunk, PageDeltaEnd, PageSink, Roots, Source, SourceFactory};
use crate::{Error, Result, fsutil, listing};

/// The largest file an rsync delta is computed for (64 MiB): fast_rsync
/// needs the whole new content in memory. Larger files get
/// [`Error::DeltaTooLarge`]; use a page delta or a full copy for them.
pub const MAX_RSYNC_DELTA_FILE: u64 = 64 << 20;

/// The local path of `path`: its tree's root joined with the rest.
///
/// Refuses ([`Error::UnsafePath`]) a tree that is not among `roots`
/// ("unknown tree") and a symbolic link at any component between the root
/// and the last component ("symlink escapes the tree"). A root that is not
/// a directory is an [`Error::Io`]. Missing components are fine (the
/// operation then finds the file missing).
pub fn resolve(roots: &Roots, path: &RelPath) -> Result<PathBuf> {
    let root = roots.get(path.tree()).ok_or_else(|| Error::UnsafePath {
        path: path.to_string(),
        reason: "unknown tree",
    })?;
    let meta = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            root,
            io::Error::new(io::ErrorKind::NotADirectory, "root is not a directory"),
        ));
    }
    let mut local = root.clone();
    let inner = path.in_tree();
    if inner.is_empty() {
        return Ok(local);
    }
    let mut components = inner.split('/').peekable();
    let mut checking = true;
    while let Some(component) = components.next() {
        local.push(component);
        if !checking || components.peek().is_none() {
            continue;
        }
        match fs::symlink_metadata(&local) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::UnsafePath {
                    path: path.to_string(),
                    reason: "symlink escapes the tree",
                });
            }
            Ok(_) => {}
            // Nothing below a missing directory exists (yet).
            Err(e) if e.kind() == io::ErrorKind::NotFound => checking = false,
            Err(e) => return Err(Error::io(&local, e)),
        }
    }
    Ok(local)
}

/// Maps "not found" to [`Error::Vanished`].
fn vanished_or_io(path: &RelPath, local: &std::path::Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::Vanished {
            path: path.to_string(),
        }
    } else {
        Error::io(local, e)
    }
}

/// Opens a regular file for reading, refusing symbolic links and anything
/// that is not a regular file; a missing file is [`Error::Vanished`].
pub(crate) fn open_regular(roots: &Roots, path: &RelPath) -> Result<(File, Metadata)> {
    let local = resolve(roots, path)?;
    let refuse = |reason| Error::UnsafePath {
        path: path.to_string(),
        reason,
    };
    let before = fs::symlink_metadata(&local).map_err(|e| vanished_or_io(path, &local, e))?;
    if before.file_type().is_symlink() {
        return Err(refuse("is a symbolic link"));
    }
    if !before.is_file() {
        return Err(refuse("not a regular file"));
    }
    let file = File::open(&local).map_err(|e| vanished_or_io(path, &local, e))?;
    let meta = file.metadata().map_err(|e| Error::io(&local, e))?;
    if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
        return Err(refuse("replaced while being opened"));
    }
    Ok((file, meta))
}

/// Lists tree `tree`.
pub(crate) fn list(roots: &Roots, tree: &str, exclusions: &Exclusions) -> Result<Vec<Entry>> {
    let rel = RelPath::new(tree)?;
    if rel.parent().is_some() {
        return Err(Error::UnsafePath {
            path: tree.to_owned(),
            reason: "a tree name must be one path component",
        });
    }
    let root = resolve(roots, &rel)?;
    listing::list_tree(&root, tree, exclusions)
}

/// Streams `length` bytes (to the end when `None`) of a file from `offset`
/// to `sink` in chunks of [`CHUNK`] bytes; returns the bytes sent.
pub(crate) fn read_file(
    roots: &Roots,
    path: &RelPath,
    offset: u64,
    length: Option<u64>,
    sink: ByteSink<'_>,
) -> Result<u64> {
    let (mut file, _) = open_regular(roots, path)?;
    let io_err = |e| Error::io(path.as_str(), e);
    if offset > 0 {
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
    }
    let mut reader = file.take(length.unwrap_or(u64::MAX));
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut reader, &mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        sink(&buf[..n])?;
        if n < buf.len() {
            break;
        }
    }
    Ok(total)
}

/// Consecutive changed pages waiting to be sent.
struct Run<'s, 'a> {
    first: u64,
    data: Vec<u8>,
    sink: &'s mut PageSink<'a>,
}

impl Run<'_, '_> {
    fn next_page(&self) -> u64 {
        self.first + (self.data.len() / PAGE_SIZE) as u64
    }

    fn push(&mut self, page_no: u64, page: &[u8]) -> Result<()> {
        if !self.data.is_empty()
            && (self.next_page() != page_no || self.data.len() + page.len() > CHUNK)
        {
            self.flush()?;
        }
        if self.data.is_empty() {
            self.first = page_no;
        }
        self.data.extend_from_slice(page);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.data.is_empty() {
            (self.sink)(PageChunk::Pages {
                first: self.first,
                data: &self.data,
            })?;
            self.data.clear();
        }
        Ok(())
    }
}

/// Page delta of a file against `previous`: runs of changed pages (and all
/// pages beyond `previous`) in chunks of at most [`CHUNK`] bytes.
pub(crate) fn changed_pages(
    roots: &Roots,
    path: &RelPath,
    previous: &PageHashes,
    mut sink: PageSink<'_>,
) -> Result<PageDeltaEnd> {
    let (mut file, _) = open_regular(roots, path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut run = Run {
        first: 0,
        data: Vec::with_capacity(CHUNK),
        sink: &mut sink,
    };
    let mut page_no = 0u64;
    let mut size = 0u64;
    let mut pages_sent = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf).map_err(|e| Error::io(path.as_str(), e))?;
        size += n as u64;
        for page in buf[..n].chunks(PAGE_SIZE) {
            let unchanged = usize::try_from(page_no)
                .ok()
                .and_then(|i| previous.0.get(i))
                .is_some_and(|h| *h == PageHash::of(page));
            if !unchanged {
                run.push(page_no, page)?;
                pages_sent += 1;
            }
            page_no += 1;
        }
        if n < buf.len() {
            break;
        }
    }
    run.flush()?;
    Ok(PageDeltaEnd { size, pages_sent })
}

/// fast_rsync delta of a file against `signature`, streamed to `sink`;
/// returns the delta's length and the file's. Files over
/// [`MAX_RSYNC_DELTA_FILE`] are [`Error::DeltaTooLarge`].
pub(crate) fn rsync_delta(
    roots: &Roots,
    path: &RelPath,
    signature: &[u8],
    sink: ByteSink<'_>,
) -> Result<(u64, u64)> {
    // fast_rsync loops forever on a zero block size: refuse it first.
    let block_size = signature.get(4..8).map(|b| [b[0], b[1], b[2], b[3]]);
    if block_size.is_none_or(|b| u32::from_be_bytes(b) == 0) {
        return Err(Error::Protocol("invalid rsync signature".into()));
    }
    let signature = fast_rsync::Signature::deserialize(signature.to_vec())
        .map_err(|e| Error::Protocol(format!("invalid rsync signature: {e}")))?;
    let (file, meta) = open_regular(roots, path)?;
    let too_large = |size| Error::DeltaTooLarge {
        path: path.to_string(),
        size,
        limit: MAX_RSYNC_DELTA_FILE,
    };
    if meta.len() > MAX_RSYNC_DELTA_FILE {
        return Err(too_large(meta.len()));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_RSYNC_DELTA_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io(path.as_str(), e))?;
    if data.len() as u64 > MAX_RSYNC_DELTA_FILE {
        return Err(too_large(data.len() as u64));
    }
    let mut delta = Vec::new();
    fast_rsync::diff(&signature.index(), &data, &mut delta)
        .map_err(|e| Error::Protocol(format!("rsync delta of {path}: {e}")))?;
    for chunk in delta.chunks(CHUNK) {
        sink(chunk)?;
    }
    Ok((delta.len() as u64, data.len() as u64))
}

/// A file being written (an agent's `write_file`, a local restore): a
/// [`barman_fs::TempFile`] next to the target, renamed into place when
/// finished. Dropped unfinished (an error, a session that died mid-upload),
/// it removes its temporary file.
pub(crate) struct NewFile {
    temp: barman_fs::TempFile,
    behind: fsutil::WriteBehind,
}

impl NewFile {
    /// Creates the temporary file for `path` (mode `mode`, owner read and
    /// write while it is written). The name is new and created exclusively,
    /// without following links, so nothing planted in the destination is
    /// written through.
    pub(crate) fn create(roots: &Roots, path: &RelPath, mode: u32) -> Result<Self> {
        let target = resolve(roots, path)?;
        Ok(Self {
            temp: barman_fs::TempFile::create(&target, mode | 0o600)?,
            behind: fsutil::WriteBehind::default(),
        })
    }

    /// Appends bytes, with write-behind ([`fsutil::WriteBehind`]).
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        io::Write::write_all(&mut self.temp, data).map_err(|e| Error::io(self.temp.path(), e))?;
        self.behind.wrote(self.temp.file(), data.len());
        Ok(())
    }

    /// Checks the size, sets mode and mtime, fsyncs, renames into place.
    pub(crate) fn finish(self, size: u64, mode: u32, mtime: Mtime) -> Result<()> {
        self.install(size, mode, mtime, true)
    }

    /// [`finish`](Self::finish) without the fsync: the caller makes the
    /// whole tree durable at once (`syncfs`).
    pub(crate) fn finish_unsynced(self, size: u64, mode: u32, mtime: Mtime) -> Result<()> {
        self.install(size, mode, mtime, false)
    }

    fn install(self, size: u64, mode: u32, mtime: Mtime, sync: bool) -> Result<()> {
        let Self { temp, behind } = self;
        if behind.written() != size {
            return Err(Error::Protocol(format!(
                "{}: announced {size} bytes, received {}",
                temp.target().display(),
                behind.written()
            )));
        }
        let io_err = |e| Error::io(temp.path(), e);
        temp.file()
            .set_permissions(fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io_err)?;
        filetime::set_file_handle_times(temp.file(), None, Some(mtime.to_filetime()))
            .map_err(io_err)?;
        if sync {
            temp.sync()?;
        }
        Ok(temp.rename_unsynced()?)
    }
}

/// Creates a directory (and missing parents; for a tree root, the root
/// itself) and sets its mode.
pub(crate) fn mkdir(roots: &Roots, path: &RelPath, mode: u32) -> Result<()> {
    if path.parent().is_none()
        && let Some(root) = roots.get(path.tree())
    {
        // A tree root may not exist yet (a restore's destination).
        fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    }
    let local = resolve(roots, path)?;
    fs::create_dir_all(&local).map_err(|e| Error::io(&local, e))?;
    let meta = fs::symlink_metadata(&local).map_err(|e| Error::io(&local, e))?;
    if !meta.is_dir() {
        return Err(Error::UnsafePath {
            path: path.to_string(),
            reason: "is a symbolic link",
        });
    }
    fs::set_permissions(&local, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Error::io(&local, e))
}

/// Creates a symbolic link, replacing an existing link.
pub(crate) fn symlink(roots: &Roots, path: &RelPath, target: &str) -> Result<()> {
    let local = resolve(roots, path)?;
    match fs::symlink_metadata(&local) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::remove_file(&local).map_err(|e| Error::io(&local, e))?;
        }
        Ok(_) => {
            return Err(Error::io(
                &local,
                io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a link"),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&local, e)),
    }
    std::os::unix::fs::symlink(target, &local).map_err(|e| Error::io(&local, e))
}

/// Removes a file, a link (not its target) or a directory tree; a missing
/// path is fine. Returns whether something was removed. A tree root cannot
/// be removed.
pub(crate) fn remove(roots: &Roots, path: &RelPath) -> Result<bool> {
    if path.parent().is_none() {
        return Err(Error::UnsafePath {
            path: path.to_string(),
            reason: "a tree name must be one path component",
        });
    }
    let local = resolve(roots, path)?;
    let meta = match fs::symlink_metadata(&local) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&local, e)),
    };
    if meta.is_dir() {
        fs::remove_dir_all(&local)
    } else {
        fs::remove_file(&local)
    }
    .map_err(|e| Error::io(&local, e))?;
    Ok(true)
}

/// `syncfs` of the file system holding `path` (a directory or file, not a
/// link): everything written there becomes durable at once.
pub(crate) fn syncfs(roots: &Roots, path: &RelPath) -> Result<()> {
    let local = resolve(roots, path)?;
    let file = File::open(&local).map_err(|e| Error::io(&local, e))?;
    rustix::fs::syncfs(&file).map_err(|e| Error::io(&local, e.into()))
}

/// fsyncs a file or directory (not through a link).
pub(crate) fn fsync(roots: &Roots, path: &RelPath) -> Result<()> {
    let local = resolve(roots, path)?;
    let meta = fs::symlink_metadata(&local).map_err(|e| vanished_or_io(path, &local, e))?;
    if meta.file_type().is_symlink() {
        return Err(Error::UnsafePath {
            path: path.to_string(),
            reason: "is a symbolic link",
        });
    }
    File::open(&local)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&local, e))
}

/// The local file system as a [`Source`], in-process (`local-rsync`).
#[derive(Debug, Clone)]
pub struct LocalSource {
    roots: Roots,
    wire: u64,
}

impl LocalSource {
    /// A source serving `roots`.
    pub fn new(roots: Roots) -> Self {
        Self { roots, wire: 0 }
    }

    /// The roots served.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }
}

impl Source for LocalSource {
    fn list(&mut self, tree: &str, exclusions: &Exclusions) -> Result<Vec<Entry>> {
        list(&self.roots, tree, exclusions)
    }

    fn read(&mut self, path: &RelPath, sink: ByteSink<'_>) -> Result<u64> {
        let wire = &mut self.wire;
        read_file(&self.roots, path, 0, None, &mut |chunk| {
            *wire += chunk.len() as u64;
            sink(chunk)
        })
    }

    fn changed_pages(
        &mut self,
        path: &RelPath,
        previous: &PageHashes,
        sink: PageSink<'_>,
    ) -> Result<PageDeltaEnd> {
        let end = changed_pages(&self.roots, path, previous, sink)?;
        self.wire += end.size;
        Ok(end)
    }

    fn rsync_delta(&mut self, path: &RelPath, signature: &[u8], sink: ByteSink<'_>) -> Result<u64> {
        let (delta, read) = rsync_delta(&self.roots, path, signature, sink)?;
        self.wire += read;
        Ok(delta)
    }

    fn wire_bytes(&self) -> u64 {
        self.wire
    }
}

/// Opens [`LocalSource`]s.
#[derive(Debug, Clone)]
pub struct LocalFactory {
    roots: Roots,
}

impl LocalFactory {
    /// A factory for sources serving `roots`.
    pub fn new(roots: Roots) -> Self {
        Self { roots }
    }
}

impl SourceFactory for LocalFactory {
    fn open(&self) -> Result<Box<dyn Source>> {
        Ok(Box::new(LocalSource::new(self.roots.clone())))
    }
}
