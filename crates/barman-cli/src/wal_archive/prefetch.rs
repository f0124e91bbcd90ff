//! `--parallel N`: pushing the next ready segments ahead of PostgreSQL's
//! requests, with markers so the later requests for them return at once.
//!
//! PostgreSQL's archiver calls `archive_command` for one WAL at a time and
//! waits for it; with a remote archive each call pays an ssh round trip.
//! A call for X pushes X and up to 8×N−1 segments that follow it in
//! `archive_status/*.ready`, in N concurrent ssh sessions of up to 8
//! segments each (one tar stream and one `barman put-wal` per session, so a
//! backlog costs one ssh handshake per 8 segments, not per segment), and
//! records each extra one pushed successfully as a marker file (its size and modification time) in a
//! private cache directory. When PostgreSQL later asks for such a segment
//! and it still has the recorded size and mtime, the marker is removed and
//! the call succeeds without contacting the server.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, SystemTime};

use barman_wal::SegmentName;
use barman_wal::put_wal_stream::hex;
use sha2::{Digest, Sha256};

use super::push::{self, PushOptions, Stamp};
use super::{ArchiveError, Parallel};
use crate::ssh::Remote;
use crate::{Warn, Warning, fsutil};

/// Markers older than this are removed.
const MARKER_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The largest marker file read (they hold one short line).
const MARKER_MAX_LEN: u64 = 256;

/// Barman's default cache directory:
/// `/tmp/barman-<server>-<12 hex digits of sha256("host:port:config")>`
/// (port and config empty when not given; characters of the server name
/// other than letters, digits, `.`, `_` and `-` become `_`).
pub fn default_cache_dir(
    server: &str,
    host: &str,
    port: Option<u16>,
    config: Option<&str>,
) -> PathBuf {
    let key = format!(
        "{host}:{}:{}",
        port.map(|p| p.to_string()).unwrap_or_default(),
        config.unwrap_or("")
    );
    let digest = Sha256::digest(key.as_bytes());
    let server: String = server
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("/tmp/barman-{server}-{}", hex(&digest[..6])))
}

/// The marker directory.
#[derive(Debug)]
pub struct Cache {
    /// A private directory (see [`fsutil::private_dir`]).
    dir: PathBuf,
}

impl Cache {
    /// Opens (creating it if needed) a trusted cache directory.
    ///
    /// # Errors
    /// When the directory cannot be made, or is not private to the user.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fsutil::private_dir(dir, true)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The marker path of a WAL name.
    fn marker(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The stamp recorded for `name`, if a well-formed marker exists.
    fn recorded(&self, name: &str) -> Option<Stamp> {
        let file = fs::File::open(self.marker(name)).ok()?;
        let mut text = String::new();
        file.take(MARKER_MAX_LEN).read_to_string(&mut text).ok()?;
        let mut fields = text.split_whitespace();
        let stamp = Stamp {
            size: fields.next()?.parse().ok()?,
            mtime: fields.next()?.parse().ok()?,
            mtime_nsec: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(stamp)
    }

    /// True when `name` was pushed ahead with exactly this stamp; the marker
    /// is consumed either way (a stale one is useless).
    pub fn take(&self, name: &str, current: Stamp, warn: Warn<'_>) -> bool {
        let path = self.marker(name);
        if fs::symlink_metadata(&path).is_err() {
            return false;
        }
        let recorded = self.recorded(name);
        if let Err(source) = fs::remove_file(&path) {
            warn(&Warning::MarkerNotRemoved { path, source });
        }
        recorded == Some(current)
    }

    /// True when a marker for `name` records exactly this stamp.
    pub fn holds(&self, name: &str, current: Stamp) -> bool {
        self.recorded(name) == Some(current)
    }

    /// Writes the marker for `name` atomically (temporary file, fsync,
    /// rename, directory fsync).
    ///
    /// # Errors
    /// When the marker cannot be written.
    pub fn record(&self, name: &str, stamp: Stamp) -> io::Result<()> {
        let line = format!("{} {} {}\n", stamp.size, stamp.mtime, stamp.mtime_nsec);
        Ok(barman_fs::write_atomic(
            &self.marker(name),
            line.as_bytes(),
            barman_fs::FILE_MODE,
        )?)
    }

    /// Removes markers (and leftover temporary files) older than a day.
    pub fn remove_stale(&self, now: SystemTime) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > MARKER_MAX_AGE);
            if old && meta.is_file() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// The plain segment names after `current` among
/// `<dir of wal>/archive_status/*.ready`, in order.
pub fn ready_after(wal: &Path, current: &SegmentName) -> Vec<(SegmentName, String)> {
    let status_dir = barman_fs::parent_dir(wal).join("archive_status");
    let Ok(entries) = fs::read_dir(&status_dir) else {
        return Vec::new();
    };
    let mut ready: Vec<(SegmentName, String)> = entries
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name();
            let stem = file_name.to_str()?.strip_suffix(".ready")?.to_owned();
            let segment: SegmentName = stem.parse().ok()?;
            (segment > *current).then_some((segment, stem))
        })
        .collect();
    ready.sort();
    ready.dedup_by(|a, b| a.0 == b.0);
    ready
}

