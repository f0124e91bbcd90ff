//! The agent protocol: framing, messages and error replies.
//!
//! A session is a byte stream in each direction (an ssh child's stdin and
//! stdout, or a pair of pipes) carrying frames: one kind byte, a `u32`
//! big-endian payload length, then the payload (at most [`MAX_FRAME`]
//! bytes). Control messages ([`Message`]), end-of-reply summaries
//! ([`Summary`]) and error replies ([`ErrorReply`]) are JSON; bulk data is
//! raw bytes, zstd-compressed frame by frame when the session negotiated
//! compression. `docs/agent-protocol.md` describes the exchange.

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::entry::Mtime;
use crate::exclusion::Exclusions;
use crate::{Error, Result};

/// The magic string a client's `hello` carries.
pub const MAGIC: &str = "BARMANRS-AGENT";

/// The protocol version this crate speaks. Both sides must speak the same.
pub const VERSION: u32 = 1;

/// The largest frame payload accepted (16 MiB), before and after decompression.
pub const MAX_FRAME: usize = 16 << 20;

/// The size of the data chunks this crate sends (1 MiB).
pub const CHUNK: usize = 1 << 20;

/// The most page fingerprints a `changed_pages` request may carry
/// (4 Mi pages: a 32 GiB file, 64 MiB of fingerprints).
pub const MAX_PREVIOUS_PAGES: u64 = 1 << 22;

/// The largest fast_rsync signature a `rsync_delta` request may carry.
pub const MAX_SIGNATURE: u64 = 32 << 20;

/// The most entries a client accepts in the listing of one tree (10
/// million files: far beyond any real PostgreSQL cluster, short of
/// exhausting the client's memory).
pub const MAX_LIST_ENTRIES: u64 = 10_000_000;

/// The most bytes of JSON Lines a client accepts in the listing of one
/// tree (2 GiB).
pub const MAX_LIST_BYTES: u64 = 2 << 30;

/// Capabilities the agent of this crate announces.
pub const AGENT_CAPABILITIES: &[&str] = &[
    "list",
    "read",
    "read_range",
    "changed_pages",
    "rsync_delta",
    "write",
    "zstd",
];

/// The zstd level used for compressed data frames (fast: the agent runs on
/// the database host).
const ZSTD_LEVEL: i32 = 1;

/// Data frames shorter than this are never compressed.
const MIN_COMPRESS: usize = 128;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A JSON [`Message`] (`M`).
    Message,
    /// Raw bulk data (`D`).
    Data,
    /// Bulk data compressed as one zstd frame (`Z`); read back as
    /// [`FrameKind::Data`].
    Zdata,
    /// The end of a reply or of a request's data, a JSON [`Summary`] (`E`).
    End,
    /// A JSON [`ErrorReply`] (`X`).
    Error,
}

impl FrameKind {
    /// The kind byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            Self::Message => b'M',
            Self::Data => b'D',
            Self::Zdata => b'Z',
            Self::End => b'E',
            Self::Error => b'X',
        }
    }

    /// The kind for a byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            b'M' => Self::Message,
            b'D' => Self::Data,
            b'Z' => Self::Zdata,
            b'E' => Self::End,
            b'X' => Self::Error,
            _ => return None,
        })
    }
}

/// Which exclusion rules a `list` request applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionSet {
    /// [`Exclusions::postgres_default`].
    Postgres,
    /// [`Exclusions::barman_rsync`].
    BarmanRsync,
    /// [`Exclusions::none`].
    None,
}

impl ExclusionSet {
    /// The named set equal to `rules`, if there is one (custom rules cannot
    /// be sent to an agent).
    pub fn of(rules: &Exclusions) -> Option<Self> {
        [Self::Postgres, Self::BarmanRsync, Self::None]
            .into_iter()
            .find(|set| set.rules() == *rules)
    }

    /// The rules.
    pub fn rules(self) -> Exclusions {
        match self {
            Self::Postgres => Exclusions::postgres_default(),
            Self::BarmanRsync => Exclusions::barman_rsync(),
            Self::None => Exclusions::none(),
        }
    }
}

