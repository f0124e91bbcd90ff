//! The tar stream of `barman put-wal`: written by `barman-wal-archive` (the
//! sender, on the PostgreSQL host) and read by `barman put-wal` (the
//! receiver, on the Barman server), in the format of Barman's own scripts.
//!
//! The stream is a ustar archive holding, in order:
//!
//! - one or more WAL files, each a regular member named after the file
//!   (its base name: no directories; a reader also accepts a leading `./`);
//! - one checksum member, `SHA256SUMS` (Barman's default) or `MD5SUMS`
//!   (`--md5`, for old servers), with one line per WAL file,
//!   `<lowercase hex digest> *<name>\n` (a reader also accepts
//!   `<digest>  <name>`, and upper-case digits);
//! - the end-of-archive blocks (Python's `tarfile` pads them to 10 KiB).
//!
//! A reader accepts at most [`MAX_FILES`] WAL files of at most
//! [`MAX_MEMBER`] bytes each, and a checksum member of at most
//! [`MAX_SUMS`] bytes.
//!
//! [`write_stream`] hashes the content while copying it, never holding it
//! in memory; if reading it fails the stream is cut short without the tar
//! trailer, so the receiver sees a truncated archive rather than a
//! well-formed one with wrong content. [`read_stream`] checks names, types
//! and limits, hands each WAL member's content to the caller and returns the
//! SHA-256 of what was read with the checksums the sender declared.
//!
//! # Example
//!
//! ```
//! use barman_wal::put_wal_stream::{HashKind, Member, read_stream, write_stream};
//!
//! let content = b"not really a WAL file";
//! let mut stream = Vec::new();
//! let member = Member {
//!     name: "000000010000000000000001",
//!     size: content.len() as u64,
//!     mtime: 0,
//!     uid: 0,
//!     gid: 0,
//!     content: &content[..],
//! };
//! write_stream(&mut stream, vec![member], HashKind::Sha256).unwrap();
//!
//! let mut received = Vec::new();
//! let read = read_stream(&stream[..], |_name, data| {
//!     std::io::copy(data, &mut received).map(drop)
//! })
//! .unwrap();
//! assert_eq!(received, content);
//! assert_eq!(read.checksums.kind(), HashKind::Sha256);
//! let wal = &read.members[0];
//! assert_eq!(read.checksums.expected(&wal.name).unwrap(), wal.sha256);
//! ```

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::rc::Rc;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::WalFileName;

/// Most WAL files a reader accepts in one stream.
pub const MAX_FILES: usize = 64;
/// Largest checksum member a reader accepts, in bytes.
pub const MAX_SUMS: u64 = 1 << 20;
/// Largest WAL member a reader accepts, in bytes (1 GiB segments, plus
/// slack for a compressor's worst case).
pub const MAX_MEMBER: u64 = (1 << 30) + (1 << 24);
/// How much of what follows the end-of-archive blocks a reader drains
/// (the sender's padding), so the sender does not fail on a closed pipe.
const MAX_TRAILING: u64 = 1 << 20;

/// Which checksum member accompanies the WAL files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// `SHA256SUMS` (Barman's default).
    Sha256,
    /// `MD5SUMS` (`--md5`, for old Barman servers).
    Md5,
}

impl HashKind {
    /// The name of the checksum member.
    pub fn sums_name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA256SUMS",
            Self::Md5 => "MD5SUMS",
        }
    }

    /// The kind whose checksum member is named `name`.
    pub fn from_sums_name(name: &str) -> Option<Self> {
        [Self::Sha256, Self::Md5]
            .into_iter()
            .find(|kind| kind.sums_name() == name)
    }

    /// The algorithm's name in messages (`sha256`, `md5`).
    pub fn algorithm(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Md5 => "md5",
        }
    }

    /// The lowercase hex digest of everything `reader` yields.
    pub fn digest_reader<R: Read>(self, mut reader: R) -> io::Result<String> {
        let mut hasher = self.hasher();
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(hasher.hex()),
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A fresh hasher of this kind.
    fn hasher(self) -> Hasher {
        match self {
            Self::Sha256 => Hasher::Sha256(Sha256::new()),
            Self::Md5 => Hasher::Md5(Md5::new()),
        }
    }
}

