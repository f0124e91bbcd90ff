//! Progress reporting, injected by the caller.

use crate::entry::RelPath;

/// Receives progress from the executor (from several worker threads).
pub trait Progress: Send + Sync {
    /// The plan is known: this many files and bytes will be processed.
    fn start(&self, _files: u64, _bytes: u64) {}
    /// `bytes` more bytes of file content were processed (copied, linked or compared).
    fn advance(&self, _bytes: u64) {}
    /// A file is finished.
    fn file_done(&self, _path: &RelPath) {}
}

/// Ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
