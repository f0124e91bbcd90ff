//! Writing streamed WAL into `streaming/`: `<segment>.partial` while a
//! segment is being received, renamed `<segment>` only once it is whole
//! (fsynced first, then the directory), as `pg_receivewal` does.
//!
//! A `.partial` file is created at the full segment size (zeros beyond what
//! was received), so that a `.partial` is always a well-formed segment for
//! `get-wal --partial`. A partial segment is never renamed to a complete
//! one: the rename happens only when the last byte of the segment has been
//! written.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use barman_wal::{Lsn, SegmentName, TimelineId, WalFileName, WalSegmentSize};

use crate::{Error, Result};

/// The segment being written.
#[derive(Debug)]
struct Open {
    segment: SegmentName,
    file: File,
    path: PathBuf,
    /// Bytes of the segment received (from its start).
    offset: u64,
    /// Whether bytes were written since the last flush.
    dirty: bool,
}

/// Streams WAL bytes into segment files of one directory.
#[derive(Debug)]
pub struct SegmentWriter {
    dir: PathBuf,
    size: WalSegmentSize,
    timeline: TimelineId,
    open: Option<Open>,
    /// Everything before this position is written.
    written: Lsn,
    /// Everything before this position is on disk.
    flushed: Lsn,
    /// Segments completed (renamed) so far.
    completed: Vec<String>,
}

impl SegmentWriter {
    /// A writer into `dir` for `timeline`, starting at `start` (rounded
    /// down to its segment's start: a segment is always written from its
    /// first byte).
    pub fn new(dir: &Path, size: WalSegmentSize, timeline: TimelineId, start: Lsn) -> Self {
        let segment = SegmentName::from_lsn(timeline, start, size);
        let start = segment.start_lsn(size);
        Self {
            dir: dir.to_path_buf(),
            size,
            timeline,
            open: None,
            written: start,
            flushed: start,
            completed: Vec::new(),
        }
    }

    /// Everything before this position has been written.
    pub fn written(&self) -> Lsn {
        self.written
    }

    /// Everything before this position is durable.
    pub fn flushed(&self) -> Lsn {
        self.flushed
    }

    /// The timeline being written.
    pub fn timeline(&self) -> TimelineId {
        self.timeline
    }

