//! Pushing WAL files: `ssh ... 'barman put-wal SERVER'` fed with a
//! [`put_wal_stream`].

use std::fs::{File, Metadata};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use barman_wal::put_wal_stream::{self, HashKind, Member, WriteError};
use barman_wal::{COPY_BUFFER_SIZE, Compression, CompressionLevel};

use super::ArchiveError;
use crate::ssh::{Ended, Remote};

/// What to send and how.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The Barman server name (`SERVER_NAME`).
    pub server: String,
    /// Compress the WAL with this algorithm before sending it.
    pub compression: Option<Compression>,
    /// The compression level.
    pub level: CompressionLevel,
    /// The checksum file to send.
    pub hash: HashKind,
}

/// The size and modification time of a WAL file when it was pushed: what
/// the `--parallel` markers record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: i64,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// Sends `wal` to the Barman server; returns the stamp of the file sent.
pub fn push(remote: &Remote, options: &PushOptions, wal: &Path) -> Result<Stamp, ArchiveError> {
    push_many(remote, options, &[wal]).map(|stamps| stamps[0])
}

/// A WAL file opened and checked for sending; after [`prepare`],
/// `content` is what is sent (the compressed copy, if asked) and `size` its
/// length.
struct Wal {
    name: String,
    path: std::path::PathBuf,
    meta: Metadata,
    content: File,
    size: u64,
}

/// Opens `wal` and checks it is a regular file (before any ssh is
/// started: a bad WAL_PATH never reaches the server).
fn open_checked(wal: &Path) -> Result<Wal, ArchiveError> {
    let name = wal
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ArchiveError::InvalidName(wal.to_path_buf()))?;
    let cannot_read = |source| ArchiveError::Read {
        path: wal.to_path_buf(),
        source,
    };
    let file = File::open(wal).map_err(cannot_read)?;
    let meta = file.metadata().map_err(cannot_read)?;
    if meta.is_dir() {
        return Err(ArchiveError::Directory(wal.to_path_buf()));
    }
    if !meta.is_file() {
        return Err(ArchiveError::NotRegular(wal.to_path_buf()));
    }
    Ok(Wal {
        name: name.to_owned(),
        path: wal.to_path_buf(),
        size: meta.len(),
        meta,
        content: file,
    })
}

/// Compresses an opened WAL file if asked (into an anonymous temporary
/// file, so the tar header can carry the exact size).
fn prepare(options: &PushOptions, mut wal: Wal) -> Result<Wal, ArchiveError> {
    let Some(compression) = options.compression else {
        return Ok(wal);
    };
    let compressed =
        compress_to_temp(wal.content, compression, options.level).map_err(|source| {
            ArchiveError::Compress {
                compression,
                path: wal.path.clone(),
                source,
            }
        })?;
    wal.size = compressed
        .metadata()
        .map_err(|source| ArchiveError::Read {
            path: wal.path.clone(),
            source,
        })?
        .len();
    wal.content = compressed;
    Ok(wal)
}

/// Sends every file of `wals` to the Barman server in one ssh session (one
/// tar stream, one `barman put-wal`, which stores all of them or fails);
/// returns their stamps, in order.
pub fn push_many(
    remote: &Remote,
    options: &PushOptions,
    wals: &[&Path],
) -> Result<Vec<Stamp>, ArchiveError> {
    let opened: Vec<Wal> = wals
        .iter()
        .map(|wal| open_checked(wal))
        .collect::<Result<_, _>>()?;
    // ssh before compressing: its handshake overlaps the compression.
    let line = remote.barman_command(&["put-wal", &options.server]);
    let mut child = remote
        .ssh(&line)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(ArchiveError::Spawn)?;
    let prepared: Vec<Wal> = match opened.into_iter().map(|o| prepare(options, o)).collect() {
        Ok(prepared) => prepared,
        Err(error) => {
            // Nothing was sent: an empty stream stores nothing.
            drop(child.stdin.take());
            let _ = child.wait();
            return Err(error);
        }
    };
    let stamps: Vec<Stamp> = prepared.iter().map(|p| Stamp::of(&p.meta)).collect();
    let names: Vec<&str> = prepared.iter().map(|p| p.name.as_str()).collect();
    let names = names.join(", ");
    let streamed = match child.stdin.take() {
        Some(stdin) => put_wal_stream::write_stream(
            BufWriter::with_capacity(COPY_BUFFER_SIZE, stdin),
            prepared
                .iter()
                .map(|p| Member {
                    name: &p.name,
                    size: p.size,
                    mtime: u64::try_from(p.meta.mtime()).unwrap_or(0),
                    uid: u64::from(p.meta.uid()),
                    gid: u64::from(p.meta.gid()),
                    content: BufReader::with_capacity(COPY_BUFFER_SIZE, &p.content),
                })
                .collect(),
            options.hash,
        ),
        None => Err(WriteError::Write(io::Error::other("no pipe to ssh"))),
    };
    // The pipe is closed here: ssh sees the end of its input.
    let status = child.wait().map_err(ArchiveError::Wait)?;
    let streamed = match streamed {
        Err(WriteError::Read(source)) => {
            return Err(ArchiveError::ReadWhileSending { names, source });
        }
        Err(WriteError::Write(source)) => Err(source),
        Ok(()) => Ok(()),
    };
    if let Some(error) = ArchiveError::from_ssh(Ended::of(status)) {
        return Err(error);
    }
    match streamed {
        Ok(()) => Ok(stamps),
        Err(source) => Err(ArchiveError::Send { names, source }),
    }
}

/// Compresses `file` into an anonymous temporary file, rewound.
fn compress_to_temp(
    file: File,
    compression: Compression,
    level: CompressionLevel,
) -> io::Result<File> {
    let temp = tempfile::tempfile()?;
    let encoder = compression
        .writer(BufWriter::with_capacity(COPY_BUFFER_SIZE, temp), level)
        .map_err(io::Error::other)?;
    let mut source = BufReader::with_capacity(COPY_BUFFER_SIZE, file);
    let (_, out) = barman_wal::compress(&mut source as &mut dyn Read, encoder)?;
    let mut temp = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    temp.flush()?;
    temp.seek(SeekFrom::Start(0))?;
    Ok(temp)
}
