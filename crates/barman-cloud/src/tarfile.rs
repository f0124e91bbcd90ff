//! The tar format barman-cloud writes, byte for byte: Python's `tarfile`
//! in PAX mode (`TarFileIgnoringTruncate`, `format = PAX_FORMAT`), opened
//! as a stream (`w|`, `w|gz`, `w|bz2`) and, for snappy and lz4, compressed
//! by barman-cloud chunk by chunk (BARMAN-CLOUD.md §5).
//!
//! The reference is CPython 3.11's `Lib/tarfile.py`: `TarInfo.get_info`,
//! `create_pax_header`, `_create_pax_generic_header`, `_create_header`
//! (ustar magic `ustar\0` version `00`, the checksum as `%06o\0 `), the
//! zero padding of every member to 512 bytes and of the archive to a
//! 10240-byte record in `TarFile.close`, and `_Stream._init_write_gz`
//! (the gzip header of stream mode).
//!
//! Names are bytes as the file system holds them; Python sees them as
//! `str` decoded with `surrogateescape`, so a byte that is not UTF-8
//! counts as one character, forces a `path` record and
//! `hdrcharset=BINARY`, and becomes `?` in the ustar fields, as it does
//! in Python.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use barman_catalog::python::float_repr;
use barman_wal::Compression;

use crate::manifest::HashingReader;

/// The size of a tar block.
pub(crate) const BLOCK: u64 = 512;
/// The size of a tar record (`RECORDSIZE`, `BLOCKSIZE * 20`): the archive
/// is padded with zeros to a multiple of it.
pub(crate) const RECORD: u64 = BLOCK * 20;
/// The name of every PAX extended header (`_create_pax_generic_header`:
/// "like star does").
pub(crate) const PAX_HEADER_NAME: &str = "././@PaxHeader";

/// A member's type and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file (`0`), followed by its `size` bytes.
    Regular,
    /// A hard link (`1`) to a member written before in the same tar.
    HardLink(Vec<u8>),
    /// A symbolic link (`2`) and its target.
    Symlink(Vec<u8>),
    /// A character device (`3`).
    Char {
        /// `os.major(st_rdev)`.
        major: u32,
        /// `os.minor(st_rdev)`.
        minor: u32,
    },
    /// A block device (`4`).
    Block {
        /// `os.major(st_rdev)`.
        major: u32,
        /// `os.minor(st_rdev)`.
        minor: u32,
    },
    /// A directory (`5`).
    Dir,
    /// A FIFO (`6`).
    Fifo,
}

impl Kind {
    /// The type flag byte.
    fn flag(&self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::HardLink(_) => b'1',
            Kind::Symlink(_) => b'2',
            Kind::Char { .. } => b'3',
            Kind::Block { .. } => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }

    /// The link name (`linkname`), empty but for links.
    fn link(&self) -> &[u8] {
        match self {
            Kind::HardLink(target) | Kind::Symlink(target) => target,
            _ => b"",
        }
    }
}

/// A modification time as a `TarInfo` holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mtime {
    /// An `int` (a `TarInfo` built by hand: `backup_label` has 0): written
    /// in the ustar field only.
    Int(i64),
    /// A `float` (`os.lstat(...).st_mtime`): its rounded value in the
    /// ustar field, `str(float)` in a PAX `mtime` record.
    Float(f64),
}

impl Mtime {
    /// Python's `st_mtime` of a stat result: `sec + nsec * 1e-9` computed
    /// in double precision, as CPython's `fill_time` does.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn from_stat(sec: i64, nsec: i64) -> Self {
        Mtime::Float(sec as f64 + nsec as f64 * 1e-9)
    }
}

/// One member's header fields, as `TarFile.gettarinfo` (or a hand-made
/// `TarInfo`) fills them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    /// The name in the archive (`arcname`); a directory gets its `/` when
    /// encoded.
    pub name: Vec<u8>,
    /// The type.
    pub kind: Kind,
    /// `st_mode` (only the permission bits `0o7777` are written).
    pub mode: u32,
    /// `st_uid`.
    pub uid: u64,
    /// `st_gid`.
    pub gid: u64,
    /// `st_size` for a regular file, else 0.
    pub size: u64,
    /// The modification time.
    pub mtime: Mtime,
    /// The user name of `uid` (empty when unknown).
    pub uname: Vec<u8>,
    /// The group name of `gid` (empty when unknown).
    pub gname: Vec<u8>,
}

