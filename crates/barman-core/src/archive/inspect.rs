//! Checking a WAL file before it enters the archive, reading through any
//! compression: segment size and long page header (magic, system identifier,
//! page address, segment size), history file syntax, backup label text.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use barman_wal::{
    Codec, Compression, Decoder, HeaderExpectations, LongPageHeader, MAX_MAGIC_LEN,
    TimelineHistory, WalFileName, WalSegmentSize,
};

use crate::{Error, Result};

/// Largest history or backup-label file accepted (both are small text files).
const MAX_TEXT_FILE: u64 = 1 << 20;

/// What the archive knows about the cluster a WAL file must come from;
/// `None` fields are not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalExpectations {
    /// The cluster's system identifier (from `identity.json` or the server).
    pub system_identifier: Option<u64>,
    /// The cluster's WAL segment size.
    pub segment_size: Option<WalSegmentSize>,
}

/// A WAL file that passed [`inspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// How the file is stored (`None`: plain).
    pub compression: Option<Compression>,
    /// The decompressed size.
    pub plain_size: u64,
    /// The segment size from the header (segments and partials only).
    pub segment_size: Option<WalSegmentSize>,
    /// The system identifier from the header (segments and partials only).
    pub system_identifier: Option<u64>,
}

/// Why [`inspect`] did not accept a file.
#[derive(Debug)]
pub enum InspectError {
    /// The file's content is wrong (truncated, foreign, corrupt): it must
    /// not be archived. The text says why.
    Invalid(String),
    /// The file could not be read: nothing can be decided.
    Io(Error),
}

/// Detects how `path` is stored, from its first bytes (custom magic first
/// when `codec` is a custom filter).
pub fn detect_compression(path: &Path, codec: Option<&Codec>) -> Result<Option<Compression>> {
    let prefix = read_prefix(path)?;
    Ok(detect_in(&prefix, codec))
}

/// [`detect_compression`] for a file about to be served from the archive
/// (get-wal, recovery's WAL staging): an OpenPGP message (what Barman 3.14+
/// stores with `encryption = gpg`, under the WAL's own name) is
/// [`Error::EncryptedWal`], never served as if it were a WAL.
pub fn detect_servable(path: &Path, codec: Option<&Codec>) -> Result<Option<Compression>> {
    let prefix = read_prefix(path)?;
    let detected = detect_in(&prefix, codec);
    // A custom filter's output may start with any byte: trust it.
    let custom = codec.is_some_and(|c| c.compression() == Compression::Custom);
    if detected.is_none() && !custom && looks_encrypted(&prefix) {
        return Err(Error::EncryptedWal {
            path: path.to_path_buf(),
        });
    }
    Ok(detected)
}

fn detect_in(prefix: &[u8], codec: Option<&Codec>) -> Option<Compression> {
    match codec {
        Some(c) => c.detect(prefix),
        None => barman_wal::detect(prefix),
    }
}

/// The first bytes of `path` (up to the longest magic; fewer for a short file).
fn read_prefix(path: &Path) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let mut prefix = vec![0u8; MAX_MAGIC_LEN.max(ARMOR.len())];
    let mut n = 0;
    while n < prefix.len() {
        let read = file
            .read(&mut prefix[n..])
            .map_err(|e| Error::io("cannot read", path, e))?;
        if read == 0 {
            break;
        }
        n += read;
    }
    prefix.truncate(n);
    Ok(prefix)
}

/// The start of an ASCII-armored OpenPGP message.
const ARMOR: &[u8] = b"-----BEGIN PGP MESSAGE";

/// Whether `prefix` starts an OpenPGP message as `gpg --encrypt` writes it:
/// a public-key (tag 1) or symmetric-key (tag 3) encrypted session key
/// packet, in the old or the new packet format, or ASCII armor. No WAL
/// segment (its first byte is the low byte of the page magic, `0x06` to
/// `0x18` for PostgreSQL 13 to 18), history file (text), or compressed file
/// (gzip, bzip2, xz, zstd, lz4, snappy magics) starts like that.
pub fn looks_encrypted(prefix: &[u8]) -> bool {
    // Old format: 10tttt ll with tag 1 or 3 and length type 0 to 2; new
    // format: 11tttttt with tag 1 or 3.
    matches!(
        prefix.first(),
        Some(0x84..=0x86 | 0x8c..=0x8e | 0xc1 | 0xc3)
    ) || prefix.starts_with(ARMOR)
}

/// Opens `path` for reading its plain (decompressed) content, stored as
/// `compression`.
pub fn open_plain(
    path: &Path,
    compression: Option<Compression>,
    codec: Option<&Codec>,
) -> Result<Decoder<File>> {
    let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let decoder = match (compression, codec) {
        (Some(Compression::Custom), Some(codec)) => codec.reader_for(compression, file)?,
        _ => Decoder::for_detected(compression, file)?,
    };
    Ok(decoder)
}