/// A running digest.
enum Hasher {
    /// SHA-256.
    Sha256(Sha256),
    /// MD5.
    Md5(Md5),
}

impl Hasher {
    /// Feeds `data`.
    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Md5(h) => h.update(data),
        }
    }

    /// The lowercase hex digest.
    fn hex(self) -> String {
        match self {
            Self::Sha256(h) => hex(&h.finalize()),
            Self::Md5(h) => hex(&h.finalize()),
        }
    }
}

/// Lowercase hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// One line of a checksum member: `<digest> *<name>\n`.
fn sums_line(out: &mut String, digest: &str, name: &str) {
    let _ = writeln!(out, "{digest} *{name}");
}

// ---------------------------------------------------------------------------
// Writing

/// A WAL member to send.
#[derive(Debug)]
pub struct Member<'a, R: Read> {
    /// The member name (the WAL file's base name).
    pub name: &'a str,
    /// The exact number of content bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Owner uid recorded in the header.
    pub uid: u64,
    /// Owner gid recorded in the header.
    pub gid: u64,
    /// The content, at least `size` bytes.
    pub content: R,
}

/// Why writing a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Reading a member's content failed (a local problem); the stream was
    /// cut short.
    #[error("{0}")]
    Read(io::Error),
    /// Writing to the output failed (typically the receiver went away).
    #[error("{0}")]
    Write(io::Error),
}

/// Writes one stream with every member (WAL files, in order), then one
/// checksum member listing them all, then the trailer, into `out`, and
/// flushes it.
pub fn write_stream<W: Write, R: Read>(
    out: W,
    members: Vec<Member<'_, R>>,
    hash: HashKind,
) -> Result<(), WriteError> {
    let open = Rc::new(Cell::new(true));
    let mut builder = tar::Builder::new(Gate {
        inner: out,
        open: Rc::clone(&open),
    });

    let mut lines = String::new();
    let mut mtime = 0;
    for member in members {
        let mut header = tar::Header::new_ustar();
        header.set_path(member.name).map_err(WriteError::Read)?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(member.size);
        header.set_mode(0o600);
        header.set_mtime(member.mtime);
        header.set_uid(member.uid);
        header.set_gid(member.gid);
        header.set_cksum();

        let mut reader = HashingReader {
            inner: member.content,
            remaining: member.size,
            hasher: Some(hash.hasher()),
            failure: None,
            open: Rc::clone(&open),
        };
        if let Err(e) = builder.append(&header, &mut reader) {
            return Err(match reader.failure.take() {
                Some(read_error) => WriteError::Read(read_error),
                None => WriteError::Write(e),
            });
        }
        let digest = reader.hasher.take().map(Hasher::hex).unwrap_or_default();
        sums_line(&mut lines, &digest, member.name);
        mtime = member.mtime;
    }

    let mut sums = tar::Header::new_ustar();
    sums.set_path(hash.sums_name()).map_err(WriteError::Write)?;
    sums.set_entry_type(tar::EntryType::Regular);
    sums.set_size(lines.len() as u64);
    sums.set_mode(0o644);
    sums.set_mtime(mtime);
    sums.set_cksum();
    builder
        .append(&sums, lines.as_bytes())
        .map_err(WriteError::Write)?;
    let mut out = builder.into_inner().map_err(WriteError::Write)?;
    out.flush().map_err(WriteError::Write)
}

/// A writer that refuses every write once the content could not be read,
/// so nothing (in particular not the tar trailer written when the builder
/// is dropped) follows a truncated member.
struct Gate<W> {
    /// The real output.
    inner: W,
    /// False once a read failed.
    open: Rc<Cell<bool>>,
}

impl<W: Write> Gate<W> {
    /// The error returned once closed.
    fn closed() -> io::Error {
        io::Error::other("stream abandoned after a read error")
    }
}

impl<W: Write> Write for Gate<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.open.get() {
            self.inner.write(buf)
        } else {
            Err(Self::closed())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.open.get() {
            self.inner.flush()
        } else {
            Err(Self::closed())
        }
    }
}

/// Reads exactly `remaining` bytes of content, hashing them; a short file
/// or a read error closes the [`Gate`] and is remembered as a local failure.
struct HashingReader<R> {
    /// The content.
    inner: R,
    /// Bytes still to deliver.
    remaining: u64,
    /// The digest so far (taken when done).
    hasher: Option<Hasher>,
    /// The read error, if reading failed.
    failure: Option<io::Error>,
    /// The output gate to close on failure.
    open: Rc<Cell<bool>>,
}