/// Python's view of a file-system name: `(characters, ascii, valid UTF-8)`,
/// a byte that is not UTF-8 counting as one (surrogate-escaped) character.
fn py_str(bytes: &[u8]) -> (usize, bool, bool) {
    let mut chars = 0;
    let mut utf8 = true;
    for chunk in bytes.utf8_chunks() {
        chars += chunk.valid().chars().count() + chunk.invalid().len();
        utf8 &= chunk.invalid().is_empty();
    }
    (chars, bytes.is_ascii(), utf8)
}

/// `s.encode("ascii", "replace")`: every character that is not ASCII (a
/// surrogate-escaped byte included) becomes one `?`.
fn ascii_replace(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(if c.is_ascii() { c as u8 } else { b'?' });
        }
        out.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
    }
    out
}

/// `stn(s, length, "ascii", "replace")`: the field, truncated or padded
/// with NULs.
fn stn(field: &mut [u8], value: &[u8]) {
    let encoded = ascii_replace(value);
    let n = encoded.len().min(field.len());
    field[..n].copy_from_slice(&encoded[..n]);
}

/// `itn(n, digits)` for a value that fits: `digits - 1` octal digits then
/// a NUL.
fn itn(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// Whether `value` fits an octal field of `digits` bytes (`8 ** (digits - 1)`).
fn fits(value: u64, digits: u32) -> bool {
    value < 8u64.pow(digits - 1)
}

/// Python's `round(float)`: to the nearest integer, ties to even.
#[allow(clippy::cast_possible_truncation)]
fn py_round(value: f64) -> i128 {
    value.round_ties_even() as i128
}

/// The fields `_create_header` takes (the rest are zero or empty).
#[derive(Debug, Default)]
struct Fields<'a> {
    name: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    flag: u8,
    link: &'a [u8],
    uname: &'a [u8],
    gname: &'a [u8],
    dev: Option<(u32, u32)>,
}

/// `TarInfo._create_header(info, USTAR_FORMAT, "ascii", "replace")`: one
/// 512-byte block with the POSIX magic and the checksum.
fn ustar_block(f: &Fields<'_>) -> [u8; 512] {
    let mut b = [0u8; 512];
    stn(&mut b[0..100], f.name);
    itn(&mut b[100..108], u64::from(f.mode & 0o7777));
    itn(&mut b[108..116], f.uid);
    itn(&mut b[116..124], f.gid);
    itn(&mut b[124..136], f.size);
    itn(&mut b[136..148], f.mtime);
    b[148..156].copy_from_slice(b"        ");
    b[156] = f.flag;
    stn(&mut b[157..257], f.link);
    b[257..265].copy_from_slice(b"ustar\x0000");
    stn(&mut b[265..297], f.uname);
    stn(&mut b[297..329], f.gname);
    if let Some((major, minor)) = f.dev {
        // Python raises for a device number beyond 7 octal digits; none
        // exists on Linux (major < 2^12, minor < 2^20).
        itn(&mut b[329..337], u64::from(major).min(0o7_777_777));
        itn(&mut b[337..345], u64::from(minor).min(0o7_777_777));
    }
    // prefix (345..500) stays empty: PAX never splits a name.
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let text = format!("{sum:06o}\0");
    b[148..155].copy_from_slice(&text.as_bytes()[text.len() - 7..]);
    b
}

