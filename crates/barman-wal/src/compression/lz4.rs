//! LZ4 frame reading on top of `lz4_flex`, adding what `lz4 -dc` does and
//! `lz4_flex::frame::FrameDecoder` does not: read concatenated frames, and
//! treat a stream that ends inside a frame (for instance cut exactly at a
//! block boundary) as truncated instead of as a clean end.
//!
//! A [`Tracker`] sits between the source and the decoder and follows the
//! frame structure (header, block sizes, end mark, checksum) of the bytes
//! passing through, so we know whether the decoder stopped between frames.

use std::io::{self, Read};

use lz4_flex::frame::FrameDecoder;

const MAGIC: u32 = 0x184D_2204;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the 4-byte magic of the next frame (`got` bytes so far).
    Magic { got: usize },
    /// Reading the FLG byte.
    Flags,
    /// Collecting the 4-byte block header.
    Block { got: usize },
    /// Skipping `left` bytes, then going to `then`.
    Skip { left: u64, then: Next },
    /// Something we do not follow (legacy frames): trust the decoder.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Block,
    Magic,
}

/// Passes bytes through while following the LZ4 frame structure.
struct Tracker<R> {
    inner: R,
    state: State,
    word: [u8; 4],
    block_checksum: bool,
    content_checksum: bool,
    peeked: Option<u8>,
}

impl<R: Read> Tracker<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            state: State::Magic { got: 0 },
            word: [0; 4],
            block_checksum: false,
            content_checksum: false,
            peeked: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                State::Opaque => return,
                State::Magic { got } | State::Block { got } => {
                    self.word[got] = b;
                    i += 1;
                    let in_magic = matches!(self.state, State::Magic { .. });
                    if got < 3 {
                        if in_magic {
                            State::Magic { got: got + 1 }
                        } else {
                            State::Block { got: got + 1 }
                        }
                    } else if in_magic {
                        if u32::from_le_bytes(self.word) == MAGIC {
                            State::Flags
                        } else {
                            State::Opaque
                        }
                    } else {
                        self.after_block_header()
                    }
                }
                State::Flags => {
                    i += 1;
                    self.block_checksum = b & 0x10 != 0;
                    self.content_checksum = b & 0x04 != 0;
                    let content_size = if b & 0x08 != 0 { 8 } else { 0 };
                    let dict_id = if b & 0x01 != 0 { 4 } else { 0 };
                    // BD byte, optional content size and dictionary id, HC byte.
                    State::Skip {
                        left: 2 + content_size + dict_id,
                        then: Next::Block,
                    }
                }
                State::Skip { left, then } => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += take;
                    let left = left - take as u64;
                    match (left, then) {
                        (0, Next::Block) => State::Block { got: 0 },
                        (0, Next::Magic) => State::Magic { got: 0 },
                        _ => State::Skip { left, then },
                    }
                }
            };
        }
    }

    fn after_block_header(&mut self) -> State {
        let size = u64::from(u32::from_le_bytes(self.word) & 0x7fff_ffff);
        if size == 0 {
            let checksum = if self.content_checksum { 4 } else { 0 };
            if checksum == 0 {
                State::Magic { got: 0 }
            } else {
                State::Skip {
                    left: 4,
                    then: Next::Magic,
                }
            }
        } else {
            let checksum = if self.block_checksum { 4 } else { 0 };
            State::Skip {
                left: size + checksum,
                then: Next::Block,
            }
        }
    }

    /// Whether the bytes so far end exactly between frames.
    fn between_frames(&self) -> bool {
        matches!(self.state, State::Magic { got: 0 } | State::Opaque)
    }

    /// Whether the source has more bytes (keeps one byte aside).
    fn has_more(&mut self) -> io::Result<bool> {
        if self.peeked.is_some() {
            return Ok(true);
        }
        let mut one = [0u8; 1];
        loop {
            match self.inner.read(&mut one) {
                Ok(0) => return Ok(false),
                Ok(_) => {
                    self.peeked = Some(one[0]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> Read for Tracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = if let Some(b) = self.peeked.take() {
            buf[0] = b;
            1 + match self.inner.read(&mut buf[1..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    self.feed(&buf[..1]);
                    return Err(e);
                }
            }
        } else {
            self.inner.read(buf)?
        };
        self.feed(&buf[..n]);
        Ok(n)
    }
}

/// Multi-frame, truncation-checking LZ4 frame decoder.
pub(super) struct Lz4Reader<R: Read> {
    decoder: FrameDecoder<Tracker<R>>,
    done: bool,
}

impl<R: Read> Lz4Reader<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            decoder: FrameDecoder::new(Tracker::new(inner)),
            done: false,
        }
    }
}

impl<R: Read> Read for Lz4Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let tracker = self.decoder.get_mut();
            if !tracker.between_frames() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated lz4 stream: it ends inside a frame",
                ));
            }
            if !tracker.has_more()? {
                self.done = true;
                return Ok(0);
            }
        }
    }
}
