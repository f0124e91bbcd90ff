//! `base/<id>/manifest`: what a backup holds, with a checksum per file.
//!
//! Format (documented in docs/agent-protocol.md and docs/catalog.md): JSON
//! Lines. The first line is a header object
//! `{"barman_manifest": 1, "created": "<RFC 3339>", ...}`, then one
//! [`ManifestEntry`] per line, sorted by path. Barman never reads this file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::entry::{EntryKind, Mtime, RelPath};
use crate::hash::{FileHash, PageHashes};

/// Format version written in the header line.
pub const MANIFEST_VERSION: u32 = 1;

/// One entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the backup directory.
    pub path: RelPath,
    /// File, directory or symlink.
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time of the source when it was copied.
    pub mtime: Mtime,
    /// Permission bits.
    pub mode: u32,
    /// blake3 of the file's content (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<FileHash>,
    /// Per-8 KiB-page fingerprints (page-structured relation files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageHashes>,
}

/// A backup's manifest, keyed by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Entries by path.
    pub entries: BTreeMap<RelPath, ManifestEntry>,
}

impl Manifest {
    /// Reads a manifest file; a missing file is an error.
    pub fn read(_path: &Path) -> Result<Self> {
        todo!("helper: parse JSON Lines, header first; errors name file and line")
    }

    /// Writes the manifest durably (temp file, fsync, rename, fsync dir), mode 0600.
    pub fn write(&self, _path: &Path) -> Result<()> {
        todo!("helper")
    }

    /// Looks a path up.
    pub fn get(&self, path: &RelPath) -> Option<&ManifestEntry> {
        self.entries.get(path)
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, entry: ManifestEntry) {
        self.entries.insert(entry.path.clone(), entry);
    }
}