impl<R: Read> HashingReader<R> {
    /// Records a read failure and closes the gate.
    fn fail(&mut self, error: io::Error) -> io::Error {
        self.open.set(false);
        let copy = io::Error::new(error.kind(), error.to_string());
        self.failure = Some(error);
        copy
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e)),
            }
        };
        if n == 0 {
            let remaining = self.remaining;
            return Err(self.fail(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended {remaining} bytes early (it shrank while being sent)"),
            )));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Reading

/// Why a stream is not a valid put-wal stream. The messages are the ones
/// `barman put-wal` reports.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The tar structure could not be read.
    #[error("cannot read the tar stream: {0}")]
    Tar(io::Error),
    /// A member is not a regular file.
    #[error("unsupported member type for `{0}` (only regular files are accepted)")]
    MemberType(String),
    /// A member name has a directory part (or is empty, `.` or `..`).
    #[error("unsupported file name `{0}` (no directories allowed)")]
    MemberName(String),
    /// The checksum member could not be read.
    #[error("cannot read {member}: {source}")]
    SumsRead {
        /// `SHA256SUMS` or `MD5SUMS`.
        member: &'static str,
        /// The read error.
        source: io::Error,
    },
    /// The checksum member is larger than [`MAX_SUMS`].
    #[error("{0} is too large")]
    SumsTooLarge(&'static str),
    /// A line of the checksum member is not `<hex digest> *<name>`.
    #[error("{member} line {line}: expected `<hex digest> *<file name>`")]
    SumsLine {
        /// `SHA256SUMS` or `MD5SUMS`.
        member: &'static str,
        /// The line number, from 1.
        line: usize,
    },
    /// A member is neither a checksum member nor a WAL file name.
    #[error("`{0}` is not a WAL file name")]
    NotWal(String),
    /// More than [`MAX_FILES`] WAL files.
    #[error("more than {MAX_FILES} files in one stream")]
    TooManyFiles,
    /// A WAL member larger than [`MAX_MEMBER`].
    #[error("`{name}` is too large ({size} bytes)")]
    TooLarge {
        /// The member name.
        name: String,
        /// Its declared size.
        size: u64,
    },
    /// The stream ended inside a member.
    #[error("the stream ended inside `{0}`")]
    Truncated(String),
    /// A member held fewer bytes than its header declared.
    #[error("the stream ended inside `{name}` ({read} of {declared} bytes)")]
    Short {
        /// The member name.
        name: String,
        /// Bytes read.
        read: u64,
        /// Bytes declared.
        declared: u64,
    },
    /// No WAL member at all.
    #[error("no WAL file in the stream")]
    NoWal,
    /// No checksum member.
    #[error("no checksum file (SHA256SUMS or MD5SUMS) in the stream")]
    NoSums,
    /// The checksum member does not list a WAL file of the stream.
    #[error("no checksum for `{0}` in the checksum file")]
    NoChecksum(String),
}

/// Why [`read_stream`] failed: the stream itself, or the caller's sink.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The stream is not a valid put-wal stream (or was cut short).
    Format(FormatError),
    /// The caller's `receive` failed.
    Sink(E),
}

impl<E: fmt::Display> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(e) => e.fmt(f),
            Self::Sink(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ReadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Format(e) => Some(e),
            Self::Sink(e) => Some(e),
        }
    }
}

impl<E> From<FormatError> for ReadError<E> {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}

/// A WAL member as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMember {
    /// The member name, as sent (without a leading `./`).
    pub name: String,
    /// The name, parsed.
    pub wal: WalFileName,
    /// The bytes read.
    pub size: u64,
    /// The SHA-256 of the bytes read, lowercase hex.
    pub sha256: String,
}

/// The checksum member of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksums {
    /// Which member it was.
    kind: HashKind,
    /// Lowercase digest by file name.
    digests: BTreeMap<String, String>,
}

