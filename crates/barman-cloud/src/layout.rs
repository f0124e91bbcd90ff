//! The object keys of a server's catalog in a bucket (BARMAN-CLOUD.md §3):
//!
//! | object | key |
//! |---|---|
//! | WAL, `.partial`, `.backup` | `P/S/wals/<hash dir>/<name>[.<ext>]` |
//! | timeline history | `P/S/wals/<TTTTTTTT>.history[.<ext>]` (no hash directory) |
//! | backup metadata | `P/S/base/<id>/backup.info` |
//! | PGDATA tar | `P/S/base/<id>/data.tar[.<ext>]`, then `data_0001.tar[.<ext>]`, ... |
//! | tablespace tar | `P/S/base/<id>/<oid>.tar[.<ext>]`, then `<oid>_0001.tar[.<ext>]`, ... |
//! | keep annotation | `P/` + `S/base/<id>/annotations/keep` |
//!
//! `P` is the URL's key prefix and `S` the server name; keys are joined as
//! Python's `os.path.join` joins them (an empty prefix adds nothing, a
//! prefix ending in `/` gets no second one), except the keep annotation's,
//! which Barman builds as `P + "/"` when `P` is not empty (so the prefix
//! `pg2/` gives `pg2//main/base/...`: copied as is, so both tools find the
//! same object).

use std::fmt::Write as _;

use barman_wal::WalFileName;

/// The compression extensions a WAL object may carry, with the algorithm
/// each one means (decompression goes by the extension, never by magic).
pub const WAL_EXTENSIONS: [(&str, &str); 6] = [
    ("gz", "gzip"),
    ("bz2", "bzip2"),
    ("xz", "xz"),
    ("snappy", "snappy"),
    ("zst", "zstd"),
    ("lz4", "lz4"),
];

/// The name of the checksum manifest barman-rs writes beside each backup
/// (`base/<id>/barman-rs.manifest.json`, the format in `crate::manifest`):
/// an object barman-cloud's catalog does not look at.
pub const MANIFEST_NAME: &str = "barman-rs.manifest.json";

/// The compression extensions a backup tar may carry (no xz).
pub const TAR_EXTENSIONS: [(&str, &str); 5] = [
    ("gz", "gzip"),
    ("bz2", "bzip2"),
    ("snappy", "snappy"),
    ("zst", "zstd"),
    ("lz4", "lz4"),
];

/// Joins key components as Python's `os.path.join` joins relative ones.
fn join(parts: &[&str]) -> String {
    let mut key = String::new();
    for part in parts {
        if !key.is_empty() && !key.ends_with('/') {
            key.push('/');
        }
        key.push_str(part);
    }
    key
}

/// The tree a backup tar holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// PGDATA (`data.tar`).
    Data,
    /// A tablespace, by its OID (`<oid>.tar`).
    Tablespace(u32),
}

/// One tar object of a backup: its tree, its part number (0 for the first,
/// `_0001` for the next) and its compression extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TarPart {
    /// The tree it holds.
    pub tree: Tree,
    /// 0 for `data.tar`, n for `data_000n.tar`.
    pub part: u32,
    /// The compression extension (`gz`, `zst`, ...), if compressed.
    pub extension: Option<String>,
}

impl TarPart {
    /// The object's file name: `data.tar.gz`, `16385_0002.tar`.
    pub fn file_name(&self) -> String {
        let mut name = match self.tree {
            Tree::Data => "data".to_owned(),
            Tree::Tablespace(oid) => oid.to_string(),
        };
        if self.part > 0 {
            let _ = write!(name, "_{:04}", self.part);
        }
        name.push_str(".tar");
        if let Some(ext) = &self.extension {
            name.push('.');
            name.push_str(ext);
        }
        name
    }

    /// Parses a tar object's file name as Barman's catalog recognises them
    /// (`data` or an OID, an optional `_NNNN` part, `.tar`, an optional
    /// known extension); `None` for any other name (left alone by delete).
    pub fn parse(file_name: &str) -> Option<Self> {
        let (stem, extension) = match file_name.split_once(".tar") {
            Some((stem, "")) => (stem, None),
            Some((stem, rest)) => {
                let ext = rest.strip_prefix('.')?;
                TAR_EXTENSIONS.iter().find(|(e, _)| *e == ext)?;
                (stem, Some(ext.to_owned()))
            }
            None => return None,
        };
        let (tree, part) = match stem.split_once('_') {
            Some((tree, part)) if part.len() == 4 && part.bytes().all(|b| b.is_ascii_digit()) => {
                (tree, part.parse().ok()?)
            }
            Some(_) => return None,
            None => (stem, 0),
        };
        let tree = if tree == "data" {
            Tree::Data
        } else if !tree.is_empty() && tree.bytes().all(|b| b.is_ascii_digit()) {
            Tree::Tablespace(tree.parse().ok()?)
        } else {
            return None;
        };
        Some(Self {
            tree,
            part,
            extension,
        })
    }
}

