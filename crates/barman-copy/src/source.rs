//! Where files come from: the local file system or an agent session.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use crate::Result;
use crate::entry::{Entry, RelPath};
use crate::exclusion::Exclusions;
use crate::hash::PageHashes;

/// Named roots a source serves: `data` → PGDATA, `16385` → a tablespace.
pub type Roots = BTreeMap<String, PathBuf>;

/// Where a [`Source`] streams bytes (a file's content, an rsync delta).
pub type ByteSink<'a> = &'a mut dyn FnMut(&[u8]) -> Result<()>;

/// Where a [`Source`] streams the chunks of a page delta.
pub type PageSink<'a> = &'a mut dyn FnMut(PageChunk<'_>) -> Result<()>;

/// One chunk of a page-level delta.
#[derive(Debug)]
pub enum PageChunk<'a> {
    /// Pages starting at page number `first`, `data.len()` bytes (whole pages,
    /// except possibly the file's short last page).
    Pages {
        /// First page number.
        first: u64,
        /// The bytes.
        data: &'a [u8],
    },
}

/// Result summary of a page delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageDeltaEnd {
    /// The file's size at the source when it was read.
    pub size: u64,
    /// Pages sent.
    pub pages_sent: u64,
}

/// A session with a source of files. One per worker.
pub trait Source: Send {
    /// Lists tree `tree` (a root name) with `exclusions`; entries' paths start
    /// with the tree name. Files that vanish during the listing are skipped.
    fn list(&mut self, tree: &str, exclusions: &Exclusions) -> Result<Vec<Entry>>;

    /// Streams the whole file to `sink`; returns the bytes read. A file that
    /// vanished is `Error::Vanished`.
    fn read(&mut self, path: &RelPath, sink: ByteSink<'_>) -> Result<u64>;

    /// A hint: the caller will [`read`](Self::read) these files whole next,
    /// in this order. A remote source sends the requests now, so that the
    /// files stream back to back instead of one round trip each; a later
    /// call that does not follow the hint still gets the right answer (the
    /// replies sent ahead are read and dropped). Errors surface at the
    /// `read`. The default does nothing.
    fn read_ahead(&mut self, paths: &[&RelPath]) {
        let _ = paths;
    }

    /// Page delta: the source reads its file, compares each 8 KiB page with
    /// `previous` and streams the pages that differ (and every page beyond
    /// `previous`'s length).
    fn changed_pages(
        &mut self,
        path: &RelPath,
        previous: &PageHashes,
        sink: PageSink<'_>,
    ) -> Result<PageDeltaEnd>;

    /// rsync delta: `signature` is a fast_rsync signature of the previous
    /// copy; the source streams the delta bytes (fast_rsync format) to `sink`.
    fn rsync_delta(&mut self, path: &RelPath, signature: &[u8], sink: ByteSink<'_>) -> Result<u64>;

    /// Bytes received from the peer so far (on the wire, after compression);
    /// for a local source, bytes read.
    fn wire_bytes(&self) -> u64;
}

/// Opens sessions (one per worker).
pub trait SourceFactory: Send + Sync {
    /// A new session.
    fn open(&self) -> Result<Box<dyn Source>>;
}

/// A factory whose first [`open`](SourceFactory::open) hands out a session
/// that is open already (the one that listed the trees, say), so that a
/// remote copy does not pay one more ssh login; later calls open new
/// sessions with the wrapped factory.
pub struct WithSession<'f> {
    first: Mutex<Option<Box<dyn Source>>>,
    factory: &'f dyn SourceFactory,
}

impl<'f> WithSession<'f> {
    /// Hands out `session` first, then sessions of `factory`.
    pub fn new(session: Box<dyn Source>, factory: &'f dyn SourceFactory) -> Self {
        Self {
            first: Mutex::new(Some(session)),
            factory,
        }
    }
}

impl std::fmt::Debug for WithSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unused = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        f.debug_struct("WithSession")
            .field("first_unused", &unused)
            .finish_non_exhaustive()
    }
}

impl SourceFactory for WithSession<'_> {
    fn open(&self) -> Result<Box<dyn Source>> {
        let first = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match first {
            Some(session) => Ok(session),
            None => self.factory.open(),
        }
    }
}
