//! [`Captured`]: a hook's stdout or stderr, kept within fixed bounds.

use std::fmt;

/// How much of each output stream of a hook is kept: the first `head` bytes
/// and the last `tail` bytes. What lies between is counted and dropped, so a
/// hook printing gigabytes costs at most `head + 2 × tail` bytes of memory
/// (plus one read buffer) per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    /// Bytes kept from the start of the stream.
    pub head: usize,
    /// Bytes kept from the end of the stream.
    pub tail: usize,
}

impl Default for OutputLimit {
    /// 32 KiB from the start and 32 KiB from the end.
    fn default() -> Self {
        Self {
            head: 32 * 1024,
            tail: 32 * 1024,
        }
    }
}

/// One output stream of a hook run, bounded by an [`OutputLimit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    limit: OutputLimit,
    head: Vec<u8>,
    /// May hold up to twice `limit.tail` bytes; only the last `limit.tail` count.
    tail: Vec<u8>,
    /// Bytes that fell out of `tail` already.
    dropped: u64,
}

impl Captured {
    /// An empty capture keeping at most `limit`.
    pub fn new(limit: OutputLimit) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// A capture of `bytes` (for fake runners in tests).
    pub fn from_bytes(bytes: &[u8], limit: OutputLimit) -> Self {
        let mut captured = Self::new(limit);
        captured.push(bytes);
        captured
    }

    /// Appends `chunk` to the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        let room = self.limit.head.saturating_sub(self.head.len());
        let (to_head, rest) = chunk.split_at(room.min(chunk.len()));
        self.head.extend_from_slice(to_head);
        if rest.is_empty() {
            return;
        }
        self.tail.extend_from_slice(rest);
        if self.tail.len() > self.limit.tail.saturating_mul(2) {
            let excess = self.tail.len() - self.limit.tail;
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// The bytes kept from the end of the stream.
    fn tail(&self) -> &[u8] {
        &self.tail[self.tail.len().saturating_sub(self.limit.tail)..]
    }

    /// Bytes seen but not kept.
    pub fn dropped(&self) -> u64 {
        self.dropped + (self.tail.len() - self.tail().len()) as u64
    }

    /// Bytes the stream carried in all.
    pub fn total(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.dropped
    }

    /// Whether the stream carried nothing.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The bytes kept: the head, then the tail.
    pub fn kept(&self) -> (&[u8], &[u8]) {
        (&self.head, self.tail())
    }
}

impl fmt::Display for Captured {
    /// The kept text (invalid UTF-8 replaced), with a marker where bytes were dropped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.head))?;
        let dropped = self.dropped();
        if dropped > 0 {
            write!(f, "\n[... {dropped} bytes of output not kept ...]\n")?;
        }
        f.write_str(&String::from_utf8_lossy(self.tail()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: OutputLimit = OutputLimit { head: 4, tail: 3 };

    #[test]
    fn short_output_is_kept_whole() {
        let c = Captured::from_bytes(b"abcdef", SMALL);
        assert_eq!(c.to_string(), "abcdef");
        assert_eq!((c.total(), c.dropped()), (6, 0));
    }

    #[test]
    fn long_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut c = Captured::new(SMALL);
        for chunk in [&b"0123"[..], b"456", b"789abc", b"", b"d", b"efgh"] {
            c.push(chunk);
        }
        // 0123 | 456789abcdefgh -> tail "fgh", dropped 456789abcde (11)
        assert_eq!(c.kept(), (&b"0123"[..], &b"fgh"[..]));
        assert_eq!((c.total(), c.dropped()), (18, 11));
        assert_eq!(
            c.to_string(),
            "0123\n[... 11 bytes of output not kept ...]\nfgh"
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let mut c = Captured::new(SMALL);
        for _ in 0..10_000 {
            c.push(b"xy");
            assert!(c.head.len() <= 4 && c.tail.len() <= 6 + 2);
        }
        assert_eq!(c.total(), 20_000);
        assert_eq!(c.dropped(), 20_000 - 7);
    }

    #[test]
    fn zero_limits_keep_nothing() {
        let c = Captured::from_bytes(b"hello", OutputLimit { head: 0, tail: 0 });
        assert_eq!(c.kept(), (&b""[..], &b""[..]));
        assert_eq!(c.dropped(), 5);
        assert!(!c.is_empty());
        assert!(Captured::new(SMALL).is_empty());
    }
}
