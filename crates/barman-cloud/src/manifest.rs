//! The checksum manifest barman-rs writes beside each backup it uploads
//! (`base/<id>/barman-rs.manifest.json`): every file of every tar, with its
//! size and blake3 checksum, computed while the file streams into the tar.
//! `barman-cloud-restore` checks each file against it as it unpacks (the
//! bytes are hashed on their way to disk, never read twice) and fails
//! naming the first file that differs, is missing or is unexpected.
//!
//! Real barman-cloud ignores the object: its catalog reads only
//! `backup.info`, the tars (`data*`, `<oid>*`) and `annotations/`, and a
//! directory without `backup.info` is skipped; its backup-delete removes
//! only the objects it knows, so the manifest of a backup that real
//! barman-cloud deleted stays behind, unseen by both tools' catalogs (ours
//! deletes it with the backup).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::layout::Tree;

pub use crate::layout::MANIFEST_NAME;

/// The largest manifest read (about 1.5 million files): a larger object is
/// refused rather than loaded.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// The format's version.
const FORMAT: u32 = 1;

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Its tree: `data` (PGDATA) or a tablespace's OID.
    pub tree: String,
    /// Its member name in the tar, without a leading `./`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The blake3 checksum of its content, in hexadecimal.
    pub blake3: String,
}

/// A backup's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format's version (1).
    pub format: u32,
    /// The checksum algorithm (`blake3`).
    pub algorithm: String,
    /// The files, in the order they were written.
    pub files: Vec<FileSum>,
}

/// The name of a tree in a manifest.
pub fn tree_name(tree: &Tree) -> String {
    match tree {
        Tree::Data => "data".to_owned(),
        Tree::Tablespace(oid) => oid.to_string(),
    }
}

/// A tar member name as the manifest keeps it (no leading `./`).
pub fn member_path(name: &str) -> &str {
    name.trim_start_matches("./")
}

impl Manifest {
    /// An empty manifest of the current format.
    pub fn new() -> Self {
        Self {
            format: FORMAT,
            algorithm: "blake3".to_owned(),
            files: Vec::new(),
        }
    }

    /// The manifest as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a manifest.
    ///
    /// # Errors
    /// A description when the text is not a manifest of a known format.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let manifest: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if manifest.format != FORMAT || manifest.algorithm != "blake3" {
            return Err(format!(
                "unknown manifest format {} / algorithm `{}`",
                manifest.format, manifest.algorithm
            ));
        }
        Ok(manifest)
    }
}