/// Control messages: the handshake and the requests. Paths are carried as
/// text and validated by the receiver (`RelPath::new`), so that a bad path
/// is an error reply for that request, not a broken session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Message {
    /// Client → agent, first frame of a session.
    Hello {
        /// Must be [`MAGIC`].
        magic: String,
        /// The client's protocol version.
        version: u32,
        /// What the client supports (`zstd`).
        capabilities: Vec<String>,
        /// Tree name → absolute path on the agent's host.
        roots: BTreeMap<String, PathBuf>,
        /// Whether the client asks for zstd-compressed data frames.
        compress: bool,
        /// Refuse a root that is a symbolic link (optional, default
        /// false): the client knows its roots are real directories (a
        /// passive node's copy of a backup directory).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_root_links: bool,
    },
    /// Agent → client, the answer to `hello`.
    Welcome {
        /// The agent's protocol version.
        version: u32,
        /// What the agent supports.
        capabilities: Vec<String>,
        /// Whether data frames may be zstd-compressed in this session.
        compress: bool,
    },
    /// List a tree.
    List {
        /// The tree name (a key of the roots).
        tree: String,
        /// The exclusion rules.
        exclusions: ExclusionSet,
    },
    /// Read a file (or a range of it).
    Read {
        /// The file.
        path: String,
        /// Where to start.
        #[serde(default)]
        offset: u64,
        /// How many bytes at most (to the end when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        length: Option<u64>,
    },
    /// Page delta; followed by data frames holding `pages` 16-byte page
    /// fingerprints, then an `end` frame.
    ChangedPages {
        /// The file.
        path: String,
        /// How many fingerprints follow.
        pages: u64,
    },
    /// rsync delta; followed by data frames holding the fast_rsync
    /// signature (`signature_len` bytes), then an `end` frame.
    RsyncDelta {
        /// The file.
        path: String,
        /// Signature length in bytes.
        signature_len: u64,
    },
    /// Write a file; followed by data frames holding its `size` bytes, then
    /// an `end` frame (or an `error` frame to abort).
    WriteFile {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// Permission bits.
        mode: u32,
        /// Modification time to set.
        mtime: Mtime,
        /// Skip the file's fsync: the client makes the file system durable
        /// at the end with `fsync` + `filesystem` (a restore).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_fsync: bool,
    },
    /// Create a directory (and missing parents).
    Mkdir {
        /// The directory.
        path: String,
        /// Permission bits of the directory.
        mode: u32,
    },
    /// Create (or replace) a symbolic link.
    Symlink {
        /// The link.
        path: String,
        /// Its target, verbatim.
        target: String,
    },
    /// Remove a file, a symbolic link or a directory tree.
    Remove {
        /// What to remove.
        path: String,
    },
    /// fsync a file or directory, or (`filesystem`) `syncfs` the whole
    /// file system holding it.
    Fsync {
        /// What to fsync.
        path: String,
        /// Sync the whole file system (`syncfs`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        filesystem: bool,
    },
}

/// The JSON payload of an `end` frame: what the reply carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Bytes of file data (`read`), the file's size (`changed_pages`) or
    /// delta bytes (`rsync_delta`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Pages sent (`changed_pages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages_sent: Option<u64>,
    /// Entries sent (`list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
}

/// Classes of error replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The file vanished ([`Error::Vanished`]).
    Vanished,
    /// A refused path ([`Error::UnsafePath`]).
    UnsafePath,
    /// A file too large for an rsync delta ([`Error::DeltaTooLarge`]).
    TooLarge,
    /// The peer broke the protocol; the session ends.
    Protocol,
    /// Protocol versions differ; the session ends.
    Version,
    /// Anything else (I/O errors on the agent's host).
    Other,
}

/// The JSON payload of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The class.
    pub kind: ErrorKind,
    /// A human-readable message.
    pub message: String,
    /// The path concerned, relative to the roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For `unsafe_path`: why the path was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `too_large`: the file's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// For `too_large`: the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Reasons `RelPath::new` and the path resolution give, so that an
/// `unsafe_path` reply maps back to the same [`Error::UnsafePath`].
const KNOWN_REASONS: &[&str] = &[
    "empty path",
    "absolute path",
    "NUL byte in path",
    "empty path component",
    "`.` or `..` component",
    "symlink escapes the tree",
    "unknown tree",
    "is a symbolic link",
    "not a regular file",
    "replaced while being opened",
    "a root must be an absolute path",
    "a tree name must be one path component",
    "a root must not be a symbolic link",
];

impl ErrorReply {
    /// The reply describing `error`.
    pub fn from_error(error: &Error) -> Self {
        let mut reply = Self {
            kind: ErrorKind::Other,
            message: error.to_string(),
            path: None,
            reason: None,
            size: None,
            limit: None,
        };
        match error {
            Error::Vanished { path } => {
                reply.kind = ErrorKind::Vanished;
                reply.path = Some(path.clone());
            }
            Error::UnsafePath { path, reason } => {
                reply.kind = ErrorKind::UnsafePath;
                reply.path = Some(path.clone());
                reply.reason = Some((*reason).to_owned());
            }
            Error::DeltaTooLarge { path, size, limit } => {
                reply.kind = ErrorKind::TooLarge;
                reply.path = Some(path.clone());
                reply.size = Some(*size);
                reply.limit = Some(*limit);
            }
            Error::Protocol(_) => reply.kind = ErrorKind::Protocol,
            _ => {}
        }
        reply
    }