impl Checksums {
    /// Parses the text of the checksum member of `kind`: lines
    /// `<hex> *<name>` or `<hex>  <name>`; empty lines are skipped.
    pub fn parse(kind: HashKind, text: &str) -> Result<Self, FormatError> {
        let mut digests = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let parsed = line
                .split_once(" *")
                .or_else(|| line.split_once("  "))
                .filter(|(sum, name)| {
                    !name.is_empty()
                        && !sum.is_empty()
                        && sum.bytes().all(|b| b.is_ascii_hexdigit())
                });
            let Some((sum, name)) = parsed else {
                return Err(FormatError::SumsLine {
                    member: kind.sums_name(),
                    line: i + 1,
                });
            };
            digests.insert(name.to_owned(), sum.to_ascii_lowercase());
        }
        Ok(Self { kind, digests })
    }

    /// Which algorithm the sender used.
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// The digest the sender declared for `name` (lowercase hex).
    pub fn expected(&self, name: &str) -> Result<&str, FormatError> {
        self.digests
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| FormatError::NoChecksum(name.to_owned()))
    }
}

/// A stream as read: its WAL members (their content went to the caller)
/// and its checksum member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedStream {
    /// The WAL members, in stream order (at least one).
    pub members: Vec<ReceivedMember>,
    /// The checksums the sender declared.
    pub checksums: Checksums,
}

/// Reads a put-wal stream from `input`, calling `receive(name, content)`
/// for each WAL member in order; `receive` must read `content` to its end.
///
/// Names, member types and the limits are checked before `receive` is
/// called; whether each content matches its declared checksum is the
/// caller's to check, with [`ReceivedMember::sha256`] (for `SHA256SUMS`) or
/// [`HashKind::digest_reader`] (for `MD5SUMS`) against
/// [`Checksums::expected`]. After the end-of-archive blocks, up to 1 MiB of
/// padding is drained so the sender does not fail on a closed pipe.
pub fn read_stream<R, E>(
    input: R,
    mut receive: impl FnMut(&ReceivedName<'_>, &mut dyn Read) -> Result<(), E>,
) -> Result<ReceivedStream, ReadError<E>>
where
    R: Read,
{
    let mut archive = tar::Archive::new(input);
    let mut members: Vec<ReceivedMember> = Vec::new();
    let mut checksums: Option<Checksums> = None;
    let entries = archive.entries().map_err(FormatError::Tar)?;
    for entry in entries {
        let mut entry = entry.map_err(FormatError::Tar)?;
        let raw = entry.path_bytes();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let name = raw.strip_prefix("./").unwrap_or(&raw).to_owned();
        if !entry.header().entry_type().is_file() {
            return Err(FormatError::MemberType(name).into());
        }
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(FormatError::MemberName(name).into());
        }
        if let Some(kind) = HashKind::from_sums_name(&name) {
            let member = kind.sums_name();
            let mut text = String::new();
            (&mut entry)
                .take(MAX_SUMS + 1)
                .read_to_string(&mut text)
                .map_err(|source| FormatError::SumsRead { member, source })?;
            if text.len() as u64 > MAX_SUMS {
                return Err(FormatError::SumsTooLarge(member).into());
            }
            checksums = Some(Checksums::parse(kind, &text)?);
            continue;
        }
        let wal: WalFileName = name
            .parse()
            .map_err(|_| FormatError::NotWal(name.clone()))?;
        if members.len() >= MAX_FILES {
            return Err(FormatError::TooManyFiles.into());
        }
        let declared = entry.header().size().unwrap_or(0);
        if declared > MAX_MEMBER {
            return Err(FormatError::TooLarge {
                name,
                size: declared,
            }
            .into());
        }
        let mut content = MemberReader {
            inner: &mut entry,
            hasher: Sha256::new(),
            read: 0,
            failure: None,
        };
        let received = receive(
            &ReceivedName {
                name: &name,
                wal: &wal,
            },
            &mut content,
        );
        let MemberReader {
            hasher,
            read,
            failure,
            ..
        } = content;
        match (received, failure) {
            (_, Some(io::ErrorKind::UnexpectedEof)) => {
                return Err(FormatError::Truncated(name).into());
            }
            (Err(e), _) => return Err(ReadError::Sink(e)),
            (Ok(()), Some(_)) => return Err(FormatError::Truncated(name).into()),
            (Ok(()), None) => {}
        }
        if read != declared {
            return Err(FormatError::Short {
                name,
                read,
                declared,
            }
            .into());
        }
        members.push(ReceivedMember {
            name,
            wal,
            size: read,
            sha256: hex(&hasher.finalize()),
        });
    }
    // Read the tar padding the sender still writes after the end-of-archive
    // blocks (Python's tarfile pads to 10 KiB records), so that it does not
    // fail on a closed pipe. Bounded: a sender cannot keep us here.
    let _ = io::copy(
        &mut archive.into_inner().take(MAX_TRAILING),
        &mut io::sink(),
    );
    if members.is_empty() {
        return Err(FormatError::NoWal.into());
    }
    let checksums = checksums.ok_or(FormatError::NoSums)?;
    Ok(ReceivedStream { members, checksums })
}