/// A reader that hashes what passes through it.
#[derive(Debug)]
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            read: 0,
        }
    }

    /// The bytes read and their checksum.
    pub(crate) fn finish(&self) -> (u64, String) {
        (self.read, self.hasher.finalize().to_hex().to_string())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// What a restore checks the files it unpacks against: the manifest's
/// entries by tree and path, and those seen so far.
#[derive(Debug)]
pub struct Expected {
    files: HashMap<(String, String), (u64, String)>,
    seen: usize,
}

impl Expected {
    /// The files of `manifest`.
    ///
    /// # Errors
    /// A description when the manifest lists a file twice.
    pub fn new(manifest: Manifest) -> Result<Self, String> {
        let mut files = HashMap::with_capacity(manifest.files.len());
        for f in manifest.files {
            let key = (f.tree, f.path);
            if files.insert(key.clone(), (f.size, f.blake3)).is_some() {
                return Err(format!("the manifest lists `{}` twice", key.1));
            }
        }
        Ok(Self { files, seen: 0 })
    }

    /// Checks one unpacked file.
    ///
    /// # Errors
    /// A description naming the file when it is not in the manifest, was
    /// seen before, or differs from it.
    pub fn check(&mut self, tree: &str, path: &str, size: u64, sum: &str) -> Result<(), String> {
        let key = (tree.to_owned(), member_path(path).to_owned());
        let Some((want_size, want_sum)) = self.files.get_mut(&key) else {
            return Err(format!(
                "`{}` is not in the backup's manifest (or appears twice)",
                key.1
            ));
        };
        if *want_size != size || want_sum != sum {
            return Err(format!(
                "`{}` differs from the backup's manifest: {size} bytes with blake3 {sum}, expected {want_size} bytes with blake3 {want_sum}",
                key.1
            ));
        }
        self.files.remove(&key);
        self.seen += 1;
        Ok(())
    }

    /// Checks that every file of the manifest was seen.
    ///
    /// # Errors
    /// A description naming a file the backup's tars did not hold.
    pub fn finish(&self) -> Result<usize, String> {
        match self.files.keys().min() {
            Some((tree, path)) => Err(format!(
                "`{path}` (tree {tree}) is in the backup's manifest but in none of its tars ({} such files)",
                self.files.len()
            )),
            None => Ok(self.seen),
        }
    }
}

/// The hashing side of a tar stream being unpacked: the stream's position
/// and, while a file's data passes, its byte range and hasher.
#[derive(Debug, Default)]
pub(crate) struct Window {
    pos: u64,
    range: Option<(u64, u64, blake3::Hasher)>,
}

impl Window {
    /// Starts hashing the bytes `start..start + len` of the stream.
    pub(crate) fn open(&mut self, start: u64, len: u64) {
        self.range = Some((start, start + len, blake3::Hasher::new()));
    }

    /// Ends the range: the checksum of what passed in it.
    pub(crate) fn close(&mut self) -> Option<String> {
        self.range
            .take()
            .map(|(_, _, h)| h.finalize().to_hex().to_string())
    }
}

/// A reader that feeds the bytes of a [`Window`]'s range to its hasher.
pub(crate) struct Tee<R> {
    pub(crate) inner: R,
    pub(crate) window: Rc<RefCell<Window>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut window = self.window.borrow_mut();
        let from = window.pos;
        window.pos += n as u64;
        if let Some((start, end, hasher)) = &mut window.range {
            let lo = (*start).max(from);
            let hi = (*end).min(from + n as u64);
            if lo < hi {
                let a = usize::try_from(lo - from).unwrap_or(0);
                let b = usize::try_from(hi - from).unwrap_or(0);
                hasher.update(&buf[a..b]);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(data: &[u8]) -> String {
        blake3::hash(data).to_hex().to_string()
    }

    #[test]
    fn manifests_round_trip_and_unknown_formats_are_refused() {
        let mut m = Manifest::new();
        m.files.push(FileSum {
            tree: "data".into(),
            path: "base/1/1259".into(),
            size: 3,
            blake3: sum(b"abc"),
        });
        assert_eq!(Manifest::parse(m.to_json().as_bytes()).unwrap(), m);
        let other = m.to_json().replace("\"format\":1", "\"format\":9");
        assert!(Manifest::parse(other.as_bytes()).is_err());
        assert!(Manifest::parse(b"{").is_err());
    }

    #[test]
    fn expected_files_are_checked_once_each_and_all_of_them() {
        let mut m = Manifest::new();
        for (path, data) in [("./PG_VERSION", &b"15\n"[..]), ("base/1/1", b"x")] {
            m.files.push(FileSum {
                tree: "data".into(),
                path: member_path(path).into(),
                size: data.len() as u64,
                blake3: sum(data),
            });
        }
        let mut e = Expected::new(m.clone()).unwrap();
        e.check("data", "./PG_VERSION", 3, &sum(b"15\n")).unwrap();
        let again = e.check("data", "PG_VERSION", 3, &sum(b"15\n")).unwrap_err();
        assert!(again.contains("PG_VERSION"), "{again}");
        let wrong = e.check("data", "base/1/1", 1, &sum(b"y")).unwrap_err();
        assert!(wrong.contains("`base/1/1` differs"), "{wrong}");
        let missing = e.finish().unwrap_err();
        assert!(missing.contains("base/1/1"), "{missing}");
        e.check("data", "base/1/1", 1, &sum(b"x")).unwrap();
        assert_eq!(e.finish().unwrap(), 2);
        assert!(e.check("16385", "base/1/1", 1, &sum(b"x")).is_err());
        m.files.push(m.files[0].clone());
        assert!(Expected::new(m).is_err());
    }

    #[test]
    fn the_tee_hashes_exactly_the_window_whatever_the_read_sizes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in [1, 7, 512, 4096, 20_000] {
            let window = Rc::new(RefCell::new(Window::default()));
            let mut tee = Tee {
                inner: &data[..],
                window: Rc::clone(&window),
            };
            let mut buf = vec![0u8; chunk];
            let mut read = 0;
            window.borrow_mut().open(1000, 3000);
            while tee.read(&mut buf).unwrap() > 0 {
                read += 1;
            }
            assert!(read > 0);
            assert_eq!(
                window.borrow_mut().close().unwrap(),
                sum(&data[1000..4000]),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn the_hashing_reader_counts_and_hashes() {
        let mut r = HashingReader::new(&b"hello world"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.finish(), (11, sum(b"hello world")));
    }
}