/// The archived history file of timeline `tli` (`wals/<tli>.history`, read
/// through any compression), `None` when it is not in the archive.
pub fn read_history(
    layout: &barman_catalog::ServerLayout,
    tli: barman_wal::TimelineId,
) -> Result<Option<TimelineHistory>> {
    let path = layout.wal_path(&WalFileName::History(tli));
    if !path.is_file() {
        return Ok(None);
    }
    let compression = detect_compression(&path, None).unwrap_or(None);
    let mut text = String::new();
    open_plain(&path, compression, None)?
        .read_to_string(&mut text)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    Ok(Some(TimelineHistory::parse(&text)?))
}

fn classify_io(path: &Path, e: io::Error) -> InspectError {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => {
            InspectError::Invalid(format!("cannot decode: {e}"))
        }
        _ => InspectError::Io(Error::io("cannot read", path, e)),
    }
}

/// Checks that `path` holds a valid `name`: for segments and partials, the
/// full segment size and a long page header naming this segment from the
/// expected cluster; for history files, a parsable history; for backup
/// labels, a label text.
pub fn inspect(
    path: &Path,
    name: &WalFileName,
    expected: &WalExpectations,
    codec: Option<&Codec>,
) -> std::result::Result<Inspection, InspectError> {
    let compression = detect_compression(path, codec).map_err(InspectError::Io)?;
    let mut reader = open_plain(path, compression, codec).map_err(|e| match e {
        Error::Io(_) => InspectError::Io(e),
        other => InspectError::Invalid(other.to_string()),
    })?;
    let mut inspection = inspect_plain(&mut reader, path, name, expected)?;
    inspection.compression = compression;
    Ok(inspection)
}

