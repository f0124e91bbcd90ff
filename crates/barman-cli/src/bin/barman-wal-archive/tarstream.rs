//! The tar stream `barman put-wal` reads on its standard input: the WAL file
//! under its base name, then a `SHA256SUMS` (or `MD5SUMS`) member whose one
//! line is `<hex digest> *<name>`, the digest of the member's content as sent.
//!
//! The content is hashed while it is copied, never held in memory. If
//! reading it fails, the stream is cut short without the tar trailer (the
//! [`Gate`] refuses every later write), so the server sees a truncated
//! archive rather than a well-formed one with wrong content.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::rc::Rc;

use md5::Md5;
use sha2::{Digest, Sha256};

/// Which checksum file accompanies the WAL.
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

/// The WAL member to send.
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

/// Why writing the stream failed.
#[derive(Debug)]
pub enum StreamError {
    /// Reading the content failed (a local problem).
    Read(io::Error),
    /// Writing to the output failed (typically ssh went away).
    Write(io::Error),
}

/// Writes the whole archive (WAL member, checksum member, trailer) into
/// `out` and flushes it.
#[cfg(test)]
pub fn write_archive<W: Write, R: Read>(
    out: W,
    member: Member<'_, R>,
    hash: HashKind,
) -> Result<(), StreamError> {
    write_archive_many(out, vec![member], hash)
}

/// Writes one archive with every member (WAL files, in order), then one
/// checksum member listing them all, then the trailer, into `out` and
/// flushes it: what `barman put-wal` reads, one or more WAL files per
/// stream.
pub fn write_archive_many<W: Write, R: Read>(
    out: W,
    members: Vec<Member<'_, R>>,
    hash: HashKind,
) -> Result<(), StreamError> {
    let open = Rc::new(Cell::new(true));
    let mut builder = tar::Builder::new(Gate {
        inner: out,
        open: Rc::clone(&open),
    });

    let mut lines = String::new();
    let mut mtime = 0;
    for member in members {
        let mut header = tar::Header::new_ustar();
        header.set_path(member.name).map_err(StreamError::Read)?;
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
                Some(read_error) => StreamError::Read(read_error),
                None => StreamError::Write(e),
            });
        }
        let digest = reader.hasher.take().map(Hasher::hex).unwrap_or_default();
        let _ = writeln!(lines, "{digest} *{}", member.name);
        mtime = member.mtime;
    }

    let mut sums = tar::Header::new_ustar();
    sums.set_path(hash.sums_name())
        .map_err(StreamError::Write)?;
    sums.set_entry_type(tar::EntryType::Regular);
    sums.set_size(lines.len() as u64);
    sums.set_mode(0o644);
    sums.set_mtime(mtime);
    sums.set_cksum();
    builder
        .append(&sums, lines.as_bytes())
        .map_err(StreamError::Write)?;
    let mut out = builder.into_inner().map_err(StreamError::Write)?;
    out.flush().map_err(StreamError::Write)
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

    #[test]
    fn archive_has_wal_then_sums() {
        let mut out = Vec::new();
        write_archive(&mut out, member(b"hello"), HashKind::Sha256).unwrap();
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
        write_archive_many(&mut out, vec![member(b"hello"), second], HashKind::Sha256).unwrap();
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
        let mut out = Vec::new();
        write_archive(&mut out, member(b"abc"), HashKind::Md5).unwrap();
        let m = members(&out);
        assert_eq!(m[1].0, "MD5SUMS");
        assert_eq!(
            m[1].1,
            b"900150983cd24fb0d6963f7d28e17f72 *000000010000000000000001\n"
        );
    }

    #[test]
    fn short_content_is_a_read_error_and_writes_no_trailer() {
        let mut out = Vec::new();
        let mut m = member(b"abc");
        m.size = 4096;
        let err = write_archive(&mut out, m, HashKind::Sha256).unwrap_err();
        assert!(matches!(err, StreamError::Read(_)), "{err:?}");
        // header (512) + the 3 bytes read; no padding, no trailer.
        assert_eq!(out.len(), 515);
    }
}
