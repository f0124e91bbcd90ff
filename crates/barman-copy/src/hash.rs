//! Whole-file and per-page fingerprints.

use std::io::Read;

use serde::{Deserialize, Serialize};

/// PostgreSQL's block size: relation files are sequences of 8 KiB pages.
pub const PAGE_SIZE: usize = 8192;

/// A blake3 hash of a whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileHash(pub [u8; 32]);

impl FileHash {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }
}

impl Serialize for FileHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for FileHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// A 128-bit page fingerprint: the first 16 bytes of the page's blake3 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageHash(pub [u8; 16]);

impl PageHash {
    /// The fingerprint of one page (the last page of a file may be short).
    pub fn of(page: &[u8]) -> Self {
        let full = blake3::hash(page);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full.as_bytes()[..16]);
        Self(out)
    }
}

/// Page fingerprints of a file, concatenated; serialised as one hex string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageHashes(pub Vec<PageHash>);

impl PageHashes {
    /// Encodes as hex, 32 digits per page.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(self.0.len() * 32);
        for p in &self.0 {
            s.push_str(&hex::encode(p.0));
        }
        s
    }

    /// Decodes [`to_hex`](Self::to_hex) output.
    pub fn from_hex(text: &str) -> Option<Self> {
        if !text.len().is_multiple_of(32) {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() / 32);
        for chunk in text.as_bytes().chunks(32) {
            let mut page = [0u8; 16];
            hex::decode_to_slice(chunk, &mut page).ok()?;
            out.push(PageHash(page));
        }
        Some(Self(out))
    }

    /// Raw bytes, 16 per page (for the wire).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|p| p.0).collect()
    }

    /// From raw bytes, 16 per page.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(16) {
            return None;
        }
        Some(Self(
            bytes
                .chunks(16)
                .map(|c| {
                    let mut p = [0u8; 16];
                    p.copy_from_slice(c);
                    PageHash(p)
                })
                .collect(),
        ))
    }
}

impl Serialize for PageHashes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PageHashes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text).ok_or_else(|| serde::de::Error::custom("bad page hash list"))
    }
}

/// Page fingerprints of a stream, fed in any chunk sizes.
#[derive(Debug, Default)]
struct PageHasher {
    pages: Vec<PageHash>,
    buf: Vec<u8>,
}

impl PageHasher {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= PAGE_SIZE {
                self.pages.push(PageHash::of(&data[..PAGE_SIZE]));
                data = &data[PAGE_SIZE..];
                continue;
            }
            let take = (PAGE_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == PAGE_SIZE {
                self.pages.push(PageHash::of(&self.buf));
                self.buf.clear();
            }
        }
    }

    fn finish(mut self) -> PageHashes {
        if !self.buf.is_empty() {
            self.pages.push(PageHash::of(&self.buf));
        }
        PageHashes(self.pages)
    }
}

/// Where the page fingerprints are computed.
#[derive(Debug)]
enum Pages {
    /// Not asked for.
    Off,
    /// On the caller's thread (small files).
    Inline(PageHasher),
    /// On a helper thread (files past [`BACKGROUND_PAGES_AFTER`]), so that
    /// the whole-file hash and the page fingerprints of one large file use
    /// two cores; at most [`BACKGROUND_QUEUE`] chunks wait in between.
    Background {
        queue: std::sync::mpsc::SyncSender<Feed>,
        worker: std::thread::JoinHandle<PageHashes>,
    },
}

/// What the page-fingerprint thread receives.
#[derive(Debug)]
enum Feed {
    /// The fingerprints computed inline so far (sent first).
    State(PageHasher),
    /// The next bytes.
    Chunk(Vec<u8>),
}

/// Bytes after which a hasher moves its page fingerprints to a helper thread.
pub const BACKGROUND_PAGES_AFTER: u64 = 4 << 20;
/// Chunks queued for the page-fingerprint thread (bounds its memory).
const BACKGROUND_QUEUE: usize = 8;

/// Hashes a stream as it passes: the whole-file blake3 and, when asked, one
/// [`PageHash`] per 8 KiB page. Feed it with [`update`](Self::update) in any
/// chunk sizes. Past [`BACKGROUND_PAGES_AFTER`] bytes the page fingerprints
/// are computed on a helper thread; the result is the same.
#[derive(Debug)]
pub struct Hasher {
    file: blake3::Hasher,
    pages: Pages,
    len: u64,
}