/// The name of the WAL member [`read_stream`] hands over.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedName<'a> {
    /// As sent (without a leading `./`).
    pub name: &'a str,
    /// Parsed.
    pub wal: &'a WalFileName,
}

/// A member's content as handed to the caller: hashed and counted on the
/// way, with the kind of a read error remembered (the caller's own write
/// errors are told apart from a broken stream).
struct MemberReader<R> {
    /// The tar entry.
    inner: R,
    /// SHA-256 of what was read.
    hasher: Sha256,
    /// Bytes read.
    read: u64,
    /// The kind of the read error, if reading failed.
    failure: Option<io::ErrorKind>,
}

impl<R: Read> Read for MemberReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.read += n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failure = Some(e.kind());
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    fn member(content: &[u8]) -> Member<'_, &[u8]> {
        Member {
            name: "000000010000000000000001",
            size: content.len() as u64,
            mtime: 1_700_000_000,
            uid: 0,
            gid: 0,
            content,
        }
    }

    fn write_one(member: Member<'_, &[u8]>, hash: HashKind) -> Result<Vec<u8>, WriteError> {
        let mut out = Vec::new();
        write_stream(&mut out, vec![member], hash).map(|()| out)
    }

    #[test]
    fn stream_has_wal_then_sums() {
        let out = write_one(member(b"hello"), HashKind::Sha256).unwrap();
        let m = members(&out);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], ("000000010000000000000001".into(), b"hello".to_vec()));
        assert_eq!(m[1].0, "SHA256SUMS");
        assert_eq!(
            String::from_utf8(m[1].1.clone()).unwrap(),
            format!(
                "{} *000000010000000000000001\n",
                hex(&Sha256::digest(b"hello"))
            )
        );
    }

    #[test]
    fn many_members_then_one_sums_file_listing_them() {
        let mut out = Vec::new();
        let mut second = member(b"world");
        second.name = "000000010000000000000002";
        write_stream(&mut out, vec![member(b"hello"), second], HashKind::Sha256).unwrap();
        let m = members(&out);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], ("000000010000000000000001".into(), b"hello".to_vec()));
        assert_eq!(m[1], ("000000010000000000000002".into(), b"world".to_vec()));
        assert_eq!(m[2].0, "SHA256SUMS");
        assert_eq!(
            String::from_utf8(m[2].1.clone()).unwrap(),
            format!(
                "{} *000000010000000000000001\n{} *000000010000000000000002\n",
                hex(&Sha256::digest(b"hello")),
                hex(&Sha256::digest(b"world"))
            )
        );
    }

    #[test]
    fn md5_sums() {
        let out = write_one(member(b"abc"), HashKind::Md5).unwrap();
        let m = members(&out);
        assert_eq!(m[1].0, "MD5SUMS");
        assert_eq!(
            m[1].1,
            b"900150983cd24fb0d6963f7d28e17f72 *000000010000000000000001\n"
        );
    }

    #[test]
    fn short_content_is_a_read_error_and_writes_no_trailer() {
        let mut m = member(b"abc");
        m.size = 4096;
        let mut out = Vec::new();
        let err = write_stream(&mut out, vec![m], HashKind::Sha256).unwrap_err();
        assert!(matches!(err, WriteError::Read(_)), "{err:?}");
        // header (512) + the 3 bytes read; no padding, no trailer.
        assert_eq!(out.len(), 515);
    }

    #[test]
    fn checksum_lines() {
        let m = Checksums::parse(
            HashKind::Sha256,
            "ABCD *000000010000000000000001\nef01  00000002.history\n",
        )
        .unwrap();
        assert_eq!(m.expected("000000010000000000000001").unwrap(), "abcd");
        assert_eq!(m.expected("00000002.history").unwrap(), "ef01");
        assert!(m.expected("000000010000000000000002").is_err());
        assert!(Checksums::parse(HashKind::Md5, "zz *x\n").is_err());
        assert!(Checksums::parse(HashKind::Md5, "nohash\n").is_err());
    }

    /// Reads `stream`, collecting the contents.
    fn read_all(stream: &[u8]) -> Result<(ReceivedStream, Vec<Vec<u8>>), ReadError<io::Error>> {
        let mut contents = Vec::new();
        let read = read_stream(stream, |_, data| {
            let mut buf = Vec::new();
            data.read_to_end(&mut buf)?;
            contents.push(buf);
            Ok(())
        })?;
        Ok((read, contents))
    }

    #[test]
    fn what_is_written_reads_back() {
        for kind in [HashKind::Sha256, HashKind::Md5] {
            let mut out = Vec::new();
            let mut second = member(b"world");
            second.name = "00000002.history";
            write_stream(&mut out, vec![member(b"hello"), second], kind).unwrap();
            let (read, contents) = read_all(&out).unwrap();
            assert_eq!(contents, [b"hello".to_vec(), b"world".to_vec()]);
            assert_eq!(read.checksums.kind(), kind);
            for (m, content) in read.members.iter().zip(&contents) {
                assert_eq!(m.sha256, hex(&Sha256::digest(content)));
                assert_eq!(m.size, content.len() as u64);
                assert_eq!(
                    read.checksums.expected(&m.name).unwrap(),
                    kind.digest_reader(&content[..]).unwrap()
                );
            }
        }
    }

    /// A stream of raw members (name, type, content).
    fn raw_stream(members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, content) in members {
            let mut header = tar::Header::new_ustar();
            header.set_path(name).unwrap();
            header.set_entry_type(*kind);
            header.set_size(content.len() as u64);
            header.set_cksum();
            builder.append(&header, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn reader_rejects_bad_streams() {
        use tar::EntryType::{Directory, Regular};
        let err = |stream: Vec<u8>| match read_all(&stream) {
            Err(ReadError::Format(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let cases: [(&str, tar::EntryType, &[u8], &str); 6] = [
            (
                "a/000000010000000000000001",
                Regular,
                b"x",
                "unsupported file name `a/000000010000000000000001` (no directories allowed)",
            ),
            (
                "000000010000000000000001",
                Directory,
                b"",
                "unsupported member type for `000000010000000000000001` (only regular files are accepted)",
            ),
            (
                "postgresql.conf",
                Regular,
                b"x",
                "`postgresql.conf` is not a WAL file name",
            ),
            ("SHA256SUMS", Regular, b"", "no WAL file in the stream"),
            (
                "./000000010000000000000001",
                Regular,
                b"x",
                "no checksum file (SHA256SUMS or MD5SUMS) in the stream",
            ),
            (
                "MD5SUMS",
                Regular,
                b"bad\n",
                "MD5SUMS line 1: expected `<hex digest> *<file name>`",
            ),
        ];
        for (name, kind, content, expected) in cases {
            assert_eq!(err(raw_stream(&[(name, kind, content)])), expected);
        }
        let many: Vec<String> = (1..=MAX_FILES + 1)
            .map(|i| format!("0000000100000000000000{i:02X}"))
            .collect();
        let many: Vec<_> = many
            .iter()
            .map(|n| (n.as_str(), Regular, &b""[..]))
            .collect();
        assert_eq!(err(raw_stream(&many)), "more than 64 files in one stream");
        // Cut inside the member's content.
        let whole = raw_stream(&[("000000010000000000000001", Regular, &[7u8; 2048])]);
        assert!(
            err(whole[..1024].to_vec())
                .starts_with("the stream ended inside `000000010000000000000001`"),
        );
    }

    #[test]
    fn sink_errors_are_the_callers() {
        let out = write_one(member(b"hello"), HashKind::Sha256).unwrap();
        let result = read_stream(&out[..], |_, _| Err::<(), _>("disk full"));
        assert!(matches!(result, Err(ReadError::Sink("disk full"))));
    }
}
