//! `base/<id>/manifest`: what a backup holds, with a checksum per file.
//!
//! Format (documented in docs/agent-protocol.md and docs/catalog.md): JSON
//! Lines. The first line is a header object
//! `{"barman_manifest":1,"created_by":"barman-rs <version>","entries":N}`,
//! then one [`ManifestEntry`] per line, sorted by path; `N` is the number of
//! entry lines. Barman never reads this file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::entry::{Entry, EntryKind, RelPath};
use crate::fsutil::PRIVATE_FILE_MODE;
use crate::hash::{FileHash, PageHashes};
use crate::{Error, Result};

/// Format version written in the header line.
pub const MANIFEST_VERSION: u32 = 1;

/// One entry of a manifest: a listed [`Entry`] (its `mtime` the source's
/// when it was copied) with the checksums of its content. Derefs to the
/// [`Entry`], so `entry.path`, `entry.size` read through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path, kind, size, modification time and permission bits.
    #[serde(flatten)]
    pub entry: Entry,
    /// blake3 of the file's content (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<FileHash>,
    /// Per-8 KiB-page fingerprints (page-structured relation files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageHashes>,
}

impl ManifestEntry {
    /// The manifest entry of `entry`, without checksums.
    pub fn new(entry: Entry) -> Self {
        Self {
            entry,
            blake3: None,
            pages: None,
        }
    }
}

impl std::ops::Deref for ManifestEntry {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        &self.entry
    }
}

impl std::ops::DerefMut for ManifestEntry {
    fn deref_mut(&mut self) -> &mut Entry {
        &mut self.entry
    }
}

impl From<&Entry> for ManifestEntry {
    /// The manifest entry of a listed entry, without checksums.
    fn from(entry: &Entry) -> Self {
        Self::new(entry.clone())
    }
}

/// The header line.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// Format version ([`MANIFEST_VERSION`]).
    barman_manifest: u32,
    /// The program that wrote the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    /// Number of entry lines that follow.
    entries: u64,
}

/// A backup's manifest, keyed by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Entries by path.
    pub entries: BTreeMap<RelPath, ManifestEntry>,
}

impl Manifest {
    /// Reads a manifest file; a missing file is an error.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Manifest`]
    /// (naming the file and the 1-based line) for a missing or unsupported
    /// header, a line that is not a valid entry, a duplicate path, or an
    /// entry count that does not match the header's.
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let bad = |line: usize, message: String| Error::Manifest {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = BufReader::new(file).lines();
        let header_text = match lines.next() {
            Some(text) => text.map_err(|e| Error::io(path, e))?,
            None => return Err(bad(1, "empty file: missing header".to_owned())),
        };
        let header: Header = serde_json::from_str(&header_text)
            .map_err(|e| bad(1, format!("missing or invalid header: {e}")))?;
        if header.barman_manifest != MANIFEST_VERSION {
            return Err(bad(
                1,
                format!(
                    "unsupported manifest version {} (expected {MANIFEST_VERSION})",
                    header.barman_manifest
                ),
            ));
        }
        let mut manifest = Self::default();
        let mut last_line = 1;
        for (index, text) in lines.enumerate() {
            let line = index + 2;
            last_line = line;
            let text = text.map_err(|e| Error::io(path, e))?;
            let entry: ManifestEntry =
                serde_json::from_str(&text).map_err(|e| bad(line, format!("bad entry: {e}")))?;
            if manifest.entries.contains_key(&entry.path) {
                return Err(bad(line, format!("duplicate path {}", entry.path)));
            }
            manifest.insert(entry);
        }
        if manifest.len() as u64 != header.entries {
            return Err(bad(
                last_line,
                format!(
                    "the header announces {} entries, the file holds {}",
                    header.entries,
                    manifest.len()
                ),
            ));
        }
        Ok(manifest)
    }

    /// Writes the manifest durably (temp file, fsync, rename, fsync dir), mode 0600.
    ///
    /// The entries are streamed to the temporary file, never held as one
    /// text in memory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] on any write, sync or rename failure; the temporary file
    /// is removed.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(barman_fs::write_atomic_with(
            path,
            PRIVATE_FILE_MODE,
            |out| {
                let header = Header {
                    barman_manifest: MANIFEST_VERSION,
                    created_by: Some(format!("barman-rs {}", env!("CARGO_PKG_VERSION"))),
                    entries: self.len() as u64,
                };
                serde_json::to_writer(&mut *out, &header)?;
                out.write_all(b"\n")?;
                for entry in self.entries.values() {
                    serde_json::to_writer(&mut *out, entry)?;
                    out.write_all(b"\n")?;
                }
                Ok(())
            },
        )?)
    }

    /// The entries, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = &ManifestEntry> {
        self.entries.values()
    }

    /// Number of entries (files, directories and symlinks).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the manifest has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of the sizes of the regular files.
    pub fn total_size(&self) -> u64 {
        self.iter()
            .filter(|e| matches!(e.kind, EntryKind::File))
            .map(|e| e.size)
            .sum()
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