impl Hasher {
    /// A hasher; `pages` asks for per-page fingerprints too.
    pub fn new(pages: bool) -> Self {
        Self {
            file: blake3::Hasher::new(),
            pages: if pages {
                Pages::Inline(PageHasher::default())
            } else {
                Pages::Off
            },
            len: 0,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        if self.len > BACKGROUND_PAGES_AFTER && matches!(self.pages, Pages::Inline(_)) {
            self.move_pages_to_thread();
        }
        match &mut self.pages {
            Pages::Off => {}
            Pages::Inline(p) => p.update(data),
            Pages::Background { queue, .. } => {
                // The worker only stops when the queue closes.
                let _ = queue.send(Feed::Chunk(data.to_vec()));
            }
        }
        self.file.update(data);
    }

    /// Starts the page-fingerprint thread and hands it the state so far;
    /// stays inline if no thread can be started.
    fn move_pages_to_thread(&mut self) {
        let (queue, feed) = std::sync::mpsc::sync_channel::<Feed>(BACKGROUND_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("barman-page-hash".into())
            .spawn(move || {
                let mut hasher = PageHasher::default();
                for item in feed {
                    match item {
                        Feed::State(state) => hasher = state,
                        Feed::Chunk(chunk) => hasher.update(&chunk),
                    }
                }
                hasher.finish()
            });
        let worker = match spawned {
            Ok(worker) => worker,
            Err(e) => {
                tracing::debug!("page fingerprints stay on this thread: {e}");
                return;
            }
        };
        if let Pages::Inline(state) = std::mem::replace(&mut self.pages, Pages::Off) {
            let _ = queue.send(Feed::State(state));
        }
        self.pages = Pages::Background { queue, worker };
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file hash and the page fingerprints (a short last page included).
    pub fn finish(self) -> (FileHash, Option<PageHashes>) {
        let file = FileHash(*self.file.finalize().as_bytes());
        let pages = match self.pages {
            Pages::Off => None,
            Pages::Inline(p) => Some(p.finish()),
            Pages::Background { queue, worker } => {
                drop(queue);
                match worker.join() {
                    Ok(pages) => Some(pages),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        };
        (file, pages)
    }
}

/// Hashes everything `reader` yields.
pub fn hash_reader(
    reader: &mut dyn Read,
    pages: bool,
) -> std::io::Result<(u64, FileHash, Option<PageHashes>)> {
    let mut hasher = Hasher::new(pages);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    let len = hasher.len();
    let (file, pages) = hasher.finish();
    Ok((len, file, pages))
}

/// Whether a file at this path (inside its tree) is page-structured: a
/// relation segment under `base/<db>/`, `global/` or a tablespace's
/// `PG_*/<db>/`, whose size is a whole number of pages. Such files get
/// per-page fingerprints in the manifest and page-level deltas.
pub fn is_page_structured(path_in_tree: &str, size: u64) -> bool {
    if !size.is_multiple_of(PAGE_SIZE as u64) || size == 0 {
        return false;
    }
    let parts: Vec<&str> = path_in_tree.split('/').collect();
    let name = parts.last().copied().unwrap_or("");
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let rest = &name[digits..];
    let rest = ["_fsm", "_vm", "_init"]
        .into_iter()
        .find_map(|f| rest.strip_prefix(f))
        .unwrap_or(rest);
    let ok_suffix = rest.is_empty()
        || rest
            .strip_prefix('.')
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    if !ok_suffix {
        return false;
    }
    match parts.as_slice() {
        ["base", db, _] => db.bytes().all(|b| b.is_ascii_digit()),
        ["global", _] => true,
        [version, db, _] => version.starts_with("PG_") && db.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_independent_of_chunking() {
        let data: Vec<u8> = (0..PAGE_SIZE * 3 + 100)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let mut a = Hasher::new(true);
        a.update(&data);
        let mut b = Hasher::new(true);
        for chunk in data.chunks(1000) {
            b.update(chunk);
        }
        let (fa, pa) = a.finish();
        let (fb, pb) = b.finish();
        assert_eq!(fa, fb);
        assert_eq!(pa, pb);
        let pa = pa.unwrap();
        assert_eq!(pa.0.len(), 4);
        assert_eq!(pa.0[1], PageHash::of(&data[PAGE_SIZE..2 * PAGE_SIZE]));
        assert_eq!(PageHashes::from_hex(&pa.to_hex()), Some(pa.clone()));
        assert_eq!(PageHashes::from_bytes(&pa.to_bytes()), Some(pa));
        assert_eq!(fa.0, *blake3::hash(&data).as_bytes());
    }

    #[test]
    fn large_streams_hash_the_same_with_the_page_thread() {
        let len = usize::try_from(BACKGROUND_PAGES_AFTER).unwrap() * 2 + PAGE_SIZE * 3 + 100;
        let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 253).unwrap()).collect();
        let mut h = Hasher::new(true);
        for chunk in data.chunks(777_777) {
            h.update(chunk);
        }
        assert!(matches!(h.pages, Pages::Background { .. }));
        let (file, pages) = h.finish();
        assert_eq!(file.0, *blake3::hash(&data).as_bytes());
        let expected: Vec<PageHash> = data.chunks(PAGE_SIZE).map(PageHash::of).collect();
        assert_eq!(pages.unwrap().0, expected);
    }

    #[test]
    fn page_structured_names() {
        assert!(is_page_structured("base/5/16384", 8192));
        assert!(is_page_structured("base/5/16384_fsm", 24576));
        assert!(is_page_structured("base/5/16384.1", 8192));
        assert!(is_page_structured("global/1262", 8192));
        assert!(is_page_structured("PG_15_202209061/5/16390_vm", 8192));
        assert!(!is_page_structured("base/5/16384", 100));
        assert!(!is_page_structured("base/5/PG_VERSION", 8192));
        assert!(!is_page_structured("global/pg_control", 8192));
        assert!(!is_page_structured("pg_xact/0000", 8192));
        assert!(!is_page_structured("base/5/16384_xx", 8192));
    }
}