/// Segments one ssh session carries at most under `--parallel`.
pub const PER_SESSION: usize = 8;

/// Archives `wal` with up to `parallel × PER_SESSION - 1` following ready
/// segments, in `parallel` ssh sessions (see the module docs). The result
/// is the one of `wal`'s session: `wal` is archived only when that session
/// stored everything it carried. `wal` comes with its metadata.
pub fn archive_parallel(
    remote: &Remote,
    options: &PushOptions,
    (wal, meta): (&Path, &fs::Metadata),
    Parallel {
        sessions: parallel,
        cache_dir,
    }: Parallel<'_>,
    warn: Warn<'_>,
) -> Result<(), ArchiveError> {
    let cache = match Cache::open(cache_dir) {
        Ok(cache) => cache,
        Err(source) => {
            warn(&Warning::CacheUnusable {
                wal: wal.to_path_buf(),
                source,
            });
            return push::push(remote, options, wal).map(drop);
        }
    };
    let name = wal.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if !name.is_empty() && cache.take(name, Stamp::of(meta), warn) {
        return Ok(());
    }

    // Only a plain segment starts a prefetch: history and backup-label files
    // are archived on their own.
    let extras: Vec<(String, PathBuf)> = match name.parse::<SegmentName>() {
        Ok(current) => ready_after(wal, &current)
            .into_iter()
            .filter_map(|(_, stem)| {
                let path = barman_fs::parent_dir(wal).join(&stem);
                let meta = fs::metadata(&path).ok()?;
                (!cache.holds(&stem, Stamp::of(&meta))).then_some((stem, path))
            })
            .take(parallel * PER_SESSION - 1)
            .collect(),
        Err(_) => Vec::new(),
    };

    // `parallel` sessions, each one ssh process carrying up to
    // PER_SESSION segments in one stream; the first carries `wal`.
    let sessions = parallel.min(extras.len() + 1);
    let mut groups: Vec<Vec<(&str, &Path)>> = vec![Vec::new(); sessions];
    groups[0].push((name, wal));
    for (i, (stem, path)) in extras.iter().enumerate() {
        groups[(i + 1) % sessions].push((stem.as_str(), path.as_path()));
    }
    let result = thread::scope(|scope| {
        let mut groups = groups.into_iter();
        let first = groups.next().unwrap_or_default();
        let handles: Vec<_> = groups
            .map(|group| {
                scope.spawn(move || {
                    let paths: Vec<&Path> = group.iter().map(|(_, p)| *p).collect();
                    (group.clone(), push::push_many(remote, options, &paths))
                })
            })
            .collect();
        let paths: Vec<&Path> = first.iter().map(|(_, p)| *p).collect();
        let main = push::push_many(remote, options, &paths);
        let record = |group: &[(&str, &Path)], stamps: &[Stamp]| {
            for ((stem, _), stamp) in group.iter().zip(stamps) {
                if *stem == name {
                    continue;
                }
                if let Err(source) = cache.record(stem, *stamp) {
                    warn(&Warning::MarkerNotRecorded {
                        wal: (*stem).to_owned(),
                        source,
                    });
                }
            }
        };
        if let Ok(stamps) = &main {
            record(&first, stamps);
        }
        for handle in handles {
            match handle.join() {
                Ok((group, Ok(stamps))) => record(&group, &stamps),
                Ok((group, Err(error))) => {
                    let stems: Vec<&str> = group.iter().map(|(s, _)| *s).collect();
                    warn(&Warning::PushAheadFailed {
                        wals: stems.join(", "),
                        error,
                    });
                }
                Err(_) => warn(&Warning::ThreadPanicked),
            }
        }
        main.map(|stamps| stamps[0])
    });
    cache.remove_stale(SystemTime::now());
    result.map(drop)
}

