//! Durable file-system helpers shared by the executor, the agent and the manifest.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Mode of files barman-copy creates for its own metadata (manifests).
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// The temporary name used while `path` is being written:
/// `<dir>/.<name>.barman-tmp`. Temporary files are recognised (and removed)
/// by this suffix.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{TEMP_SUFFIX}"))
}

/// Suffix of temporary files.
pub const TEMP_SUFFIX: &str = ".barman-tmp";

/// Opens (creating or truncating) a temporary file with `mode`.
pub fn create_temp(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// fsyncs a directory.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to `path` durably: temp file (mode `mode`), fsync, rename,
/// fsync of the directory.
pub fn write_durable(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut f = create_temp(&tmp, mode)?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        fsync_dir(path.parent().unwrap_or(Path::new(".")))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

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
