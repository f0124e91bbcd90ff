//! A bounded in-process pipe between a thread that writes (a compressor, a
//! download) and one that reads (an upload, a decompressor, a tar reader):
//! at most a few chunks in flight, so memory stays bounded whatever the
//! size of what goes through.

use std::io::{self, Read, Write};
use std::sync::mpsc;

/// Chunks in flight at most.
const CAPACITY: usize = 4;

/// The writing end: each `write` sends one chunk; dropping it ends the
/// stream.
#[derive(Debug)]
pub(crate) struct PipeWriter {
    chunks: mpsc::SyncSender<io::Result<Vec<u8>>>,
}

/// The reading end.
#[derive(Debug)]
pub(crate) struct PipeReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

/// A new pipe.
pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let (sender, receiver) = mpsc::sync_channel(CAPACITY);
    (
        PipeWriter { chunks: sender },
        PipeReader {
            chunks: receiver,
            current: Vec::new(),
            at: 0,
        },
    )
}

impl PipeWriter {
    /// Another writing end of the same pipe (to report a failure after the
    /// first end moved into a consumer).
    pub(crate) fn clone_sender(&self) -> Self {
        Self {
            chunks: self.chunks.clone(),
        }
    }

    /// Makes the reader's next read fail with `error`.
    pub(crate) fn fail(&self, error: io::Error) {
        let _ = self.chunks.send(Err(error));
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.chunks
            .send(Ok(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reading end is gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_then_the_end() {
        let (mut w, mut r) = pipe();
        let t = std::thread::spawn(move || {
            for i in 0..100u8 {
                w.write_all(&[i; 1000]).unwrap();
            }
        });
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        t.join().unwrap();
        assert_eq!(all.len(), 100_000);
        assert!(
            all.chunks(1000)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| usize::from(b) == i))
        );
    }

    #[test]
    fn a_failure_reaches_the_reader() {
        let (w, mut r) = pipe();
        w.fail(io::Error::other("boom"));
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap_err().to_string(), "boom");
    }
}