    /// Names of the segments completed since the last call.
    pub fn take_completed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.completed)
    }

    /// Writes `data`, which starts at `start`. Bytes before the current
    /// position are skipped (a resend); a start beyond it is a gap, refused.
    pub fn write(&mut self, start: Lsn, data: &[u8]) -> Result<()> {
        let mut data = data;
        let mut start = start.0;
        if start > self.written.0 {
            return Err(Error::WalRejected {
                name: self.segment_at(self.written).to_string(),
                reason: format!(
                    "the server sent WAL from {} but {} was expected (a gap)",
                    Lsn(start),
                    self.written
                ),
            });
        }
        let skip = usize::try_from(self.written.0 - start).unwrap_or(usize::MAX);
        if skip >= data.len() {
            return Ok(());
        }
        data = &data[skip..];
        start = self.written.0;
        while !data.is_empty() {
            let seg_bytes = self.size.bytes();
            let offset = start % seg_bytes;
            let room = usize::try_from(seg_bytes - offset).unwrap_or(usize::MAX);
            let n = room.min(data.len());
            let open = self.open_at(Lsn(start))?;
            open.file
                .write_all(&data[..n])
                .map_err(|e| Error::io("cannot write", &open.path, e))?;
            open.offset = offset + n as u64;
            open.dirty = true;
            let full = open.offset == seg_bytes;
            start += n as u64;
            self.written = Lsn(start);
            data = &data[n..];
            if full {
                self.complete()?;
            }
        }
        Ok(())
    }

    /// fsyncs the segment being written; returns the durable position.
    pub fn flush(&mut self) -> Result<Lsn> {
        if let Some(open) = &mut self.open
            && open.dirty
        {
            open.file
                .sync_data()
                .map_err(|e| Error::io("cannot fsync", &open.path, e))?;
            open.dirty = false;
        }
        self.flushed = self.written;
        Ok(self.flushed)
    }

    /// Ends the timeline: the current segment stays `.partial` (flushed),
    /// and writing goes on on `next` from the start of the segment holding
    /// `next_start` (the new timeline's copy of that segment begins with the
    /// old timeline's bytes); returns that position, where streaming must
    /// restart.
    pub fn switch_timeline(&mut self, next: TimelineId, next_start: Lsn) -> Result<Lsn> {
        self.flush()?;
        self.open = None;
        self.timeline = next;
        let start = self.segment_at(next_start).start_lsn(self.size);
        self.written = start;
        self.flushed = start;
        Ok(start)
    }

    fn segment_at(&self, lsn: Lsn) -> SegmentName {
        SegmentName::from_lsn(self.timeline, lsn, self.size)
    }

    /// The open segment for position `at`, created (full size) or reopened.
    fn open_at(&mut self, at: Lsn) -> Result<&mut Open> {
        let segment = self.segment_at(at);
        if self.open.as_ref().is_none_or(|o| o.segment != segment) {
            let name = WalFileName::Partial(segment).to_string();
            let path = self.dir.join(&name);
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::io("cannot open", &path, e))?;
            let len = file
                .metadata()
                .map_err(|e| Error::io("cannot stat", &path, e))?
                .len();
            if len != self.size.bytes() {
                // New, or a leftover of another size: a full-size segment.
                file.set_len(0)
                    .and_then(|()| file.set_len(self.size.bytes()))
                    .map_err(|e| Error::io("cannot size", &path, e))?;
                barman_catalog::fs::fsync_dir(&self.dir)?;
            }
            let offset = at.0 % self.size.bytes();
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io("cannot seek", &path, e))?;
            self.open = Some(Open {
                segment,
                file,
                path,
                offset,
                dirty: false,
            });
        }
        self.open
            .as_mut()
            .ok_or_else(|| Error::Timeout("no open segment".into()))
    }

    /// The open segment is whole: fsync, rename to its final name, fsync
    /// the directory.
    fn complete(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        open.file
            .sync_all()
            .map_err(|e| Error::io("cannot fsync", &open.path, e))?;
        drop(open.file);
        let name = WalFileName::Segment(open.segment).to_string();
        let dest = self.dir.join(&name);
        barman_fs::rename_durable(&open.path, &dest)?;
        self.flushed = self.written;
        self.completed.push(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const SEG: u64 = 1 << 20;

    fn writer(dir: &Path, start: u64) -> SegmentWriter {
        SegmentWriter::new(
            dir,
            WalSegmentSize::new(SEG).unwrap(),
            TimelineId::ONE,
            Lsn(start),
        )
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn partial_then_complete_at_the_boundary() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = writer(tmp.path(), 3 * SEG + 100);
        assert_eq!(w.written(), Lsn(3 * SEG));
        let first = vec![1u8; usize::try_from(SEG - 10).unwrap()];
        w.write(Lsn(3 * SEG), &first).unwrap();
        assert_eq!(names(tmp.path()), ["000000010000000000000003.partial"]);
        let len = fs::metadata(tmp.path().join("000000010000000000000003.partial"))
            .unwrap()
            .len();
        assert_eq!(len, SEG, "a partial segment is full size");
        assert_eq!(w.flush().unwrap(), Lsn(4 * SEG - 10));
        // Crossing the boundary completes segment 3 and opens 4.
        w.write(Lsn(4 * SEG - 10), &[2u8; 30]).unwrap();
        assert_eq!(
            names(tmp.path()),
            [
                "000000010000000000000003",
                "000000010000000000000004.partial"
            ]
        );
        assert_eq!(w.take_completed(), ["000000010000000000000003"]);
        let done = fs::read(tmp.path().join("000000010000000000000003")).unwrap();
        assert_eq!(done.len() as u64, SEG);
        assert!(done[..done.len() - 10].iter().all(|b| *b == 1));
        assert!(done[done.len() - 10..].iter().all(|b| *b == 2));
        let partial = fs::read(tmp.path().join("000000010000000000000004.partial")).unwrap();
        assert!(partial[..20].iter().all(|b| *b == 2));
        assert!(partial[20..].iter().all(|b| *b == 0));
    }

    #[test]
    fn resends_are_skipped_and_gaps_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = writer(tmp.path(), SEG);
        w.write(Lsn(SEG), &[5u8; 100]).unwrap();
        w.write(Lsn(SEG + 50), &[6u8; 100]).unwrap();
        assert_eq!(w.written(), Lsn(SEG + 150));
        let bytes = fs::read(tmp.path().join("000000010000000000000001.partial")).unwrap();
        assert!(bytes[..100].iter().all(|b| *b == 5));
        assert!(bytes[100..150].iter().all(|b| *b == 6));
        let err = w.write(Lsn(SEG + 200), &[7u8; 10]).unwrap_err();
        assert!(err.to_string().contains("gap"), "{err}");
    }

    #[test]
    fn a_restart_rewrites_the_partial_from_its_start() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = writer(tmp.path(), SEG);
        w.write(Lsn(SEG), &[5u8; 1000]).unwrap();
        w.flush().unwrap();
        drop(w);
        // A restart from the partial segment's start, as receive-wal does.
        let mut w = writer(tmp.path(), SEG + 1000);
        assert_eq!(w.written(), Lsn(SEG));
        w.write(Lsn(SEG), &[8u8; 500]).unwrap();
        let bytes = fs::read(tmp.path().join("000000010000000000000001.partial")).unwrap();
        assert_eq!(bytes.len() as u64, SEG);
        assert!(bytes[..500].iter().all(|b| *b == 8));
    }

    #[test]
    fn a_timeline_switch_leaves_the_old_partial() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = writer(tmp.path(), SEG);
        w.write(Lsn(SEG), &[5u8; 1000]).unwrap();
        let two = TimelineId::new(2).unwrap();
        assert_eq!(w.switch_timeline(two, Lsn(SEG + 1000)).unwrap(), Lsn(SEG));
        w.write(Lsn(SEG), &[9u8; 1010]).unwrap();
        assert_eq!(
            names(tmp.path()),
            [
                "000000010000000000000001.partial",
                "000000020000000000000001.partial"
            ]
        );
        let bytes = fs::read(tmp.path().join("000000020000000000000001.partial")).unwrap();
        assert!(bytes[1000..1010].iter().all(|b| *b == 9));
    }
}