/// Segments one call archives per `--parallel` worker at most, in
/// [`archive_ahead`].
pub const PER_WORKER: usize = 4;

/// Archives `wal` with `archive`, and with it up to `parallel ×`
/// [`PER_WORKER`]` − 1` following ready segments, `parallel` at a time,
/// recording a marker for each extra one archived (the transport-neutral
/// form of [`archive_parallel`], for `barman-cloud-wal-archive`): a later
/// call for a segment whose marker matches returns at once. The result is
/// `wal`'s; a failed extra is only warned about (PostgreSQL asks again).
///
/// # Errors
/// `archive`'s error for `wal`.
pub fn archive_ahead<E: std::fmt::Display + Send>(
    wal: &Path,
    parallel: usize,
    cache_dir: &Path,
    warn: Warn<'_>,
    archive: &(dyn Fn(&Path) -> Result<(), E> + Sync),
) -> Result<(), E> {
    let name = wal.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let cache = match (Cache::open(cache_dir), fs::metadata(wal)) {
        (Ok(cache), Ok(meta)) => {
            if !name.is_empty() && cache.take(name, Stamp::of(&meta), warn) {
                tracing::info!("{name} was archived ahead by an earlier call");
                return Ok(());
            }
            cache
        }
        (Err(source), _) => {
            warn(&Warning::CacheUnusable {
                wal: wal.to_path_buf(),
                source,
            });
            return archive(wal);
        }
        // The file itself: `archive` says what is wrong with it.
        (_, Err(_)) => return archive(wal),
    };
    let extras: Vec<(String, PathBuf, Stamp)> = match name.parse::<SegmentName>() {
        Ok(current) => ready_after(wal, &current)
            .into_iter()
            .filter_map(|(_, stem)| {
                let path = barman_fs::parent_dir(wal).join(&stem);
                let stamp = Stamp::of(&fs::metadata(&path).ok()?);
                (!cache.holds(&stem, stamp)).then_some((stem, path, stamp))
            })
            .take(parallel.max(1) * PER_WORKER - 1)
            .collect(),
        Err(_) => Vec::new(),
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (main, done) = thread::scope(|scope| {
        let workers: Vec<_> = (1..parallel.min(extras.len() + 1))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((stem, path, stamp)) = extras.get(i) else {
                            return done;
                        };
                        done.push((
                            stem.clone(),
                            *stamp,
                            archive(path).map_err(|e| e.to_string()),
                        ));
                    }
                })
            })
            .collect();
        let main = archive(wal);
        let mut done = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(mut results) => done.append(&mut results),
                Err(_) => warn(&Warning::ThreadPanicked),
            }
        }
        (main, done)
    });
    for (stem, stamp, result) in done {
        match result {
            Ok(()) => {
                if let Err(source) = cache.record(&stem, stamp) {
                    warn(&Warning::MarkerNotRecorded { wal: stem, source });
                }
            }
            Err(error) => warn(&Warning::ArchiveAheadFailed { wal: stem, error }),
        }
    }
    cache.remove_stale(SystemTime::now());
    main
}