/// [`inspect`] on a plain (decompressed) stream; `path` names it in errors.
/// The stream is read to its end, or (an oversized file) one byte past the
/// largest size it may have.
pub fn inspect_plain<R: Read>(
    reader: &mut R,
    path: &Path,
    name: &WalFileName,
    expected: &WalExpectations,
) -> std::result::Result<Inspection, InspectError> {
    let mut inspection = Inspection {
        compression: None,
        plain_size: 0,
        segment_size: None,
        system_identifier: None,
    };
    match name {
        WalFileName::Segment(segment) | WalFileName::Partial(segment) => {
            let mut head = [0u8; LongPageHeader::SIZE];
            let got = read_up_to(reader, &mut head).map_err(|e| classify_io(path, e))?;
            if got < head.len() {
                return Err(InspectError::Invalid(format!(
                    "truncated: {got} bytes, shorter than a WAL page header"
                )));
            }
            let header =
                LongPageHeader::parse(&head).map_err(|e| InspectError::Invalid(e.to_string()))?;
            header
                .validate(&HeaderExpectations {
                    system_identifier: expected.system_identifier,
                    segment_size: expected.segment_size,
                    name: Some(*segment),
                })
                .map_err(|e| match e {
                    barman_wal::Error::InvalidHeader {
                        field: "xlp_sysid",
                        expected,
                        found,
                    } => InspectError::Invalid(format!(
                        "it comes from another cluster: system identifier {found}, this server's is {expected}"
                    )),
                    other => InspectError::Invalid(other.to_string()),
                })?;
            let want = header.segment_size.bytes();
            // One byte past the segment is enough to tell it is oversized: a
            // compressed file of a few kilobytes can inflate to gigabytes.
            let limit = want.saturating_sub(head.len() as u64) + 1;
            let rest = io::copy(&mut reader.take(limit), &mut io::sink())
                .map_err(|e| classify_io(path, e))?;
            let total = rest + head.len() as u64;
            if total != want {
                return Err(InspectError::Invalid(format!(
                    "truncated or oversized: {total} bytes, a segment has {want}"
                )));
            }
            inspection.plain_size = total;
            inspection.segment_size = Some(header.segment_size);
            inspection.system_identifier = Some(header.system_identifier);
        }
        WalFileName::History(_) | WalFileName::BackupLabel { .. } => {
            let mut text = Vec::new();
            reader
                .take(MAX_TEXT_FILE + 1)
                .read_to_end(&mut text)
                .map_err(|e| classify_io(path, e))?;
            if text.len() as u64 > MAX_TEXT_FILE {
                return Err(InspectError::Invalid(format!(
                    "larger than {MAX_TEXT_FILE} bytes"
                )));
            }
            let text = String::from_utf8(text)
                .map_err(|_| InspectError::Invalid("not UTF-8 text".into()))?;
            if name.is_history() {
                TimelineHistory::parse(&text).map_err(|e| {
                    InspectError::Invalid(format!("not a timeline history file: {e}"))
                })?;
            } else if !text.contains("START WAL LOCATION") {
                return Err(InspectError::Invalid(
                    "not a backup history file (no START WAL LOCATION)".into(),
                ));
            }
            inspection.plain_size = text.len() as u64;
        }
    }
    Ok(inspection)
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether two stored WAL files hold the same plain content, whatever their
/// compression. Streams both; never holds more than two buffers.
pub fn same_content(a: &Path, b: &Path, codec: Option<&Codec>) -> Result<bool> {
    let ca = detect_compression(a, codec)?;
    let cb = detect_compression(b, codec)?;
    let mut ra = open_plain(a, ca, codec)?;
    let mut rb = open_plain(b, cb, codec)?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        // A corrupt compressed stream simply differs.
        let Ok(na) = read_up_to(&mut ra, &mut ba) else {
            return Ok(false);
        };
        let Ok(nb) = read_up_to(&mut rb, &mut bb) else {
            return Ok(false);
        };
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid long page header of segment 1 (1 MiB segments), then
    /// `plain` bytes in all, zeros after the header; counts what was read.
    struct Endless {
        plain: u64,
        read: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut header = [0u8; LongPageHeader::SIZE];
            header[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
            header[2..4].copy_from_slice(&2u16.to_le_bytes());
            header[4..8].copy_from_slice(&1u32.to_le_bytes());
            header[8..16].copy_from_slice(&(1u64 << 20).to_le_bytes());
            header[24..32].copy_from_slice(&7u64.to_le_bytes());
            header[32..36].copy_from_slice(&(1u32 << 20).to_le_bytes());
            header[36..40].copy_from_slice(&8192u32.to_le_bytes());
            let left = self.plain - self.read;
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            for (i, b) in buf[..n].iter_mut().enumerate() {
                let at = usize::try_from(self.read).unwrap_or(usize::MAX) + i;
                *b = header.get(at).copied().unwrap_or(0);
            }
            self.read += n as u64;
            Ok(n)
        }
    }

    /// A compressed WAL member of a few kilobytes can inflate to gigabytes
    /// (a decompression bomb): the check stops one byte past the segment
    /// size instead of decompressing it all.
    #[test]
    fn an_oversized_segment_is_not_read_to_its_end() {
        let name: WalFileName = "000000010000000000000001".parse().unwrap();
        let expected = WalExpectations::default();
        let mut exact = Endless {
            plain: 1 << 20,
            read: 0,
        };
        let inspection = inspect_plain(&mut exact, Path::new("x"), &name, &expected).unwrap();
        assert_eq!(inspection.plain_size, 1 << 20);
        let mut bomb = Endless {
            plain: 1 << 30,
            read: 0,
        };
        let Err(InspectError::Invalid(reason)) =
            inspect_plain(&mut bomb, Path::new("x"), &name, &expected)
        else {
            panic!("an oversized segment is accepted");
        };
        assert!(reason.contains("oversized"), "{reason}");
        assert!(
            bomb.read <= (1 << 20) + 64 * 1024,
            "read {} bytes",
            bomb.read
        );
    }

    #[test]
    fn openpgp_messages_are_told_from_wal_and_compressed_files() {
        // gpg --encrypt (public key: tag 1), gpg --symmetric (tag 3), in the
        // old and new packet formats, and ASCII armor.
        for prefix in [
            &[0x84, 0x5e][..],
            &[0x85, 0x01, 0x0c],
            &[0x8c, 0x0d],
            &[0xc1, 0xc0],
            &[0xc3, 0x2e],
            b"-----BEGIN PGP MESSAGE-----\n",
        ] {
            assert!(looks_encrypted(prefix), "{prefix:02x?}");
        }
        // WAL page magics of PostgreSQL 13 to 18, history text, and every
        // compression magic.
        for prefix in [
            &[0x06, 0xd1][..],
            &[0x0d, 0xd1],
            &[0x10, 0xd1],
            &[0x13, 0xd1],
            &[0x16, 0xd1],
            &[0x18, 0xd1],
            b"1\t0/3000000\tno recovery target specified\n",
            &[0x1f, 0x8b],
            b"BZh9",
            &[0xfd, b'7', b'z', b'X', b'Z', 0],
            &[0x28, 0xb5, 0x2f, 0xfd],
            &[0x04, 0x22, 0x4d, 0x18],
            &[0xff, 0x06, 0, 0, b's', b'N', b'a', b'P', b'p', b'Y'],
            b"",
        ] {
            assert!(!looks_encrypted(prefix), "{prefix:02x?}");
        }
    }
}
