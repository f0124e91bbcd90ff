//! `get-wal`: serving archived WAL files (to `restore_command`,
//! `barman-wal-restore`, recovery).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use barman_wal::{Codec, Compression, LongPageHeader, WalFileName, WalSegmentSize};

use super::inspect::{detect_servable, open_plain};
use crate::{Error, Result, ServerLayout};

/// An archived file found by [`locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Where it is.
    pub path: PathBuf,
    /// How it is stored.
    pub compression: Option<Compression>,
}

/// Where `name` may be, in the order Barman's `get-wal` looks
/// (BARMAN-BEHAVIOUR.md §1.4): the archive (`wals/<hash>/<name>`), then
/// `incoming/<name>` and `streaming/<name>` (a file not archived yet);
/// with `partial`, then `streaming/<name>.partial` (the segment receive-wal
/// is writing), `streaming/<name>` again (receive-wal may have completed it
/// meanwhile), `wals/<hash>/<name>.partial` and `incoming/<name>.partial`
/// (the last segment of a timeline, archived before a promotion); and the
/// archive once more, for a file `archive-wal` moved there while the others
/// were looked at. A history or backup-label name has no `.partial` form.
pub fn candidates(layout: &ServerLayout, name: &WalFileName, partial: bool) -> Vec<PathBuf> {
    let file = name.to_string();
    let archived = layout.wal_path(name);
    let incoming = layout.incoming_directory().join(&file);
    let streaming = layout.streaming_directory().join(&file);
    let mut paths = vec![archived.clone(), incoming, streaming.clone()];
    if partial && let WalFileName::Segment(seg) = name {
        let p = WalFileName::Partial(*seg);
        let p_name = p.to_string();
        paths.push(layout.streaming_directory().join(&p_name));
        paths.push(streaming);
        paths.push(layout.wal_path(&p));
        paths.push(layout.incoming_directory().join(&p_name));
    }
    paths.push(archived);
    paths
}

/// Finds `name` among its [`candidates`]: the first regular file, skipping
/// an empty `.partial` (the marker `receive-wal --reset` leaves, not a
/// segment PostgreSQL could replay) and a file that vanished while it was
/// looked at (moved into the archive, found at the next candidate).
pub fn locate(
    layout: &ServerLayout,
    name: &WalFileName,
    partial: bool,
    codec: Option<&Codec>,
) -> Result<Option<Located>> {
    for path in candidates(layout, name, partial) {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || (meta.len() == 0 && is_partial_path(&path)) {
            continue;
        }
        match detect_servable(&path, codec) {
            Ok(compression) => return Ok(Some(Located { path, compression })),
            Err(e) if vanished(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whether `e` says a file was not there (it was moved or removed between
/// being found and being opened).
pub fn vanished(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == io::ErrorKind::NotFound)
}

fn is_partial_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "partial")
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

/// Up to `count` consecutive segments starting at `start` (which must
/// itself exist) that get-wal can serve (never `.partial` files), for
/// `get-wal --peek`. A history file or a missing
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
        if !candidates(layout, &name, false).iter().any(|p| p.is_file()) {
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
    // Opened first, so that a file gone meanwhile is reported as such
    // (see [`vanished`]) before anything is written.
    std::fs::File::open(&located.path).map_err(|e| Error::io("cannot open", &located.path, e))?;
    barman_catalog::fs::write_atomic_with(&dest, barman_catalog::fs::FILE_MODE, |w| {
        write_wal(located, keep_compression, codec, w)
            .map(drop)
            .map_err(io::Error::other)
    })?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: &str = "000000010000000000000005";

    fn layout() -> (tempfile::TempDir, ServerLayout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = ServerLayout::new(dir.path().join("pg"));
        layout.ensure().unwrap();
        (dir, layout)
    }

    fn put(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn found(layout: &ServerLayout, partial: bool) -> Option<PathBuf> {
        locate(layout, &SEG.parse().unwrap(), partial, None)
            .unwrap()
            .map(|l| l.path)
    }

    #[test]
    fn candidates_follow_barmans_order() {
        let (_d, layout) = layout();
        let name: WalFileName = SEG.parse().unwrap();
        let partial = format!("{SEG}.partial");
        let archived = layout.wal_path(&name);
        let streaming = layout.streaming_directory().join(SEG);
        let incoming = layout.incoming_directory().join(SEG);
        assert_eq!(
            candidates(&layout, &name, false),
            [
                archived.clone(),
                incoming.clone(),
                streaming.clone(),
                archived.clone()
            ]
        );
        assert_eq!(
            candidates(&layout, &name, true),
            [
                archived.clone(),
                incoming,
                streaming.clone(),
                layout.streaming_directory().join(&partial),
                streaming,
                layout.wal_path(&partial.parse().unwrap()),
                layout.incoming_directory().join(&partial),
                archived,
            ]
        );
        // A history file has no .partial form.
        let history: WalFileName = "00000002.history".parse().unwrap();
        assert_eq!(candidates(&layout, &history, true).len(), 4);
    }

    #[test]
    fn locate_prefers_complete_files_then_the_streaming_partial() {
        let (_d, layout) = layout();
        let name: WalFileName = SEG.parse().unwrap();
        let p: WalFileName = format!("{SEG}.partial").parse().unwrap();
        assert_eq!(found(&layout, true), None);

        // An archived partial (a timeline's last segment) is served with -P only.
        put(&layout.wal_path(&p), b"archived partial");
        assert_eq!(found(&layout, false), None);
        assert_eq!(found(&layout, true), Some(layout.wal_path(&p)));

        // The segment receive-wal is writing comes before it; an empty
        // marker left by --reset does not count.
        let streaming_partial = layout.streaming_directory().join(p.to_string());
        put(&streaming_partial, b"");
        assert_eq!(found(&layout, true), Some(layout.wal_path(&p)));
        put(&streaming_partial, b"streamed so far");
        assert_eq!(found(&layout, true), Some(streaming_partial));

        // A complete segment not archived yet wins over any partial, with
        // or without -P; the archived one wins over all.
        let streaming = layout.streaming_directory().join(SEG);
        put(&streaming, b"complete in streaming");
        assert_eq!(found(&layout, false), Some(streaming.clone()));
        assert_eq!(found(&layout, true), Some(streaming));
        let incoming = layout.incoming_directory().join(SEG);
        put(&incoming, b"complete in incoming");
        assert_eq!(found(&layout, true), Some(incoming));
        put(&layout.wal_path(&name), b"archived");
        assert_eq!(found(&layout, true), Some(layout.wal_path(&name)));
    }

    #[test]
    fn a_vanished_file_is_told_apart() {
        let (_d, layout) = layout();
        let gone = Located {
            path: layout.streaming_directory().join(SEG),
            compression: None,
        };
        let out = tempfile::tempdir().unwrap();
        let err = write_wal_to_dir(&gone, SEG, out.path(), false, None).unwrap_err();
        assert!(vanished(&err), "{err}");
        assert!(!out.path().join(SEG).exists());
        let err = write_wal(&gone, false, None, &mut Vec::new()).unwrap_err();
        assert!(vanished(&err), "{err}");
        assert!(!vanished(&Error::Timeout("x".into())));
    }
}