/// One PAX record, `"%d %s=%s\n"`, its length counting itself
/// (`_create_pax_generic_header`'s loop).
pub(crate) fn pax_record(keyword: &str, value: &[u8]) -> Vec<u8> {
    let l = keyword.len() + value.len() + 3;
    let mut p = 0;
    loop {
        let n = l + p.to_string().len();
        if n == p {
            break;
        }
        p = n;
    }
    let mut record = format!("{p} {keyword}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// The bytes `member` starts with in the archive (`TarInfo.tobuf(PAX_FORMAT)`):
/// an `x` header and its records when a field needs one (a float mtime
/// always does), then the ustar header.
pub(crate) fn header(member: &Member) -> Vec<u8> {
    let mut name = member.name.clone();
    if member.kind == Kind::Dir && !name.ends_with(b"/") {
        name.push(b'/');
    }
    let link = member.kind.link();
    let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
    // The string fields: not ASCII, or longer (in characters) than the field.
    for (keyword, value, length) in [
        ("path", name.as_slice(), 100),
        ("linkpath", link, 100),
        ("uname", member.uname.as_slice(), 32),
        ("gname", member.gname.as_slice(), 32),
    ] {
        let (chars, ascii, _) = py_str(value);
        if !ascii || chars > length {
            pax.push((keyword, value.to_vec()));
        }
    }
    // The number fields: out of range (0 in the ustar field), or a float
    // (rounded in the ustar field, `str(float)` in the record).
    let mut number = |keyword: &'static str, value: u64, digits: u32| -> u64 {
        if fits(value, digits) {
            value
        } else {
            pax.push((keyword, value.to_string().into_bytes()));
            0
        }
    };
    let uid = number("uid", member.uid, 8);
    let gid = number("gid", member.gid, 8);
    let size = number("size", member.size, 12);
    let mtime = match member.mtime {
        Mtime::Int(v) => {
            if let Some(v) = u64::try_from(v).ok().filter(|&v| fits(v, 12)) {
                v
            } else {
                pax.push(("mtime", v.to_string().into_bytes()));
                0
            }
        }
        Mtime::Float(v) => {
            pax.push(("mtime", float_repr(v).into_bytes()));
            u64::try_from(py_round(v))
                .ok()
                .filter(|&v| fits(v, 12))
                .unwrap_or(0)
        }
    };
    let dev = match member.kind {
        Kind::Char { major, minor } | Kind::Block { major, minor } => Some((major, minor)),
        _ => None,
    };
    let mut out = Vec::with_capacity(3 * 512);
    if !pax.is_empty() {
        let binary = pax.iter().any(|(_, v)| !py_str(v).2);
        let mut records = Vec::new();
        if binary {
            records.extend_from_slice(b"21 hdrcharset=BINARY\n");
        }
        for (keyword, value) in &pax {
            records.extend(pax_record(keyword, value));
        }
        out.extend_from_slice(&ustar_block(&Fields {
            name: PAX_HEADER_NAME.as_bytes(),
            size: records.len() as u64,
            flag: b'x',
            ..Fields::default()
        }));
        out.extend_from_slice(&records);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend_from_slice(&ustar_block(&Fields {
        name: &name,
        mode: member.mode,
        uid,
        gid,
        size,
        mtime,
        flag: member.kind.flag(),
        link,
        uname: &member.uname,
        gname: &member.gname,
        dev,
    }));
    out
}

/// A tar stream as `TarFileIgnoringTruncate` writes it: members, each
/// padded to 512 bytes, then two zero blocks and zeros up to the record.
pub(crate) struct TarWriter<W: Write> {
    inner: W,
    offset: u64,
    /// `TarFile.inodes`: the first name of each multiply linked file
    /// written, for the hard links after it.
    inodes: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    /// An empty archive writing into `inner`.
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            offset: 0,
            inodes: HashMap::new(),
        }
    }

    /// `gettarinfo`'s hard links: a regular file whose inode (`(ino,
    /// dev)`, `nlink` names) was written before under another name becomes
    /// a link to it; otherwise its name is remembered.
    ///
    /// Python remembers every regular file; only files with more than one
    /// name are remembered here (memory stays flat), which differs only
    /// for a link created while the backup runs.
    pub(crate) fn link_or_remember(&mut self, member: &mut Member, inode: (u64, u64), nlink: u64) {
        if member.kind != Kind::Regular || nlink <= 1 || inode.0 == 0 {
            return;
        }
        match self.inodes.get(&inode) {
            Some(first) if *first != member.name => {
                member.kind = Kind::HardLink(first.clone());
                member.size = 0;
            }
            _ => {
                self.inodes.insert(inode, member.name.clone());
            }
        }
    }

    /// Appends `member`; a regular file's data is read from `data` (the
    /// missing end of a file that shrank is written as NULs, the part of
    /// one that grew is left out, as `copyfileobj_pad_truncate` does).
    /// For a regular file, the size and blake3 checksum of the data
    /// written (for the backup's manifest).
    pub(crate) fn append(
        &mut self,
        member: &Member,
        data: Option<&mut dyn Read>,
    ) -> io::Result<Option<(u64, String)>> {
        let head = header(member);
        self.inner.write_all(&head)?;
        self.offset += head.len() as u64;
        if let (Kind::Regular, Some(data)) = (&member.kind, data) {
            let size = member.size;
            let mut padded = HashingReader::new(data.take(size).chain(io::repeat(0)).take(size));
            let copied = io::copy(&mut padded, &mut self.inner)?;
            debug_assert_eq!(copied, size);
            let pad = copied.next_multiple_of(BLOCK) - copied;
            self.write_zeros(pad)?;
            self.offset += copied;
            return Ok(Some(padded.finish()));
        }
        Ok(None)
    }

    fn write_zeros(&mut self, n: u64) -> io::Result<()> {
        io::copy(&mut io::repeat(0).take(n), &mut self.inner)?;
        self.offset += n;
        Ok(())
    }

    /// `TarFile.close`: two zero blocks, then zeros up to the next record;
    /// the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.write_zeros(2 * BLOCK)?;
        let pad = self.offset.next_multiple_of(RECORD) - self.offset;
        self.write_zeros(pad)?;
        Ok(self.inner)
    }
}