    /// The client-side error for this reply.
    pub fn into_error(self) -> Error {
        let path = self.path.unwrap_or_default();
        match self.kind {
            ErrorKind::Vanished => Error::Vanished { path },
            ErrorKind::UnsafePath => Error::UnsafePath {
                path,
                reason: self
                    .reason
                    .and_then(|r| KNOWN_REASONS.iter().find(|k| **k == r).copied())
                    .unwrap_or("refused by the agent"),
            },
            ErrorKind::TooLarge => Error::DeltaTooLarge {
                path,
                size: self.size.unwrap_or_default(),
                limit: self.limit.unwrap_or_default(),
            },
            ErrorKind::Protocol | ErrorKind::Version => Error::Protocol(self.message),
            ErrorKind::Other => Error::Agent(self.message),
        }
    }
}

/// A reader that counts the bytes it yields.
#[derive(Debug)]
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A frame as read: compressed data frames come back decompressed, as
/// [`FrameKind::Data`].
#[derive(Debug)]
pub struct Frame<'a> {
    /// The kind (never [`FrameKind::Zdata`]).
    pub kind: FrameKind,
    /// The payload.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Parses a JSON payload.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.payload).map_err(|e| {
            Error::Protocol(format!(
                "malformed {} frame: {e}",
                char::from(self.kind.byte())
            ))
        })
    }
}

