//! Fetching one WAL file: `ssh ... 'barman get-wal SERVER WAL'`, its
//! standard output streamed into a file and decompressed on the way when it
//! starts with the magic bytes of a known algorithm (with
//! `--keep-compression` the server sends the file as archived).

use std::fs::File;
use std::io::{self, BufWriter, Cursor, Read, Write};
use std::process::Stdio;

use barman_wal::{COPY_BUFFER_SIZE, Decoder, MAX_MAGIC_LEN};

use crate::ssh::{Ended, Remote};

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// ssh could not be started or waited for.
    Spawn(io::Error),
    /// ssh ended with a non-zero status (or a signal).
    Ssh(Ended),
    /// The remote command succeeded but the data could not be decoded or
    /// written.
    Local(io::Error),
}

/// Runs `remote_command` over ssh and writes its (decompressed) output into
/// `dest`, which is flushed but not synced.
pub fn fetch(remote: &Remote, remote_command: &str, dest: &File) -> Result<(), FetchError> {
    let mut child = remote
        .ssh(remote_command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(FetchError::Spawn)?;
    let copied = match child.stdout.take() {
        Some(stdout) => copy_decoded(stdout, dest),
        None => Err(io::Error::other("no pipe from ssh")),
    };
    // Our end of the pipe is closed by now: if decoding stopped early, ssh
    // gets EPIPE instead of blocking.
    let status = child.wait().map_err(FetchError::Spawn)?;
    match Ended::of(status) {
        Ended::Success => copied.map(drop).map_err(FetchError::Local),
        ended => Err(FetchError::Ssh(ended)),
    }
}

/// Copies `source` into `dest`, decompressing it when its first bytes are
/// the magic of a known algorithm.
fn copy_decoded<R: Read>(mut source: R, dest: &File) -> io::Result<u64> {
    let mut prefix = vec![0u8; MAX_MAGIC_LEN];
    let mut filled = 0;
    while filled < prefix.len() {
        match source.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    prefix.truncate(filled);
    let compression = barman_wal::detect(&prefix);
    let mut decoder = Decoder::for_detected(compression, Cursor::new(prefix).chain(source))
        .map_err(io::Error::other)?;
    let mut out = BufWriter::with_capacity(COPY_BUFFER_SIZE, dest);
    let n = barman_wal::copy_stream(&mut decoder, &mut out)?;
    out.flush()?;
    Ok(n)
}