/// The compression of a tar stream as barman-cloud applies it.
pub(crate) enum TarEncoder<W: Write> {
    /// `w|`.
    Plain(W),
    /// `w|gz`: tarfile's own gzip header (`_init_write_gz`), level 9.
    Gzip(flate2::write::GzEncoder<W>),
    /// `w|bz2`: `bz2.BZ2Compressor()`, level 9.
    Bzip2(bzip2::write::BzEncoder<W>),
    /// One zstd frame, level 3, no content size, no checksum.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// `lz4.frame.LZ4FrameCompressor(auto_flush=True)`: one frame, linked
    /// 64 KiB blocks, no checksum, no content size.
    Lz4(lz4_flex::frame::FrameEncoder<W>),
    /// `snappy.StreamCompressor`: the framing format.
    Snappy(Box<snap::write::FrameEncoder<W>>),
}

impl<W: Write> TarEncoder<W> {
    /// A stream of `compression` into `inner`; `gzip_mtime` is the gzip
    /// header's MTIME (tarfile writes `int(time.time())` when it opens the
    /// stream).
    pub(crate) fn new(
        compression: Option<Compression>,
        inner: W,
        gzip_mtime: u32,
    ) -> Result<Self, &'static str> {
        Ok(match compression {
            None => TarEncoder::Plain(inner),
            // `b"\037\213\010\010" + mtime + b"\002\377"` then the empty
            // file name: FLG = FNAME, XFL = 2 (level 9), OS = 255.
            Some(Compression::Gzip) => TarEncoder::Gzip(
                flate2::GzBuilder::new()
                    .filename("")
                    .mtime(gzip_mtime)
                    .operating_system(255)
                    .write(inner, flate2::Compression::new(9)),
            ),
            Some(Compression::Bzip2) => TarEncoder::Bzip2(bzip2::write::BzEncoder::new(
                inner,
                bzip2::Compression::new(9),
            )),
            Some(Compression::Zstd) => TarEncoder::Zstd(
                zstd::stream::write::Encoder::new(inner, 3)
                    .map_err(|_| "cannot start a zstd stream")?,
            ),
            Some(Compression::Lz4) => {
                use lz4_flex::frame::{BlockMode, BlockSize, FrameInfo};
                TarEncoder::Lz4(lz4_flex::frame::FrameEncoder::with_frame_info(
                    FrameInfo::new()
                        .block_size(BlockSize::Max64KB)
                        .block_mode(BlockMode::Linked)
                        .content_checksum(false),
                    inner,
                ))
            }
            Some(Compression::Snappy) => {
                TarEncoder::Snappy(Box::new(snap::write::FrameEncoder::new(inner)))
            }
            Some(_) => {
                return Err(
                    "barman-cloud-backup compresses tars with gzip, bzip2, zstd, lz4 or snappy only",
                );
            }
        })
    }

    /// Ends the stream (trailer, frame end) and returns the inner writer,
    /// flushed.
    pub(crate) fn finish(self) -> io::Result<W> {
        let mut out = match self {
            TarEncoder::Plain(w) => w,
            TarEncoder::Gzip(e) => e.finish()?,
            TarEncoder::Bzip2(e) => e.finish()?,
            TarEncoder::Zstd(e) => e.finish()?,
            TarEncoder::Lz4(e) => e.finish().map_err(io::Error::other)?,
            TarEncoder::Snappy(mut e) => {
                e.flush()?;
                e.into_inner()
                    .map_err(snap::write::IntoInnerError::into_error)?
            }
        };
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for TarEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            TarEncoder::Plain(w) => w.write(buf),
            TarEncoder::Gzip(e) => e.write(buf),
            TarEncoder::Bzip2(e) => e.write(buf),
            TarEncoder::Zstd(e) => e.write(buf),
            TarEncoder::Lz4(e) => e.write(buf),
            TarEncoder::Snappy(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            TarEncoder::Plain(w) => w.flush(),
            TarEncoder::Gzip(e) => e.flush(),
            TarEncoder::Bzip2(e) => e.flush(),
            TarEncoder::Zstd(e) => e.flush(),
            TarEncoder::Lz4(e) => e.flush(),
            TarEncoder::Snappy(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32 (`zlib.crc32`) of `bytes`.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        crc.sum()
    }

    /// A member as the Python script below builds its `TarInfo`: mode
    /// 0600, uid and gid 26 (`postgres`), mtime 1700000000.25.
    fn member(name: &[u8], kind: Kind) -> Member {
        Member {
            name: name.to_vec(),
            kind,
            mode: 0o100_600,
            uid: 26,
            gid: 26,
            size: 0,
            mtime: Mtime::Float(1_700_000_000.25),
            uname: b"postgres".to_vec(),
            gname: b"postgres".to_vec(),
        }
    }

    /// The PAX records of a header (the data block of its `x` member).
    fn records(head: &[u8]) -> &[u8] {
        assert_eq!(head[156], b'x');
        let size = usize::from_str_radix(
            std::str::from_utf8(&head[124..135])
                .unwrap()
                .trim_end_matches('\0'),
            8,
        )
        .unwrap();
        &head[512..512 + size]
    }

    #[test]
    fn pax_records_count_their_own_length_as_python_does() {
        assert_eq!(
            pax_record("mtime", b"1700000000.1234567"),
            b"28 mtime=1700000000.1234567\n"
        );
        assert_eq!(pax_record("a", b"vvvv"), b"9 a=vvvv\n");
        // 10 cannot be: "10 a=vvvvv\n" is 11 bytes long.
        assert_eq!(pax_record("a", b"vvvvv"), b"11 a=vvvvv\n");
        assert_eq!(pax_record("path", &[b'v'; 90])[..3], *b"99 ");
        assert_eq!(pax_record("path", &[b'v'; 91])[..4], *b"101 ");
    }

    #[test]
    fn mtimes_are_python_floats_rounded_half_to_even_in_the_ustar_field() {
        assert_eq!(
            Mtime::from_stat(1_700_000_000, 123_456_789),
            Mtime::Float(1_700_000_000.123_456_7)
        );
        let mut m = member(b"f", Kind::Regular);
        for (mtime, text, field) in [
            (1_700_000_000.0, "1700000000.0", 1_700_000_000_u64),
            (1_700_000_000.5, "1700000000.5", 1_700_000_000),
            (1_700_000_001.5, "1700000001.5", 1_700_000_002),
            (-1.5, "-1.5", 0),
        ] {
            m.mtime = Mtime::Float(mtime);
            let head = header(&m);
            let record = pax_record("mtime", text.as_bytes());
            assert_eq!(records(&head), record.as_slice());
            let ustar = &head[head.len() - 512..];
            assert_eq!(&ustar[136..148], format!("{field:011o}\0").as_bytes());
        }
        // An int mtime (backup_label's 0) needs no PAX header.
        m.mtime = Mtime::Int(0);
        assert_eq!(header(&m).len(), 512);
    }

    /// Every header below is byte for byte the one CPython 3.11's
    /// `TarInfo.tobuf(PAX_FORMAT, "utf-8", "surrogateescape")` returns for
    /// the same fields (its length and `zlib.crc32`, printed by a script
    /// run against `/usr/lib/python3.11/tarfile.py`).
    #[test]
    fn headers_are_the_bytes_python_tarfile_writes() {
        let mut regular = member(b"./PG_VERSION", Kind::Regular);
        regular.size = 3;
        let root = Member {
            mode: 0o40_700,
            ..member(b".", Kind::Dir)
        };
        let mut long = member(
            &[b"base/16384/".as_slice(), &[b'x'; 95]].concat(),
            Kind::Regular,
        );
        long.size = 10;
        long.mtime = Mtime::Float(1_700_000_000.0);
        let mut utf8 = member("extra/café".as_bytes(), Kind::Regular);
        utf8.size = 1;
        utf8.mtime = Mtime::Float(1_700_000_000.5);
        let mut binary = member(b"extra/\xff\xfe", Kind::Regular);
        binary.size = 1;
        binary.mtime = Mtime::Float(1_700_000_001.5);
        let big_ids = Member {
            uid: 3_000_000,
            gid: 3_000_001,
            uname: Vec::new(),
            gname: Vec::new(),
            mtime: Mtime::from_stat(1_700_000_000, 123_456_789),
            ..member(b"extra/big", Kind::Regular)
        };
        let symlink = Member {
            mode: 0o120_777,
            ..member(
                b"extra/link",
                Kind::Symlink([b"/".as_slice(), &[b't'; 120]].concat()),
            )
        };
        let hardlink = member(b"extra/hard2", Kind::HardLink(b"extra/hard1".to_vec()));
        let label = Member {
            mode: 0o644,
            uid: 0,
            size: 200,
            mtime: Mtime::Int(0),
            uname: Vec::new(),
            gname: Vec::new(),
            ..member(b"backup_label", Kind::Regular)
        };
        let chr = Member {
            mode: 0o20_666,
            ..member(b"extra/null", Kind::Char { major: 1, minor: 3 })
        };
        let fifo = Member {
            mode: 0o10_644,
            ..member(b"extra/fifo", Kind::Fifo)
        };
        let long_names = Member {
            uname: vec![b'u'; 33],
            gname: vec![b'g'; 32],
            ..member(b"x", Kind::Regular)
        };
        let negative = Member {
            mtime: Mtime::Float(-1.5),
            ..member(b"old", Kind::Regular)
        };
        let expected: [(&Member, usize, u32, &[u8]); 13] = [
            (&regular, 1536, 2_881_087_714, b"23 mtime=1700000000.25\n"),
            (&root, 1536, 3_573_619_032, b"23 mtime=1700000000.25\n"),
            (&long, 1536, 2_420_886_780, b"116 path=base/16384/x"),
            (
                &utf8,
                1536,
                3_532_049_894,
                "20 path=extra/café\n".as_bytes(),
            ),
            (
                &binary,
                1536,
                3_006_154_770,
                b"21 hdrcharset=BINARY\n17 path=extra/\xff\xfe\n22 mtime=1700000001.5\n",
            ),
            (
                &big_ids,
                1536,
                1_414_591_053,
                b"15 uid=3000000\n15 gid=3000001\n28 mtime=1700000000.1234567\n",
            ),
            (&symlink, 1536, 3_268_543_247, b"135 linkpath=/ttt"),
            (&hardlink, 1536, 2_481_053_020, b"23 mtime="),
            (&label, 512, 1_170_757_479, b""),
            (&chr, 1536, 3_765_858_230, b"23 mtime="),
            (&fifo, 1536, 1_692_023_867, b"23 mtime="),
            (&long_names, 1536, 300_060_935, b"43 uname=uuu"),
            (&negative, 1536, 1_368_316_699, b"14 mtime=-1.5\n"),
        ];
        for (m, len, crc, start) in expected {
            let head = header(m);
            let name = String::from_utf8_lossy(&m.name);
            if len > 512 {
                assert_eq!(&head[..14], PAX_HEADER_NAME.as_bytes(), "{name}");
                assert!(records(&head).starts_with(start), "{name}");
            }
            let last = &head[head.len() - 512..];
            assert_eq!(&last[257..265], b"ustar\x0000", "{name}");
            assert_eq!(last[155], b' ', "{name}: the checksum ends with NUL, space");
            assert_eq!((head.len(), crc32(&head)), (len, crc), "{name}");
        }
        // A name that is not ASCII is `?` in the ustar field.
        assert!(header(&binary)[1024..].starts_with(b"extra/??\0"));
        assert!(header(&utf8)[1024..].starts_with(b"extra/caf?\0"));
    }

    #[test]
    fn an_archive_ends_with_two_zero_blocks_padded_to_a_10240_byte_record() {
        let mut writer = TarWriter::new(Vec::new());
        let root = Member {
            mode: 0o40_700,
            ..member(b".", Kind::Dir)
        };
        writer.append(&root, None).unwrap();
        let mut version = member(b"./PG_VERSION", Kind::Regular);
        version.size = 3;
        writer.append(&version, Some(&mut &b"15\n"[..])).unwrap();
        let archive = writer.finish().unwrap();
        // `tarfile.open(fileobj=..., mode="w|", format=PAX_FORMAT)`, the same
        // two members added, closed.
        assert_eq!((archive.len(), crc32(&archive)), (10240, 65_262_840));
    }

    #[test]
    fn a_file_that_shrank_is_padded_with_nuls_and_one_that_grew_is_cut() {
        let mut writer = TarWriter::new(Vec::new());
        let mut m = member(b"f", Kind::Regular);
        m.size = 5;
        writer.append(&m, Some(&mut &b"ab"[..])).unwrap();
        writer.append(&m, Some(&mut &b"abcdefgh"[..])).unwrap();
        let archive = writer.finish().unwrap();
        assert_eq!(&archive[1536..1541], b"ab\0\0\0");
        assert!(archive[1541..2048].iter().all(|&b| b == 0));
        assert_eq!(&archive[2048 + 1536..2048 + 1541], b"abcde");
        assert!(archive[2048 + 1541..4096].iter().all(|&b| b == 0));
        assert_eq!(archive.len(), 10240);
    }

    #[test]
    fn a_second_name_of_a_written_inode_becomes_a_hard_link() {
        let mut writer = TarWriter::new(Vec::new());
        let mut first = member(b"a", Kind::Regular);
        first.size = 4;
        writer.link_or_remember(&mut first, (7, 1), 2);
        assert_eq!(first.kind, Kind::Regular);
        let mut second = member(b"b", Kind::Regular);
        second.size = 4;
        writer.link_or_remember(&mut second, (7, 1), 2);
        assert_eq!(
            (second.kind, second.size),
            (Kind::HardLink(b"a".to_vec()), 0)
        );
        let mut single = member(b"c", Kind::Regular);
        writer.link_or_remember(&mut single, (8, 1), 1);
        assert_eq!(single.kind, Kind::Regular);
    }

    #[test]
    fn compression_framing_is_barman_clouds() {
        let finish = |c| {
            let mut e = TarEncoder::new(Some(c), Vec::new(), 0x6553_F100).unwrap();
            e.write_all(&[0; 10240]).unwrap();
            e.finish().unwrap()
        };
        // tarfile's `_init_write_gz`: FLG = FNAME, the time, XFL 2, OS 255,
        // an empty name.
        let gz = finish(Compression::Gzip);
        assert_eq!(
            gz[..11],
            [0x1f, 0x8b, 8, 8, 0x00, 0xf1, 0x53, 0x65, 2, 255, 0]
        );
        // `LZ4FrameCompressor()`: linked 64 KiB blocks, no checksum, no size.
        assert_eq!(
            finish(Compression::Lz4)[..7],
            [4, 0x22, 0x4d, 0x18, 0x40, 0x40, 0xc0]
        );
        // One zstd frame without content size or checksum (frame header
        // descriptor 0).
        let zst = finish(Compression::Zstd);
        assert_eq!(zst[..5], [0x28, 0xb5, 0x2f, 0xfd, 0]);
        assert_eq!(&finish(Compression::Bzip2)[..4], b"BZh9");
        assert_eq!(&finish(Compression::Snappy)[..10], b"\xff\x06\0\0sNaPpY");
        assert!(TarEncoder::new(Some(Compression::Xz), Vec::new(), 0).is_err());
    }
}