/// Reads frames from a byte stream, counting the bytes read.
pub struct FrameReader<R> {
    inner: BufReader<Counting<R>>,
    buf: Vec<u8>,
    unpacked: Vec<u8>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl<R> std::fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("bytes_read", &self.inner.get_ref().count)
            .field("compressed", &self.decompressor.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Read> FrameReader<R> {
    /// A reader of `inner`; compressed frames are refused until
    /// [`allow_compressed`](Self::allow_compressed).
    pub fn new(inner: R) -> Self {
        Self {
            inner: BufReader::with_capacity(256 * 1024, Counting { inner, count: 0 }),
            buf: Vec::new(),
            unpacked: Vec::new(),
            decompressor: None,
        }
    }

    /// Accepts zstd-compressed data frames from now on.
    pub fn allow_compressed(&mut self) -> Result<()> {
        if self.decompressor.is_none() {
            let d = zstd::bulk::Decompressor::new()
                .map_err(|e| Error::Session(format!("zstd: {e}")))?;
            self.decompressor = Some(d);
        }
        Ok(())
    }

    /// Bytes read from the stream so far (frames read and buffered read-ahead).
    pub fn bytes_read(&self) -> u64 {
        self.inner.get_ref().count
    }

    /// Whether bytes read from the stream wait in the buffer (a request the
    /// peer pipelined): a reply need not be flushed before handling it.
    pub fn has_buffered(&self) -> bool {
        !self.inner.buffer().is_empty()
    }

    /// The next frame; `None` at the end of the stream on a frame boundary.
    /// A stream ending inside a frame is [`Error::Session`]; a bad kind
    /// byte, an oversized length or a bad compressed frame is
    /// [`Error::Protocol`].
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        let mut header = [0u8; 5];
        let got = read_full(&mut self.inner, &mut header).map_err(|e| transport(&e))?;
        if got == 0 {
            return Ok(None);
        }
        let Some(kind) = FrameKind::from_byte(header[0]) else {
            return Err(Error::Protocol(format!(
                "unexpected bytes where a frame should start: {:?} (is the peer a barman agent? \
                 a login banner or shell start-up output on stdout breaks the protocol)",
                String::from_utf8_lossy(&header[..got])
            )));
        };
        if got < header.len() {
            return Err(truncated());
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > MAX_FRAME {
            return Err(Error::Protocol(format!(
                "frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"
            )));
        }
        self.buf.resize(len, 0);
        if read_full(&mut self.inner, &mut self.buf).map_err(|e| transport(&e))? < len {
            return Err(truncated());
        }
        if kind != FrameKind::Zdata {
            return Ok(Some(Frame {
                kind,
                payload: &self.buf,
            }));
        }
        let Some(decompressor) = self.decompressor.as_mut() else {
            return Err(Error::Protocol(
                "compressed frame in a session without compression".into(),
            ));
        };
        let size = zstd::zstd_safe::get_frame_content_size(&self.buf)
            .ok()
            .flatten()
            .and_then(|s| usize::try_from(s).ok())
            .filter(|s| *s <= MAX_FRAME)
            .ok_or_else(|| {
                Error::Protocol("compressed frame without a valid content size".into())
            })?;
        self.unpacked.clear();
        self.unpacked.reserve(size);
        decompressor
            .decompress_to_buffer(&self.buf[..], &mut self.unpacked)
            .map_err(|e| Error::Protocol(format!("bad compressed frame: {e}")))?;
        Ok(Some(Frame {
            kind: FrameKind::Data,
            payload: &self.unpacked,
        }))
    }
}

/// Writes frames to a byte stream.
pub struct FrameWriter<W: Write> {
    inner: BufWriter<W>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    failed: bool,
    written: u64,
}

impl<W: Write> std::fmt::Debug for FrameWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("compressed", &self.compressor.is_some())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<W: Write> FrameWriter<W> {
    /// A writer to `inner`, without compression.
    pub fn new(inner: W) -> Self {
        Self {
            inner: BufWriter::with_capacity(256 * 1024, inner),
            compressor: None,
            failed: false,
            written: 0,
        }
    }

    /// Bytes of frames written so far (headers included, after compression).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Compresses data frames from now on (when it makes them smaller).
    pub fn compress(&mut self) -> Result<()> {
        if self.compressor.is_none() {
            let c = zstd::bulk::Compressor::new(ZSTD_LEVEL)
                .map_err(|e| Error::Session(format!("zstd: {e}")))?;
            self.compressor = Some(c);
        }
        Ok(())
    }

    /// Whether a write to the stream failed (the peer is gone).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut W {
        self.inner.get_mut()
    }

    /// Writes one frame as is.
    pub fn frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l as usize <= MAX_FRAME)
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "refusing to send a frame of {} bytes (limit {MAX_FRAME})",
                    payload.len()
                ))
            })?;
        let mut header = [kind.byte(), 0, 0, 0, 0];
        header[1..].copy_from_slice(&len.to_be_bytes());
        let result = self
            .inner
            .write_all(&header)
            .and_then(|()| self.inner.write_all(payload));
        self.written += (header.len() + payload.len()) as u64;
        result.map_err(|e| self.broken(&e))
    }

    /// Writes a JSON frame.
    pub fn json<T: Serialize>(&mut self, kind: FrameKind, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::Protocol(format!("cannot encode a message: {e}")))?;
        self.frame(kind, &bytes)
    }

    /// Writes a control message.
    pub fn message(&mut self, message: &Message) -> Result<()> {
        self.json(FrameKind::Message, message)
    }

    /// Writes an `end` frame.
    pub fn end(&mut self, summary: &Summary) -> Result<()> {
        self.json(FrameKind::End, summary)
    }

    /// Writes an `error` frame for `error`.
    pub fn error(&mut self, error: &Error) -> Result<()> {
        self.json(FrameKind::Error, &ErrorReply::from_error(error))
    }

    /// Writes data, compressed when the session allows it and it helps,
    /// split into frames of at most [`CHUNK`] bytes.
    pub fn data(&mut self, data: &[u8]) -> Result<()> {
        for chunk in data.chunks(CHUNK) {
            self.data_frame(&[chunk])?;
        }
        Ok(())
    }

    /// Writes one data frame made of `parts` (at most [`MAX_FRAME`] bytes
    /// together), compressed when the session allows it and it helps.
    pub fn data_frame(&mut self, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let joined;
        let payload: &[u8] = if let [one] = parts {
            one
        } else {
            joined = parts.concat();
            &joined
        };
        if let Some(c) = self.compressor.as_mut()
            && len >= MIN_COMPRESS
        {
            let packed = c
                .compress(payload)
                .map_err(|e| Error::Session(format!("zstd: {e}")))?;
            if packed.len() < len {
                return self.frame(FrameKind::Zdata, &packed);
            }
        }
        self.frame(FrameKind::Data, payload)
    }

    /// Flushes buffered frames to the stream.
    pub fn flush(&mut self) -> Result<()> {
        self.inner.flush().map_err(|e| self.broken(&e))
    }

    fn broken(&mut self, e: &io::Error) -> Error {
        self.failed = true;
        Error::Session(format!("writing to the peer: {e}"))
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_full(reader: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn transport(e: &io::Error) -> Error {
    Error::Session(format!("reading from the peer: {e}"))
}

fn truncated() -> Error {
    Error::Session("the peer closed the connection in the middle of a frame".into())
}
