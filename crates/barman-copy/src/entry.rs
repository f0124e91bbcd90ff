//! Entries of a copied tree: validated relative paths, kinds, sizes, times.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A validated path relative to a backup directory, `/`-separated.
///
/// The first component names the tree (`data` for PGDATA, a tablespace OID
/// such as `16385` for a tablespace), the rest is the path inside that tree:
/// `data/base/5/16384`, `16385/PG_15_202209061/5/16390`. A `RelPath` never
/// is empty, never starts with `/`, and never holds an empty, `.` or `..`
/// component or a NUL byte, so joining it to a root cannot leave the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelPath(String);

impl RelPath {
    /// Validates `path`.
    pub fn new(path: impl Into<String>) -> Result<Self> {
        let path = path.into();
        let bad = |reason: &'static str| Error::UnsafePath {
            path: path.clone(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        if path.starts_with('/') {
            return Err(bad("absolute path"));
        }
        if path.contains('\0') {
            return Err(bad("NUL byte in path"));
        }
        for component in path.split('/') {
            match component {
                "" => return Err(bad("empty path component")),
                "." | ".." => return Err(bad("`.` or `..` component")),
                _ => {}
            }
        }
        Ok(Self(path))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tree name (first component).
    pub fn tree(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The path inside its tree (empty for the tree root itself).
    pub fn in_tree(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, rest)| rest)
    }

    /// `self/name`; `name` must be one valid component.
    pub fn join(&self, name: &str) -> Result<Self> {
        Self::new(format!("{}/{name}", self.0))
    }

    /// The parent path, `None` for a tree root.
    pub fn parent(&self) -> Option<Self> {
        self.0.rsplit_once('/').map(|(p, _)| Self(p.to_owned()))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// `root` joined with this path.
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RelPath {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<RelPath> for String {
    fn from(value: RelPath) -> Self {
        value.0
    }
}

/// What a written file gets besides its bytes: its size (the bytes read
/// from the data), mode and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Bytes to write.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: Mtime,
}

/// Modification time, seconds and nanoseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Mtime {
    /// Whole seconds since the epoch (negative before 1970).
    pub secs: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nanos: u32,
}

impl Mtime {
    /// From a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let ft = filetime::FileTime::from_last_modification_time(meta);
        Self {
            secs: ft.unix_seconds(),
            nanos: ft.nanoseconds(),
        }
    }

    /// As a `filetime::FileTime`, to set on a copy.
    pub fn to_filetime(self) -> filetime::FileTime {
        filetime::FileTime::from_unix_time(self.secs, self.nanos)
    }
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed), with its target as read.
    Symlink {
        /// The link's target, verbatim.
        target: String,
    },
}

/// One entry of a listed tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where it is, relative to the backup directory.
    pub path: RelPath,
    /// File, directory or symlink.
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Size in bytes (0 for directories and symlinks).
    pub size: u64,
    /// Modification time.
    pub mtime: Mtime,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// The setuid and setgid bits: a copied file never gets them.
pub const SETID_BITS: u32 = 0o6000;

/// The mode a copy of a file with `mode` gets: without the setuid and
/// setgid bits, so that a copy never becomes a privileged program (a peer
/// or a backup could carry one). The caller logs the drop
/// ([`warn_setid`]).
pub fn copy_mode(mode: u32) -> u32 {
    mode & !SETID_BITS
}

/// Logs (warning) that the copy of `path` loses the setuid/setgid bits of
/// `mode`, if it has any.
pub fn warn_setid(path: &RelPath, mode: u32) {
    if mode & SETID_BITS != 0 {
        tracing::warn!(
            "{path}: setuid/setgid bits dropped from the copy (mode {mode:04o} copied as {:04o})",
            copy_mode(mode)
        );
    }
}

impl Entry {
    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        matches!(self.kind, EntryKind::File)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_path_rejects_escapes() {
        for bad in [
            "",
            "/etc/passwd",
            "data/../x",
            "data//x",
            "./x",
            "x/.",
            "a\0b",
            "data/",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?} accepted");
        }
        let p = RelPath::new("data/base/5/16384").unwrap();
        assert_eq!(p.tree(), "data");
        assert_eq!(p.in_tree(), "base/5/16384");
        assert_eq!(p.file_name(), "16384");
        assert_eq!(p.parent().unwrap().as_str(), "data/base/5");
        assert_eq!(RelPath::new("data").unwrap().in_tree(), "");
    }
}
