//! `get-wal`: serving archived WAL files (to `restore_command`,
//! `barman-wal-restore`, recovery).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use barman_wal::{Codec, Compression, LongPageHeader, WalFileName, WalSegmentSize};

use super::inspect::{detect_compression, open_plain};
use crate::{Error, Result, ServerLayout};

/// An archived file found by [`locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Where it is.
    pub path: PathBuf,
    /// How it is stored.
    pub compression: Option<Compression>,
}

/// Finds `name` in `wals/`; with `partial`, also `<name>.partial` in
/// `wals/` and then in `streaming/` (the segment receive-wal is writing).
pub fn locate(
    layout: &ServerLayout,
    name: &WalFileName,
    partial: bool,
    codec: Option<&Codec>,
) -> Result<Option<Located>> {
    let mut candidates = vec![layout.wal_path(name)];
    if partial && let WalFileName::Segment(seg) = name {
        let p = WalFileName::Partial(*seg);
        candidates.push(layout.wal_path(&p));
        candidates.push(layout.streaming_directory().join(p.to_string()));
    }
    for path in candidates {
        if path.is_file() {
            let compression = detect_compression(&path, codec)?;
            return Ok(Some(Located { path, compression }));
        }
    }
    Ok(None)
}

/// Writes a located file to `out`: decompressed, or as stored with
/// `keep_compression`. Returns the bytes written.
pub fn write_wal(
    located: &Located,
    keep_compression: bool,
    codec: Option<&Codec>,
    out: &mut dyn Write,
) -> Result<u64> {
    let path = &located.path;
    let mut reader: Box<dyn Read> = if keep_compression {
        Box::new(std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?)
    } else {
        Box::new(open_plain(path, located.compression, codec)?)
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("cannot read", path, e)),
        };
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("cannot write the WAL of", path, e))?;
        total += n as u64;
    }
    out.flush()
        .map_err(|e| Error::io("cannot write the WAL of", path, e))?;
    Ok(total)
}

/// The segment size of an archived segment, from its page header.
pub fn segment_size_of(located: &Located, codec: Option<&Codec>) -> Result<WalSegmentSize> {
    let mut r = open_plain(&located.path, located.compression, codec)?;
    let header = LongPageHeader::read_from(&mut r)?;
    Ok(header.segment_size)
}

/// Up to `count` consecutive archived segments starting at `start` (which
/// must itself exist), for `get-wal --peek`. A history file or a missing
/// start gives what exists of it (0 or 1 names).
pub fn peek(
    layout: &ServerLayout,
    start: &WalFileName,
    count: usize,
    codec: Option<&Codec>,
) -> Result<Vec<String>> {
    let Some(first) = locate(layout, start, false, codec)? else {
        return Ok(Vec::new());
    };
    let mut names = vec![start.to_string()];
    let WalFileName::Segment(mut seg) = *start else {
        return Ok(names);
    };
    let size = segment_size_of(&first, codec)?;
    while names.len() < count {
        seg = seg.next(size);
        let name = WalFileName::Segment(seg);
        if !layout.wal_path(&name).is_file() {
            break;
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Writes a located file into `dir/<name>` (temp file, fsync, rename).
pub fn write_wal_to_dir(
    located: &Located,
    name: &str,
    dir: &Path,
    keep_compression: bool,
    codec: Option<&Codec>,
) -> Result<PathBuf> {
    let dest = dir.join(name);
    crate::fs::write_atomic_with(&dest, crate::fs::FILE_MODE, |w| {
        write_wal(located, keep_compression, codec, w)
            .map(drop)
            .map_err(io::Error::other)
    })?;
    Ok(dest)
}
