//! `<server>-xlog.db`: the WAL catalogue (BARMAN-BEHAVIOUR.md §3.4).
//!
//! One line per archived file: `name size time compression encryption`,
//! tab-separated; 3 and 4 column lines (older Barman) are read with the
//! missing columns as `None`; lines are always written with 5 columns.
//! Callers hold the server's xlogdb lock around read-modify-write cycles.

use std::path::{Path, PathBuf};

use barman_wal::WalFileName;

use super::python::PyFloat;
use crate::fs::{FILE_MODE, append_durable, read_optional, write_atomic};
use crate::{Error, Result};

/// One xlog.db line.
#[derive(Debug, Clone, PartialEq)]
pub struct XlogEntry {
    /// The archived file's name (segment, `.backup`, `.history`, `.partial`),
    /// kept as written; parsed lines always hold a valid [`WalFileName`].
    pub name: String,
    /// Stored (possibly compressed) size in bytes.
    pub size: u64,
    /// File mtime, float epoch seconds (keeps its text for exact round trips).
    pub time: PyFloat,
    /// Compression algorithm name, `None` if stored plain.
    pub compression: Option<String>,
    /// Encryption (`gpg`), `None` if not encrypted.
    pub encryption: Option<String>,
}

impl XlogEntry {
    /// An uncompressed, unencrypted entry with `time` printed as Python would.
    pub fn new(name: impl Into<String>, size: u64, time: f64) -> Self {
        Self {
            name: name.into(),
            size,
            time: PyFloat::new(time),
            compression: None,
            encryption: None,
        }
    }

    /// The line as written (5 tab-separated columns, trailing newline).
    pub fn to_line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\n",
            self.name,
            self.size,
            self.time,
            self.compression.as_deref().unwrap_or("None"),
            self.encryption.as_deref().unwrap_or("None"),
        )
    }

    /// Parses one line (without its newline). The error is a bare reason.
    pub fn parse_line(line: &str) -> std::result::Result<Self, String> {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !(3..=5).contains(&cols.len()) {
            return Err(format!("expected 3 to 5 columns, found {}", cols.len()));
        }
        let name = cols[0];
        if let Err(e) = name.parse::<WalFileName>() {
            return Err(e.to_string());
        }
        let size = cols[1]
            .parse::<u64>()
            .map_err(|_| format!("invalid size `{}`", cols[1]))?;
        let time = PyFloat::parse(cols[2]).map_err(|_| format!("invalid time `{}`", cols[2]))?;
        let opt = |i: usize| {
            cols.get(i)
                .filter(|v| **v != "None")
                .map(|v| (*v).to_owned())
        };
        Ok(Self {
            name: name.to_owned(),
            size,
            time,
            compression: opt(3),
            encryption: opt(4),
        })
    }
}

/// Handle on one server's xlog.db file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlogDb {
    path: PathBuf,
}

impl XlogDb {
    /// The xlog.db at `path` (see `ServerLayout::xlogdb_path`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parses xlog.db text; errors name `origin` and the line. Blank lines are skipped.
    pub fn parse(text: &str, origin: &Path) -> Result<Vec<XlogEntry>> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(idx, line)| {
                XlogEntry::parse_line(line).map_err(|message| Error::CatalogSyntax {
                    path: origin.to_path_buf(),
                    line: idx + 1,
                    message: format!("malformed xlog.db line: {message}"),
                })
            })
            .collect()
    }

    /// The file content for `entries`.
    pub fn render(entries: &[XlogEntry]) -> String {
        entries.iter().map(XlogEntry::to_line).collect()
    }

    /// Reads every entry (an absent file is an empty catalogue).
    pub fn read(&self) -> Result<Vec<XlogEntry>> {
        match read_optional(&self.path)? {
            Some(text) => Self::parse(&text, &self.path),
            None => Ok(Vec::new()),
        }
    }

    /// Appends one entry durably (write + fsync).
    pub fn append(&self, entry: &XlogEntry) -> Result<()> {
        append_durable(&self.path, &entry.to_line())
    }

    /// Whether a line for `name` exists (streams the file; an absent file
    /// has none). Malformed lines are skipped.
    pub fn contains(&self, name: &str) -> Result<bool> {
        use std::io::BufRead as _;
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("cannot read", &self.path, e)),
        };
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::io("cannot read", &self.path, e))?;
            if line.split('\t').next() == Some(name) || line.split_whitespace().next() == Some(name)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Cuts an unterminated last line (left by a crash in the middle of an
    /// append) so the next append starts on a fresh line. Returns the bytes
    /// removed. The caller holds the xlogdb lock.
    pub fn repair_tail(&self) -> Result<u64> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("cannot open", &self.path, e)),
        };
        let io = |e| Error::io("cannot repair", &self.path, e);
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Ok(0);
        }
        let mut end = len;
        let mut keep = 0;
        let mut buf = vec![0u8; 4096];
        'scan: while end > 0 {
            let start = end.saturating_sub(buf.len() as u64);
            let chunk = usize::try_from(end - start).unwrap_or(buf.len());
            file.seek(SeekFrom::Start(start)).map_err(io)?;
            file.read_exact(&mut buf[..chunk]).map_err(io)?;
            for i in (0..chunk).rev() {
                if buf[i] == b'\n' {
                    keep = start + i as u64 + 1;
                    break 'scan;
                }
            }
            end = start;
        }
        if keep == len {
            return Ok(0);
        }
        file.set_len(keep).map_err(io)?;
        file.sync_all().map_err(io)?;
        tracing::warn!(
            "{}: removed an unterminated last line ({} bytes) left by an interrupted append",
            self.path.display(),
            len - keep
        );
        Ok(len - keep)
    }

    /// Replaces the whole file atomically (temp file, fsync, rename, fsync dir).
    pub fn rewrite(&self, entries: &[XlogEntry]) -> Result<()> {
        write_atomic(&self.path, Self::render(entries).as_bytes(), FILE_MODE)
    }
}
