//! The receive loop: connect with `replication=true`, pick the start
//! position, stream, write with [`SegmentWriter`], report positions.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use barman_wal::{Lsn, SegmentName, TimelineId, WalFileName, WalSegmentSize};

use super::SegmentWriter;
use crate::event::{Event, Observer};
use crate::{Error, Result};
use barman_catalog::{LockKind, try_acquire};
use barman_config::{CreateSlot, GlobalConfig, ServerConfig};
use barman_pg::replication::{ReplicationConnection, StreamMessage};

/// How often a status update is sent even when nothing happens.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Unflushed bytes that force a flush and a status update.
const FLUSH_BYTES: u64 = 1 << 20;

/// Longest time received WAL stays unflushed while data keeps coming.
const FLUSH_DELAY: Duration = Duration::from_millis(100);

/// What `barman receive-wal` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveAction {
    /// Stream until cancelled.
    Stream,
    /// `--create-slot` (`if_not_exists`: an existing slot is fine).
    CreateSlot {
        /// `--if-not-exists`.
        if_not_exists: bool,
    },
    /// `--drop-slot`.
    DropSlot,
    /// `--reset`: restart from the server's position.
    Reset,
}

use crate::server::connect_as;

fn connect(server: &ServerConfig) -> Result<ReplicationConnection> {
    connect_as(server, &server.streaming_archiver_name)
}

