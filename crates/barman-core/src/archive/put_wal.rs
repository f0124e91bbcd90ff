//! `put-wal`: receiving WAL files into `incoming/`.
//!
//! The stream is what Barman's `barman-wal-archive` sends (and ours): a tar
//! with the WAL file(s) and a `SHA256SUMS` (or `MD5SUMS`) member with lines
//! `<hex digest> *<name>`. Every file is written to a temporary file,
//! fsync'ed, its checksum verified, its content checked ([`inspect`]), and
//! only then linked into `incoming/` (and the directory fsync'ed): when
//! put-wal exits 0 the WAL is durable, and on any error nothing is left.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use barman_wal::{Codec, WalFileName};
use md5::Md5;
use sha2::{Digest, Sha256};

use super::inspect::{InspectError, WalExpectations, inspect, same_content};
use barman_fs::{NoReplace, TempFile};

use super::store::{ErrorKind, create_temp, move_to_errors};
use crate::clock::Clock;
use crate::{Error, Result, ServerLayout};
use barman_catalog::fs::create_dir_secure;

/// Most WAL files accepted in one stream.
const MAX_FILES: usize = 64;
/// Largest checksum member accepted.
const MAX_SUMS: u64 = 1 << 20;
/// Largest WAL member accepted (1 GiB segments, plus slack for a
/// compressor's worst case).
const MAX_MEMBER: u64 = (1 << 30) + (1 << 24);

/// Options of a put-wal.
#[derive(Debug, Clone, Default)]
pub struct PutWalOptions {
    /// What the files must match.
    pub expectations: WalExpectations,
    /// The server's WAL compression (for custom magic detection and
    /// duplicate comparison).
    pub codec: Option<Codec>,
}

/// What happened to one received file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Written into `incoming/`.
    Stored,
    /// `incoming/` already held the same content.
    AlreadyPresent,
    /// `incoming/` held a different file of that name, moved to `errors/`
    /// (path given); the new one was stored.
    ReplacedDuplicate(PathBuf),
}

/// One received file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedWal {
    /// The WAL file name.
    pub name: String,
    /// Bytes stored (as received: possibly compressed).
    pub size: u64,
    /// What happened.
    pub outcome: Received,
}

/// A received file waiting in a durable temporary file (removed when
/// dropped unless installed).
struct Pending {
    name: WalFileName,
    raw_name: String,
    tmp: TempFile,
    size: u64,
    sha256: String,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Parses a checksum file: lines `<hex> *<name>` or `<hex>  <name>`.
fn parse_sums(text: &str, member: &str) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .split_once(" *")
            .or_else(|| line.split_once("  "))
            .filter(|(sum, name)| {
                !name.is_empty() && !sum.is_empty() && sum.bytes().all(|b| b.is_ascii_hexdigit())
            });
        let Some((sum, name)) = parsed else {
            return Err(Error::PutWalStream(format!(
                "{member} line {}: expected `<hex digest> *<file name>`",
                i + 1
            )));
        };
        map.insert(name.to_owned(), sum.to_ascii_lowercase());
    }
    Ok(map)
}

/// Receives a put-wal tar stream into `incoming/`.
pub fn put_wal_stream<R: Read>(
    reader: R,
    layout: &ServerLayout,
    options: &PutWalOptions,
    clock: &dyn Clock,
) -> Result<Vec<ReceivedWal>> {
    let incoming = layout.incoming_directory();
    create_dir_secure(incoming)?;
    let mut archive = tar::Archive::new(reader);
    let mut pending: Vec<Pending> = Vec::new();
    let mut sums: Option<(&'static str, BTreeMap<String, String>)> = None;
    let entries = archive
        .entries()
        .map_err(|e| Error::PutWalStream(format!("cannot read the tar stream: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::PutWalStream(format!("cannot read the tar stream: {e}")))?;
        let raw = entry.path_bytes();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let name = raw.strip_prefix("./").unwrap_or(&raw).to_owned();
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(Error::PutWalStream(format!(
                "unsupported member type for `{name}` (only regular files are accepted)"
            )));
        }
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::PutWalStream(format!(
                "unsupported file name `{name}` (no directories allowed)"
            )));
        }
        if name == "SHA256SUMS" || name == "MD5SUMS" {
            let mut text = String::new();
            (&mut entry)
                .take(MAX_SUMS + 1)
                .read_to_string(&mut text)
                .map_err(|e| Error::PutWalStream(format!("cannot read {name}: {e}")))?;
            if text.len() as u64 > MAX_SUMS {
                return Err(Error::PutWalStream(format!("{name} is too large")));
            }
            let algo = if name == "SHA256SUMS" {
                "sha256"
            } else {
                "md5"
            };
            sums = Some((algo, parse_sums(&text, &name)?));
            continue;
        }
        let wal: WalFileName = name
            .parse()
            .map_err(|_| Error::PutWalStream(format!("`{name}` is not a WAL file name")))?;
        if pending.len() >= MAX_FILES {
            return Err(Error::PutWalStream(format!(
                "more than {MAX_FILES} files in one stream"
            )));
        }
        let declared = entry.header().size().unwrap_or(0);
        if declared > MAX_MEMBER {
            return Err(Error::PutWalStream(format!(
                "`{name}` is too large ({declared} bytes)"
            )));
        }
        let tmp = create_temp(&incoming.join(&name))?;
        let mut w = HashingWriter {
            inner: io::BufWriter::with_capacity(256 * 1024, tmp),
            hasher: Sha256::new(),
            written: 0,
        };
        let copied = io::copy(&mut entry, &mut w);
        let HashingWriter {
            inner,
            hasher,
            written,
        } = w;
        let tmp = match (copied, inner.into_inner()) {
            (Ok(_), Ok(tmp)) => tmp,
            (Err(e), _) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(Error::PutWalStream(format!(
                    "the stream ended inside `{name}`"
                )));
            }
            (Err(e), Ok(tmp)) => return Err(Error::io("cannot write", tmp.path(), e)),
            (_, Err(e)) => {
                let (e, inner) = e.into_parts();
                return Err(Error::io("cannot write", inner.get_ref().path(), e));
            }
        };
        if written != declared {
            return Err(Error::PutWalStream(format!(
                "the stream ended inside `{name}` ({written} of {declared} bytes)"
            )));
        }
        tmp.sync()?;
        pending.push(Pending {
            name: wal,
            raw_name: name,
            tmp,
            size: written,
            sha256: hex(&hasher.finalize()),
        });
    }
    // Read the tar padding the sender still writes after the end-of-archive
    // blocks (Python's tarfile pads to 10 KiB records), so that it does not
    // fail on a closed pipe. Bounded: a sender cannot keep us here.
    let _ = io::copy(&mut archive.into_inner().take(1 << 20), &mut io::sink());
    if pending.is_empty() {
        return Err(Error::PutWalStream("no WAL file in the stream".into()));
    }
    let Some((algo, sums)) = sums else {
        return Err(Error::PutWalStream(
            "no checksum file (SHA256SUMS or MD5SUMS) in the stream".into(),
        ));
    };
    for p in &pending {
        let Some(expected) = sums.get(&p.raw_name) else {
            return Err(Error::PutWalStream(format!(
                "no checksum for `{}` in the checksum file",
                p.raw_name
            )));
        };
        let actual = if algo == "sha256" {
            p.sha256.clone()
        } else {
            md5_of(p.tmp.path())?
        };
        if &actual != expected {
            return Err(Error::WalRejected {
                name: p.raw_name.clone(),
                reason: format!("bad checksum: {algo} is {actual}, the sender says {expected}"),
            });
        }
    }
    let mut out = Vec::new();
    for p in &pending {
        check(p, options)?;
    }
    for p in pending {
        let outcome = install(p.tmp, &p.raw_name, layout, options, clock)?;
        tracing::info!("put-wal: received {} ({} bytes)", p.raw_name, p.size);
        out.push(ReceivedWal {
            name: p.raw_name,
            size: p.size,
            outcome,
        });
    }
    Ok(out)
}

