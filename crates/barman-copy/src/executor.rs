//! Runs a [`CopyPlan`] with N workers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::Result;
use crate::manifest::Manifest;
use crate::plan::{CopyPlan, Reuse};
use crate::progress::Progress;
use crate::source::SourceFactory;

/// Options of [`execute`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Worker threads (and source sessions); 0 means 1.
    pub jobs: usize,
    /// Whole-copy bandwidth limit in bytes per second (`None`: unlimited).
    pub bandwidth_limit: Option<u64>,
    /// Per-tree limits in bytes per second (tree name → limit), on top of the global one.
    pub tree_limits: BTreeMap<String, u64>,
    /// The previous backup's directory (for links, local copies and deltas).
    pub previous_dir: Option<PathBuf>,
    /// The previous backup's manifest (page fingerprints for page deltas).
    pub previous: Option<Arc<Manifest>>,
    /// Reuse mode (a delta that finds nothing changed links under `Link`).
    pub reuse: Reuse,
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
}

/// Executes `plan` into `dest` (the new backup directory; tree roots are
/// `dest/<tree>`), reading from sessions opened by `sources`. Every file is
/// written to a temporary name, fsynced and renamed; modes and mtimes are
/// set; directories are fsynced. `cancel` is polled between chunks.
pub fn execute(
    _plan: &CopyPlan,
    _sources: &dyn SourceFactory,
    _dest: &Path,
    _options: &ExecOptions,
    _progress: &dyn Progress,
    _cancel: &AtomicBool,
) -> Result<CopyReport> {
    todo!("helper")
}
