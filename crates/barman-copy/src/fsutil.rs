//! File-system helpers of the copy engine: the mode of its metadata files
//! and write-behind. Temporary files and durable writes are `barman-fs`'s
//! ([`barman_fs::TempFile`]), as everywhere in barman-rs.

use std::fs::File;

/// Mode of files barman-copy creates for its own metadata (manifests).
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Write-behind step: every time this many bytes of a new file reached the
/// page cache, the kernel is asked to start writing them back.
pub const WRITE_BEHIND: u64 = 8 << 20;

/// Write-behind for a file being written sequentially: every
/// [`WRITE_BEHIND`] bytes the kernel is asked (`POSIX_FADV_DONTNEED`, which
/// starts asynchronous writeback of dirty pages) to write back what was
/// written since the last call, so the disk works while the copy goes on
/// and the final fsync or syncfs has little left to wait for.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteBehind {
    written: u64,
    behind: u64,
}

impl WriteBehind {
    /// Records `n` more bytes written to `file`, starting writeback when a
    /// step is complete. Only a hint: a failure changes nothing but timing.
    pub fn wrote(&mut self, file: &File, n: usize) {
        self.written += n as u64;
        if let Some(len) = std::num::NonZeroU64::new(self.written - self.behind)
            && len.get() >= WRITE_BEHIND
        {
            let _ = rustix::fs::fadvise(file, self.behind, Some(len), rustix::fs::Advice::DontNeed);
            self.behind = self.written;
        }
    }

    /// Bytes recorded so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}