/// The keys of one server's catalog under one key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
    server: String,
}

impl Layout {
    /// The layout of `server` under the key prefix `prefix` (the URL's
    /// path, [`crate::url::CloudUrl::path`]).
    pub fn new(prefix: &str, server: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            server: server.to_owned(),
        }
    }

    /// The server name.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `P/S/wals/`: the prefix of every WAL object.
    pub fn wals_prefix(&self) -> String {
        join(&[&self.prefix, &self.server, "wals", ""])
    }

    /// The prefix of `name`'s objects in any compression (a listing with
    /// it finds `name`, `name.gz`, `name.partial.lz4`, ...).
    pub fn wal_prefix(&self, name: &WalFileName) -> String {
        let file = name.to_string();
        match name.archive_subdir() {
            Some(dir) => join(&[&self.prefix, &self.server, "wals", &dir, &file]),
            None => join(&[&self.prefix, &self.server, "wals", &file]),
        }
    }

    /// The prefix of the hash directory of `name` (`P/S/wals/<hash>/`);
    /// for a history file, [`wals_prefix`](Self::wals_prefix).
    pub fn wal_dir_prefix(&self, name: &WalFileName) -> String {
        match name.archive_subdir() {
            Some(dir) => join(&[&self.prefix, &self.server, "wals", &dir, ""]),
            None => self.wals_prefix(),
        }
    }

    /// The key of WAL file `name` compressed with `extension`.
    pub fn wal_key(&self, name: &WalFileName, extension: Option<&str>) -> String {
        let mut key = self.wal_prefix(name);
        if let Some(ext) = extension {
            key.push('.');
            key.push_str(ext);
        }
        key
    }

    /// `P/S/base/`: the prefix of every backup's objects.
    pub fn base_prefix(&self) -> String {
        join(&[&self.prefix, &self.server, "base", ""])
    }

    /// `P/S/base/<id>/`: the prefix of one backup's objects.
    pub fn backup_prefix(&self, backup_id: &str) -> String {
        join(&[&self.prefix, &self.server, "base", backup_id, ""])
    }

    /// The key of a backup's `backup.info`.
    pub fn backup_info_key(&self, backup_id: &str) -> String {
        join(&[&self.prefix, &self.server, "base", backup_id, "backup.info"])
    }

    /// The key of a backup's checksum manifest (a barman-rs object that
    /// barman-cloud ignores: [`MANIFEST_NAME`]).
    pub fn manifest_key(&self, backup_id: &str) -> String {
        join(&[&self.prefix, &self.server, "base", backup_id, MANIFEST_NAME])
    }

    /// The key of a backup's tar object `part`.
    pub fn tar_key(&self, backup_id: &str, part: &TarPart) -> String {
        join(&[
            &self.prefix,
            &self.server,
            "base",
            backup_id,
            &part.file_name(),
        ])
    }

    /// The key of a backup's keep annotation (Barman's own construction,
    /// see the module documentation).
    pub fn keep_key(&self, backup_id: &str) -> String {
        let base = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        format!("{base}{}/base/{backup_id}/annotations/keep", self.server)
    }

    /// The WAL file a listed key holds and its compression extension:
    /// the key's last component, after stripping at most one known
    /// extension, must be a WAL file name (`None` otherwise: such keys are
    /// ignored, as Barman ignores them).
    pub fn parse_wal_key(key: &str) -> Option<(WalFileName, Option<&'static str>)> {
        let base = key.rsplit('/').next().unwrap_or(key);
        if let Ok(name) = base.parse::<WalFileName>() {
            return Some((name, None));
        }
        let (stem, ext) = base.rsplit_once('.')?;
        let (ext, _) = WAL_EXTENSIONS.iter().find(|(e, _)| *e == ext)?;
        let name = stem.parse::<WalFileName>().ok()?;
        Some((name, Some(ext)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn wal(name: &str) -> WalFileName {
        name.parse().unwrap()
    }

    #[test]
    fn wal_keys_follow_barman_cloud() {
        let l = Layout::new("pg", "main");
        assert_eq!(
            l.wal_key(&wal("000000010000000000000004"), None),
            "pg/main/wals/0000000100000000/000000010000000000000004"
        );
        assert_eq!(
            l.wal_key(&wal("000000010000000000000004.partial"), Some("lz4")),
            "pg/main/wals/0000000100000000/000000010000000000000004.partial.lz4"
        );
        assert_eq!(
            l.wal_key(&wal("000000010000000000000005.00000028.backup"), Some("gz")),
            "pg/main/wals/0000000100000000/000000010000000000000005.00000028.backup.gz"
        );
        assert_eq!(
            l.wal_key(&wal("00000002.history"), None),
            "pg/main/wals/00000002.history"
        );
        assert_eq!(l.wals_prefix(), "pg/main/wals/");
        assert_eq!(
            l.wal_dir_prefix(&wal("0000000200000003000000FF")),
            "pg/main/wals/0000000200000003/"
        );
    }

    #[test]
    fn prefixes_join_as_os_path_join() {
        let id = "20261207T101500";
        for (prefix, info) in [
            ("", "main/base/20261207T101500/backup.info"),
            ("pg", "pg/main/base/20261207T101500/backup.info"),
            ("pg2/", "pg2/main/base/20261207T101500/backup.info"),
            ("a/b", "a/b/main/base/20261207T101500/backup.info"),
        ] {
            assert_eq!(Layout::new(prefix, "main").backup_info_key(id), info);
        }
        assert_eq!(Layout::new("", "main").wals_prefix(), "main/wals/");
        assert_eq!(Layout::new("", "main").base_prefix(), "main/base/");
        assert_eq!(
            Layout::new("pg", "main").backup_prefix(id),
            "pg/main/base/20261207T101500/"
        );
    }

    #[test]
    fn the_keep_annotation_keeps_barmans_double_slash() {
        let id = "20261207T101500";
        assert_eq!(
            Layout::new("pg2/", "main").keep_key(id),
            "pg2//main/base/20261207T101500/annotations/keep"
        );
        assert_eq!(
            Layout::new("pg", "main").keep_key(id),
            "pg/main/base/20261207T101500/annotations/keep"
        );
        assert_eq!(
            Layout::new("", "main").keep_key(id),
            "main/base/20261207T101500/annotations/keep"
        );
    }

    #[test]
    fn tar_parts_name_and_parse() {
        let l = Layout::new("pg", "main");
        let cases = [
            (Tree::Data, 0, None, "data.tar"),
            (Tree::Data, 1, Some("zst"), "data_0001.tar.zst"),
            (Tree::Tablespace(16385), 0, Some("gz"), "16385.tar.gz"),
            (Tree::Tablespace(16385), 12, None, "16385_0012.tar"),
        ];
        for (tree, part, ext, name) in cases {
            let p = TarPart {
                tree,
                part,
                extension: ext.map(str::to_owned),
            };
            assert_eq!(p.file_name(), name);
            assert_eq!(TarPart::parse(name), Some(p.clone()));
            assert_eq!(l.tar_key("X", &p), format!("pg/main/base/X/{name}"));
        }
        for other in [
            "backup.info",
            "backup_label",
            "data.tar.xz",
            "data.tar.",
            "data_1.tar",
            "data_0001x.tar",
            "tbs.tar",
            "annotations",
            ".tar",
        ] {
            assert_eq!(TarPart::parse(other), None, "{other}");
        }
    }

    #[test]
    fn listed_keys_map_to_wal_names_stripping_one_extension() {
        let cases = [
            (
                "p/s/wals/0000000100000000/000000010000000000000004",
                Some(("000000010000000000000004", None)),
            ),
            (
                "p/s/wals/0000000100000000/000000010000000000000004.gz",
                Some(("000000010000000000000004", Some("gz"))),
            ),
            (
                "p/s/wals/0000000100000000/000000010000000000000004.partial.zst",
                Some(("000000010000000000000004.partial", Some("zst"))),
            ),
            (
                "p/s/wals/00000002.history.lz4",
                Some(("00000002.history", Some("lz4"))),
            ),
            (
                "p/s/wals/0000000100000000/000000010000000000000004.gz.gz",
                None,
            ),
            (
                "p/s/wals/0000000100000000/000000010000000000000004.tmp",
                None,
            ),
            ("p/s/wals/0000000100000000/notes.txt", None),
        ];
        for (key, want) in cases {
            let got = Layout::parse_wal_key(key).map(|(n, e)| (n.to_string(), e));
            assert_eq!(got, want.map(|(n, e)| (n.to_owned(), e)), "{key}");
        }
    }

    proptest! {
        /// Every WAL key this layout writes parses back to its name and
        /// extension, under any prefix and server name.
        #[test]
        fn wal_keys_round_trip(
            tli in 1u32..=0xFFFF_FFFF,
            log in 0u32..=0xFFFF_FFFF,
            seg in 0u32..=0xFF,
            kind in 0usize..3,
            ext in proptest::option::of(0usize..WAL_EXTENSIONS.len()),
            prefix in "[a-z0-9/]{0,12}",
            server in "[a-z][a-z0-9_-]{0,10}",
        ) {
            let name = match kind {
                0 => format!("{tli:08X}{log:08X}{seg:08X}"),
                1 => format!("{tli:08X}{log:08X}{seg:08X}.partial"),
                _ => format!("{tli:08X}.history"),
            };
            let name = wal(&name);
            let ext = ext.map(|i| WAL_EXTENSIONS[i].0);
            let key = Layout::new(&prefix, &server).wal_key(&name, ext);
            prop_assert_eq!(Layout::parse_wal_key(&key), Some((name, ext)));
        }
    }
}