/// Receives one local WAL file (the one-host mode: `put-wal SERVER PATH`).
pub fn put_wal_file(
    path: &Path,
    layout: &ServerLayout,
    options: &PutWalOptions,
    clock: &dyn Clock,
) -> Result<ReceivedWal> {
    let raw_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::PutWalStream(format!("`{}` has no file name", path.display())))?
        .to_owned();
    let name: WalFileName = raw_name
        .parse()
        .map_err(|_| Error::PutWalStream(format!("`{raw_name}` is not a WAL file name")))?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
    if !meta.is_file() {
        return Err(Error::PutWalStream(format!(
            "`{}` is not a regular file",
            path.display()
        )));
    }
    let incoming = layout.incoming_directory();
    create_dir_secure(incoming)?;
    let mut tmp = create_temp(&incoming.join(&raw_name))?;
    let mut src = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let size =
        io::copy(&mut src, &mut tmp).map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    tmp.sync()?;
    let p = Pending {
        name,
        raw_name: raw_name.clone(),
        tmp,
        size,
        sha256: String::new(),
    };
    check(&p, options)?;
    let outcome = install(p.tmp, &raw_name, layout, options, clock)?;
    Ok(ReceivedWal {
        name: raw_name,
        size,
        outcome,
    })
}

fn md5_of(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn check(p: &Pending, options: &PutWalOptions) -> Result<()> {
    match inspect(
        p.tmp.path(),
        &p.name,
        &options.expectations,
        options.codec.as_ref(),
    ) {
        Ok(_) => Ok(()),
        Err(InspectError::Invalid(reason)) => Err(Error::WalRejected {
            name: p.raw_name.clone(),
            reason,
        }),
        Err(InspectError::Io(e)) => Err(e),
    }
}

/// Installs the durable temporary file `tmp` (for `incoming/<name>`),
/// never replacing a file: the same content already there is kept, a
/// different one is moved to `errors/` first.
fn install(
    mut tmp: TempFile,
    name: &str,
    layout: &ServerLayout,
    options: &PutWalOptions,
    clock: &dyn Clock,
) -> Result<Received> {
    let dest = tmp.target().to_path_buf();
    let mut replaced = None;
    loop {
        match tmp.commit_no_replace()? {
            NoReplace::Installed => {
                return Ok(replaced.map_or(Received::Stored, Received::ReplacedDuplicate));
            }
            NoReplace::Exists(back) => {
                tmp = back;
                if same_content(tmp.path(), &dest, options.codec.as_ref())? {
                    return Ok(Received::AlreadyPresent);
                }
                let moved = move_to_errors(
                    &dest,
                    name,
                    layout.errors_directory(),
                    ErrorKind::Duplicate,
                    clock,
                )?;
                tracing::warn!(
                    "put-wal: a different `{name}` was waiting in incoming/; moved to {}",
                    moved.display()
                );
                replaced = Some(moved);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_lines() {
        let m = parse_sums(
            "ABCD *000000010000000000000001\nef01  00000002.history\n",
            "X",
        )
        .unwrap();
        assert_eq!(m["000000010000000000000001"], "abcd");
        assert_eq!(m["00000002.history"], "ef01");
        assert!(parse_sums("zz *x\n", "X").is_err());
        assert!(parse_sums("nohash\n", "X").is_err());
    }
}
