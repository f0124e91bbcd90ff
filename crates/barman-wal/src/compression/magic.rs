//! Magic-byte detection of compressed WAL files (archived names carry no
//! extension; Barman records the algorithm it sniffs in xlog.db).

use super::Compression;

const GZIP: &[u8] = &[0x1f, 0x8b, 0x08];
const BZIP2: &[u8] = b"BZh";
const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const LZ4: &[u8] = &[0x04, 0x22, 0x4d, 0x18];
const SNAPPY: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// The number of leading bytes [`detect`] needs to recognise every built-in
/// algorithm (read at least this many bytes, or the whole file if shorter).
pub const MAX_MAGIC_LEN: usize = SNAPPY.len();

const TABLE: [(Compression, &[u8]); 6] = [
    (Compression::Gzip, GZIP),
    (Compression::Bzip2, BZIP2),
    (Compression::Xz, XZ),
    (Compression::Zstd, ZSTD),
    (Compression::Lz4, LZ4),
    (Compression::Snappy, SNAPPY),
];

pub(super) fn magic_of(compression: Compression) -> &'static [u8] {
    TABLE
        .iter()
        .find(|(c, _)| *c == compression)
        .map_or(&[], |(_, m)| m)
}

/// The built-in algorithm whose magic bytes start `prefix`, or `None` for an
/// uncompressed (or unknown) file. Pass at least [`MAX_MAGIC_LEN`] bytes.
///
/// Magic bytes (Barman's): gzip `1f8b08`, bzip2 `425a68` (`BZh`), xz
/// `fd377a585a00`, zstd `28b52ffd`, lz4 frame `04224d18`, snappy framed
/// `ff060000734e61507059`. A WAL segment starts with a page header whose magic
/// is `0xd1xx` little-endian, so it never matches.
///
/// ```
/// use barman_wal::{detect, Compression};
/// assert_eq!(detect(&[0x1f, 0x8b, 0x08, 0x00]), Some(Compression::Gzip));
/// assert_eq!(detect(&[0x10, 0xd1, 0x01, 0x00]), None);
/// ```
pub fn detect(prefix: &[u8]) -> Option<Compression> {
    TABLE
        .iter()
        .find(|(_, magic)| prefix.starts_with(magic))
        .map(|(c, _)| *c)
}

/// Like [`detect`], but first checks a configured custom magic
/// (`custom_compression_magic`), as Barman does when a custom filter is set:
/// a match returns [`Compression::Custom`]. An empty `custom_magic` never
/// matches.
///
/// ```
/// use barman_wal::{detect_custom, Compression};
/// let magic = [0xca, 0xfe];
/// assert_eq!(detect_custom(&[0xca, 0xfe, 0], Some(&magic)), Some(Compression::Custom));
/// assert_eq!(detect_custom(b"BZh91AY", Some(&magic)), Some(Compression::Bzip2));
/// ```
pub fn detect_custom(prefix: &[u8], custom_magic: Option<&[u8]>) -> Option<Compression> {
    match custom_magic {
        Some(magic) if !magic.is_empty() && prefix.starts_with(magic) => Some(Compression::Custom),
        _ => detect(prefix),
    }
}
