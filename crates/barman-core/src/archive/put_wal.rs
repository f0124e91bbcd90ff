//! `put-wal`: receiving WAL files into `incoming/`.
//!
//! The stream is what Barman's `barman-wal-archive` sends (and ours): a tar
//! with the WAL file(s) and a `SHA256SUMS` (or `MD5SUMS`) member with lines
//! `<hex digest> *<name>`, read (names, limits, checksum lines) by
//! [`barman_wal::put_wal_stream`], the module the sender writes it with.
//! Every file is written to a temporary file,
//! fsync'ed, its checksum verified, its content checked ([`inspect`]), and
//! only then linked into `incoming/` (and the directory fsync'ed): when
//! put-wal exits 0 the WAL is durable, and on any error nothing is left.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use barman_wal::put_wal_stream::{self as stream, HashKind, ReadError};
use barman_wal::{Codec, WalFileName};

use super::inspect::{InspectError, WalExpectations, inspect, same_content};
use barman_fs::{NoReplace, TempFile};

use super::store::{ErrorKind, create_temp, move_to_errors};
use crate::clock::Clock;
use crate::{Error, Result, ServerLayout};
use barman_catalog::fs::create_dir_secure;

/// Options of a put-wal.
#[derive(Debug, Clone, Default)]
pub struct PutWalOptions {
    /// What the files must match.
    pub expectations: WalExpectations,
    /// The server's WAL compression (for custom magic detection and
    /// duplicate comparison).
    pub codec: Option<Codec>,
}

/// What happened to one received file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Written into `incoming/`.
    Stored,
    /// `incoming/` already held the same content.
    AlreadyPresent,
    /// `incoming/` held a different file of that name, moved to `errors/`
    /// (path given); the new one was stored.
    ReplacedDuplicate(PathBuf),
}

/// One received file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedWal {
    /// The WAL file name.
    pub name: String,
    /// Bytes stored (as received: possibly compressed).
    pub size: u64,
    /// What happened.
    pub outcome: Received,
}

/// A received file waiting in a durable temporary file (removed when
/// dropped unless installed).
struct Pending {
    name: WalFileName,
    raw_name: String,
    tmp: TempFile,
    size: u64,
    sha256: String,
}

/// Receives a put-wal tar stream into `incoming/`.
pub fn put_wal_stream<R: Read>(
    reader: R,
    layout: &ServerLayout,
    options: &PutWalOptions,
    clock: &dyn Clock,
) -> Result<Vec<ReceivedWal>> {
    let incoming = layout.incoming_directory();
    create_dir_secure(incoming)?;
    let mut temps: Vec<TempFile> = Vec::new();
    let received = stream::read_stream(reader, |member, content| {
        let tmp = create_temp(&incoming.join(member.name))?;
        let mut out = io::BufWriter::with_capacity(256 * 1024, tmp);
        if let Err(e) = io::copy(content, &mut out) {
            return Err(Error::io("cannot write", out.get_ref().path(), e));
        }
        let tmp = out.into_inner().map_err(|e| {
            let (e, inner) = e.into_parts();
            Error::io("cannot write", inner.get_ref().path(), e)
        })?;
        tmp.sync()?;
        temps.push(tmp);
        Ok(())
    })
    .map_err(|e| match e {
        ReadError::Format(e) => Error::PutWalStream(e.to_string()),
        ReadError::Sink(e) => e,
    })?;
    let checksums = &received.checksums;
    let algo = checksums.kind();
    let pending: Vec<Pending> = received
        .members
        .into_iter()
        .zip(temps)
        .map(|(m, tmp)| Pending {
            name: m.wal,
            raw_name: m.name,
            tmp,
            size: m.size,
            sha256: m.sha256,
        })
        .collect();
    for p in &pending {
        let expected = checksums
            .expected(&p.raw_name)
            .map_err(|e| Error::PutWalStream(e.to_string()))?;
        let actual = match algo {
            HashKind::Sha256 => p.sha256.clone(),
            HashKind::Md5 => {
                let path = p.tmp.path();
                let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
                algo.digest_reader(file)
                    .map_err(|e| Error::io("cannot read", path, e))?
            }
        };
        if actual != expected {
            return Err(Error::WalRejected {
                name: p.raw_name.clone(),
                reason: format!(
                    "bad checksum: {} is {actual}, the sender says {expected}",
                    algo.algorithm()
                ),
            });
        }
    }
    let mut out = Vec::new();
    for p in &pending {
        check(p, options)?;
    }
    for p in pending {
        let outcome = install(p.tmp, &p.raw_name, layout, options, clock)?;
        tracing::info!("put-wal: received {} ({} bytes)", p.raw_name, p.size);
        out.push(ReceivedWal {
            name: p.raw_name,
            size: p.size,
            outcome,
        });
    }
    Ok(out)
}

/// Receives one local WAL file (the one-host mode: `put-wal SERVER PATH`).
pub fn put_wal_file(
    path: &Path,
    layout: &ServerLayout,
    options: &PutWalOptions,
    clock: &dyn Clock,
) -> Result<ReceivedWal> {
    let raw_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::PutWalStream(format!("`{}` has no file name", path.display())))?
        .to_owned();
    let name: WalFileName = raw_name
        .parse()
        .map_err(|_| Error::PutWalStream(format!("`{raw_name}` is not a WAL file name")))?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
    if !meta.is_file() {
        return Err(Error::PutWalStream(format!(
            "`{}` is not a regular file",
            path.display()
        )));
    }
    let incoming = layout.incoming_directory();
    create_dir_secure(incoming)?;
    let mut tmp = create_temp(&incoming.join(&raw_name))?;
    let mut src = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let size =
        io::copy(&mut src, &mut tmp).map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    tmp.sync()?;
    let p = Pending {
        name,
        raw_name: raw_name.clone(),
        tmp,
        size,
        sha256: String::new(),
    };
    check(&p, options)?;
    let outcome = install(p.tmp, &raw_name, layout, options, clock)?;
    Ok(ReceivedWal {
        name: raw_name,
        size,
        outcome,
    })
}

fn check(p: &Pending, options: &PutWalOptions) -> Result<()> {
    match inspect(
        p.tmp.path(),
        &p.name,
        &options.expectations,
        options.codec.as_ref(),
    ) {
        Ok(_) => Ok(()),
        Err(InspectError::Invalid(reason)) => Err(Error::WalRejected {
            name: p.raw_name.clone(),
            reason,
        }),
        Err(InspectError::Io(e)) => Err(e),
    }
}

/// Installs the durable temporary file `tmp` (for `incoming/<name>`),
/// never replacing a file: the same content already there is kept, a
/// different one is moved to `errors/` first.
fn install(
    mut tmp: TempFile,
    name: &str,
    layout: &ServerLayout,
    options: &PutWalOptions,
    clock: &dyn Clock,
) -> Result<Received> {
    let dest = tmp.target().to_path_buf();
    let mut replaced = None;
    loop {
        match tmp.commit_no_replace()? {
            NoReplace::Installed => {
                return Ok(replaced.map_or(Received::Stored, Received::ReplacedDuplicate));
            }
            NoReplace::Exists(back) => {
                tmp = back;
                if same_content(tmp.path(), &dest, options.codec.as_ref())? {
                    return Ok(Received::AlreadyPresent);
                }
                let moved = move_to_errors(
                    &dest,
                    name,
                    layout.errors_directory(),
                    ErrorKind::Duplicate,
                    clock,
                )?;
                tracing::warn!(
                    "put-wal: a different `{name}` was waiting in incoming/; moved to {}",
                    moved.display()
                );
                replaced = Some(moved);
            }
        }
    }
}