/// Runs `barman receive-wal` for `server`.
///
/// # Errors
///
/// The receive-wal lock is busy; the server cannot be reached or refuses
/// replication; the slot is missing with `create_slot = manual`; the
/// connection drops (the `.partial` segment stays partial).
pub fn receive_wal(
    global: &GlobalConfig,
    server: &ServerConfig,
    action: ReceiveAction,
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> Result<()> {
    let slot = server.slot_name.clone();
    match action {
        ReceiveAction::CreateSlot { if_not_exists } => {
            let name = slot.ok_or_else(|| no_slot(server))?;
            let mut conn = connect(server)?;
            match conn.create_physical_slot(&name, true) {
                Ok(()) => observer.event(&Event::SlotCreated {
                    server: server.name.clone(),
                    slot: name.clone(),
                }),
                Err(barman_pg::replication::Error::SlotExists { .. }) if if_not_exists => {
                    observer.event(&Event::SlotExists { slot: name.clone() });
                }
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        ReceiveAction::DropSlot => {
            let name = slot.ok_or_else(|| no_slot(server))?;
            let mut conn = connect(server)?;
            conn.drop_slot(&name, false)?;
            observer.event(&Event::SlotDropped { slot: name.clone() });
            return Ok(());
        }
        ReceiveAction::Stream | ReceiveAction::Reset => {}
    }
    let layout = server.layout();
    let dir = layout.streaming_directory().to_path_buf();
    barman_catalog::fs::create_dir_secure(&dir)?;
    let _lock = try_acquire(
        &global.barman_lock_directory,
        &LockKind::ReceiveWal(server.name.clone()),
    )?;
    let mut conn = connect(server)?;
    let system = conn.identify_system()?;
    if let Some(identity) = server.catalog().identity()?
        && identity.systemid != system.systemid
    {
        return Err(Error::BackupRefused(format!(
            "server `{}` has system identifier {} but the archive holds {}: refusing to stream into it",
            server.name, system.systemid, identity.systemid
        )));
    }
    let size = segment_size(&mut conn)?;
    let server_tli = TimelineId::new(system.timeline)?;
    if let Some(name) = &slot {
        ensure_slot(&mut conn, server, name, observer)?;
    }
    if action == ReceiveAction::Reset {
        let restart = slot_restart(&mut conn, server, slot.as_deref())?
            .map_or(system.xlogpos, |(lsn, _)| lsn);
        return reset(&dir, restart, size, system.xlogpos, server_tli, observer);
    }
    let (mut start, mut tli) = if let Some(found) = local_position(&dir, size)? {
        found
    } else {
        match slot_restart(&mut conn, server, slot.as_deref())? {
            Some((lsn, t)) => (lsn, t.map_or(Ok(server_tli), TimelineId::new)?),
            None => (system.xlogpos, server_tli),
        }
    };
    let mut writer = SegmentWriter::new(&dir, size, tli, start);
    start = writer.written();
    observer.event(&Event::StreamingStarted {
        server: server.name.clone(),
        lsn: start,
        timeline: tli.get(),
        segment: SegmentName::from_lsn(tli, start, size).to_string(),
    });
    loop {
        let mut stream = conn.start_physical(slot.as_deref(), start, tli.get())?;
        let mut last_status = Instant::now();
        let mut unflushed_since: Option<Instant> = None;
        let next = loop {
            if cancel.load(Ordering::Relaxed) {
                let flushed = writer.flush()?;
                stream.send_status(writer.written(), flushed, Lsn(0), false)?;
                observer.event(&Event::StreamingStopped);
                return Ok(());
            }
            let wait = if unflushed_since.is_some() {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(500)
            };
            let message = stream.next(wait)?;
            let mut report = false;
            match message {
                Some(StreamMessage::XLogData { start, data, .. }) => {
                    writer.write(start, &data)?;
                    for name in writer.take_completed() {
                        observer.event(&Event::WalStreamed { name: name.clone() });
                    }
                    let since = *unflushed_since.get_or_insert_with(Instant::now);
                    if writer.written().0 - writer.flushed().0 >= FLUSH_BYTES
                        || since.elapsed() >= FLUSH_DELAY
                    {
                        report = true;
                    }
                }
                Some(StreamMessage::Keepalive {
                    reply_requested, ..
                }) => report = reply_requested || unflushed_since.is_some(),
                Some(StreamMessage::EndOfTimeline {
                    next_timeline,
                    next_start,
                }) => break (next_timeline, next_start),
                // A pause in the stream: make what came durable.
                None => report = unflushed_since.is_some(),
            }
            if report || last_status.elapsed() >= STATUS_INTERVAL {
                let flushed = writer.flush()?;
                stream.send_status(writer.written(), flushed, Lsn(0), false)?;
                last_status = Instant::now();
                unflushed_since = None;
            }
        };
        let (next_tli, next_start) = next;
        conn = stream.into_connection()?;
        let next_tli = TimelineId::new(next_tli)?;
        let (name, content) = conn.timeline_history(next_tli.get())?;
        let history = WalFileName::History(next_tli).to_string();
        if name != history {
            tracing::warn!(
                "the server named timeline {}'s history `{name}`",
                next_tli.get()
            );
        }
        barman_catalog::fs::write_atomic(
            &dir.join(&history),
            &content,
            barman_catalog::fs::FILE_MODE,
        )?;
        observer.event(&Event::WalStreamed {
            name: history.clone(),
        });
        start = writer.switch_timeline(next_tli, next_start)?;
        tli = next_tli;
        observer.event(&Event::TimelineFollowed {
            timeline: tli.get(),
            lsn: start,
        });
    }
}

fn no_slot(server: &ServerConfig) -> Error {
    Error::BackupRefused(format!(
        "server `{}` has no slot_name: set slot_name to create or drop a replication slot",
        server.name
    ))
}

/// The server's `wal_segment_size`.
fn segment_size(conn: &mut ReplicationConnection) -> Result<WalSegmentSize> {
    let rows = conn.simple_query("SHOW wal_segment_size")?;
    let text = rows
        .first()
        .and_then(|r| r.first())
        .and_then(Clone::clone)
        .unwrap_or_else(|| "16MB".to_owned());
    let bytes = pg_size(&text).ok_or_else(|| {
        Error::BackupRefused(format!(
            "unexpected wal_segment_size `{text}` from the server"
        ))
    })?;
    Ok(WalSegmentSize::new(bytes)?)
}

/// A size as PostgreSQL's SHOW prints it (`16MB`, `1GB`, `8192kB`, bytes).
fn pg_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = text[..digits].parse().ok()?;
    let unit = match text[digits..].trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// What is known of a physical replication slot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// It exists (where it would restart streaming).
    Present(barman_pg::replication::SlotPosition),
    /// There is no such slot.
    Missing,
    /// It cannot be told: PostgreSQL before 15 without a `conninfo`.
    Unknown,
}

/// The slot `name`: `READ_REPLICATION_SLOT` on PostgreSQL 15+; before 15
/// (no such command, and a physical replication session runs no SQL),
/// `pg_replication_slots` read through the server's `conninfo`, as Barman
/// does.
fn slot_position(
    conn: &mut ReplicationConnection,
    server: &ServerConfig,
    name: &str,
) -> Result<Slot> {
    if conn.server_version() >= 150_000 {
        return Ok(conn
            .read_replication_slot(name)?
            .map_or(Slot::Missing, Slot::Present));
    }
    let Some(conninfo) = server.conninfo.as_deref() else {
        return Ok(Slot::Unknown);
    };
    let pg = barman_pg::postgres::PgConnection::connect(conninfo, &server.streaming_archiver_name)?;
    let rows = pg.query_text(&format!(
        "SELECT restart_lsn::text, pg_catalog.pg_walfile_name(restart_lsn) \
         FROM pg_catalog.pg_replication_slots WHERE slot_name = '{}' AND slot_type = 'physical'",
        name.replace('\'', "''")
    ))?;
    let Some(row) = rows.first() else {
        return Ok(Slot::Missing);
    };
    let restart_lsn = row
        .first()
        .cloned()
        .flatten()
        .and_then(|v| v.parse::<Lsn>().ok());
    // The timeline is the first 8 hex digits of the WAL file name.
    let timeline = row
        .get(1)
        .cloned()
        .flatten()
        .and_then(|f| f.get(..8).and_then(|t| u32::from_str_radix(t, 16).ok()));
    Ok(Slot::Present(barman_pg::replication::SlotPosition {
        restart_lsn,
        timeline,
    }))
}

/// Where the slot (if any) would restart streaming, and on which timeline.
fn slot_restart(
    conn: &mut ReplicationConnection,
    server: &ServerConfig,
    slot: Option<&str>,
) -> Result<Option<(Lsn, Option<u32>)>> {
    let Some(name) = slot else {
        return Ok(None);
    };
    Ok(match slot_position(conn, server, name)? {
        Slot::Present(p) => p.restart_lsn.map(|lsn| (lsn, p.timeline)),
        Slot::Missing | Slot::Unknown => None,
    })
}

/// Checks the slot: missing → created with `create_slot = auto`, else an error.
fn ensure_slot(
    conn: &mut ReplicationConnection,
    server: &ServerConfig,
    name: &str,
    observer: &mut dyn Observer,
) -> Result<()> {
    let found = slot_position(conn, server, name)?;
    if matches!(found, Slot::Present(_))
        || (found == Slot::Unknown && server.create_slot != CreateSlot::Auto)
    {
        // Unknown with create_slot = manual: START_REPLICATION names a
        // missing slot.
        return Ok(());
    }
    if server.create_slot == CreateSlot::Auto {
        observer.event(&Event::SlotAutoCreated {
            slot: name.to_string(),
        });
        match conn.create_physical_slot(name, true) {
            Ok(()) | Err(barman_pg::replication::Error::SlotExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    } else {
        Err(Error::BackupRefused(format!(
            "replication slot '{name}' does not exist on server `{}`: create it with `barman receive-wal --create-slot {}` or set create_slot = auto",
            server.name, server.name
        )))
    }
}

/// Where a restart resumes from the files in `streaming/`: the start of the
/// newest `.partial` segment, else the segment after the newest complete
/// one; `None` when the directory holds neither.
pub fn local_position(dir: &Path, size: WalSegmentSize) -> Result<Option<(Lsn, TimelineId)>> {
    let mut partial: Option<SegmentName> = None;
    let mut complete: Option<SegmentName> = None;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.parse::<WalFileName>() {
            Ok(WalFileName::Partial(s)) if partial.is_none_or(|p| s > p) => partial = Some(s),
            Ok(WalFileName::Segment(s)) if complete.is_none_or(|c| s > c) => complete = Some(s),
            _ => {}
        }
    }
    Ok(match (partial, complete) {
        (Some(p), Some(c)) if c >= p => Some((c.next(size).start_lsn(size), c.timeline())),
        (Some(p), _) => Some((p.start_lsn(size), p.timeline())),
        (None, Some(c)) => Some((c.next(size).start_lsn(size), c.timeline())),
        (None, None) => None,
    })
}

/// `--reset`: the local position becomes the slot's restart position (or
/// the server's current one): older `.partial` files are removed and an
/// empty `<segment>.partial` marks where streaming restarts.
fn reset(
    dir: &Path,
    restart: Lsn,
    size: WalSegmentSize,
    current: Lsn,
    tli: TimelineId,
    observer: &mut dyn Observer,
) -> Result<()> {
    let target = SegmentName::from_lsn(tli, restart, size);
    if let Some((local, _)) = local_position(dir, size)?
        && local > current
    {
        return Err(Error::BackupRefused(format!(
            "the local streaming position {local} is ahead of the server's {current}: refusing to reset"
        )));
    }
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io("cannot remove", entry.path(), e))?;
        }
    }
    let marker = dir.join(WalFileName::Partial(target).to_string());
    barman_catalog::fs::write_atomic(&marker, b"", barman_catalog::fs::FILE_MODE)?;
    observer.event(&Event::StreamingReset {
        segment: target.to_string(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_sizes() {
        assert_eq!(pg_size("16MB"), Some(16 << 20));
        assert_eq!(pg_size("1GB"), Some(1 << 30));
        assert_eq!(pg_size("8192kB"), Some(8 << 20));
        assert_eq!(pg_size("16 MB"), Some(16 << 20));
        assert_eq!(pg_size("lots"), None);
    }

    #[test]
    fn restart_positions_from_the_streaming_directory() {
        let size = WalSegmentSize::DEFAULT;
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(local_position(tmp.path(), size).unwrap(), None);
        std::fs::write(tmp.path().join("000000010000000000000004"), b"").unwrap();
        let (lsn, tli) = local_position(tmp.path(), size).unwrap().unwrap();
        assert_eq!((lsn.to_string(), tli.get()), ("0/5000000".to_owned(), 1));
        std::fs::write(tmp.path().join("000000010000000000000005.partial"), b"").unwrap();
        let (lsn, _) = local_position(tmp.path(), size).unwrap().unwrap();
        assert_eq!(lsn.to_string(), "0/5000000");
        std::fs::write(tmp.path().join("000000020000000000000006.partial"), b"").unwrap();
        let (lsn, tli) = local_position(tmp.path(), size).unwrap().unwrap();
        assert_eq!((lsn.to_string(), tli.get()), ("0/6000000".to_owned(), 2));
        std::fs::write(tmp.path().join("junk"), b"").unwrap();
        assert!(local_position(tmp.path(), size).unwrap().is_some());
    }
}
