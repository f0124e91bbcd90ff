//! The WALs of a backup as Barman's listings count them.
//!
//! "WALs until the next backup" (BARMAN-BEHAVIOUR.md §4.1): the xlog.db
//! entries from the backup's `begin_wal`, on its timeline or an older one,
//! plain segments only (history files on request), up to the `end_wal` of
//! the next DONE backup — or to the end of the archive for the newest one.
//! The entries up to the backup's own `end_wal` are the WALs it needs to be
//! consistent; the rest are "WAL Size" in `list-backups`.

use barman_wal::{Lsn, TimelineId, WalFileName};
use serde::Serialize;

use crate::Result;
use barman_catalog::{BackupId, BackupInfo, BackupStatus, ServerLayout, XlogEntry};

/// Barman's `get_wal_info` figures of one backup.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WalStats {
    /// WALs from `begin_wal` to `end_wal` (the backup's own).
    pub wal_num: u64,
    /// Their stored size in bytes.
    pub wal_size: u64,
    /// WALs after `end_wal`, up to the next backup.
    pub until_next_num: u64,
    /// Their stored size in bytes.
    pub until_next_size: u64,
    /// `begin_wal`, when it is archived.
    pub first: Option<String>,
    /// The archive time of `first` (epoch seconds).
    pub first_time: Option<f64>,
    /// The last WAL counted.
    pub last: Option<String>,
    /// Its archive time (epoch seconds).
    pub last_time: Option<f64>,
    /// WALs archived per second between `first` and `last` (0 when unknown).
    pub wals_per_second: f64,
    /// `1 - wal_size / (wal_num × segment size)` (0 when unknown).
    pub compression_ratio: f64,
    /// The same ratio for the WALs until the next backup.
    pub until_next_compression_ratio: f64,
}

/// A timeline forked from a backup's timeline after the backup ended (from
/// the archived history files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildTimeline {
    /// The new timeline.
    pub tli: u32,
    /// Where it left the backup's timeline.
    pub switchpoint: Lsn,
}

fn is_done(info: &BackupInfo) -> bool {
    info.status().is_ok_and(|s| s == BackupStatus::Done)
}

/// The DONE backups just before and just after `id` in `backups` (sorted by
/// id, as [`Catalog::backups`](crate::Catalog::backups) returns them).
pub fn neighbours<'a>(
    backups: &'a [BackupInfo],
    id: &BackupId,
) -> (Option<&'a BackupInfo>, Option<&'a BackupInfo>) {
    let previous = backups
        .iter()
        .rev()
        .filter(|b| b.backup_id() < id)
        .find(|b| is_done(b));
    let next = backups
        .iter()
        .filter(|b| b.backup_id() > id)
        .find(|b| is_done(b));
    (previous, next)
}

fn timeline_of(name: &str) -> Option<u32> {
    name.get(..8).and_then(|t| u32::from_str_radix(t, 16).ok())
}

/// The xlog.db entries "until the next backup" of `backup`, in file order:
/// segments named from `begin_wal` on, on its timeline or lower, stopping at
/// the first one after `next_end` (the next DONE backup's `end_wal`); with
/// `include_history`, every history file met on the way too. Empty when the
/// backup has no `begin_wal`.
pub fn wals_until_next<'a>(
    entries: &'a [XlogEntry],
    backup: &BackupInfo,
    next_end: Option<&str>,
    include_history: bool,
) -> Vec<&'a XlogEntry> {
    let Some(begin) = backup.begin_wal() else {
        return Vec::new();
    };
    let backup_tli = timeline_of(begin).unwrap_or(0);
    let mut out = Vec::new();
    for entry in entries {
        let Ok(file) = entry.name.parse::<WalFileName>() else {
            continue;
        };
        if file.is_history() {
            if include_history {
                out.push(entry);
            }
            continue;
        }
        if entry.name.as_str() < begin || file.timeline().get() > backup_tli || !file.is_segment() {
            continue;
        }
        if next_end.is_some_and(|end| entry.name.as_str() > end) {
            break;
        }
        out.push(entry);
    }
    out
}

#[allow(clippy::cast_precision_loss)]
fn ratio(stored: u64, count: u64, segment_size: u64) -> f64 {
    let theoretical = count as f64 * segment_size as f64;
    if theoretical == 0.0 {
        0.0
    } else {
        1.0 - stored as f64 / theoretical
    }
}

impl WalStats {
    /// Barman's figures over `wals` (from [`wals_until_next`]) for `backup`.
    #[allow(clippy::cast_precision_loss)]
    pub fn compute(backup: &BackupInfo, wals: &[&XlogEntry]) -> Result<Self> {
        let mut stats = Self::default();
        let (Some(begin), Some(end)) = (backup.begin_wal(), backup.end_wal()) else {
            return Ok(stats);
        };
        for entry in wals {
            let time = entry.time.value();
            if entry.name == begin {
                stats.first = Some(entry.name.clone());
                stats.first_time = Some(time);
            }
            if entry.name.as_str() <= end {
                stats.wal_num += 1;
                stats.wal_size += entry.size;
            } else {
                stats.until_next_num += 1;
                stats.until_next_size += entry.size;
            }
            stats.last = Some(entry.name.clone());
            stats.last_time = Some(time);
        }
        if let (Some(first), Some(last)) = (stats.first_time, stats.last_time) {
            let seconds = last - first;
            if seconds > 0.0 {
                stats.wals_per_second = (stats.wal_num + stats.until_next_num) as f64 / seconds;
            }
            let segment = backup.xlog_segment_size()?;
            stats.compression_ratio = ratio(stats.wal_size, stats.wal_num, segment);
            stats.until_next_compression_ratio =
                ratio(stats.until_next_size, stats.until_next_num, segment);
        }
        Ok(stats)
    }

    /// The figures of `backup` among `backups` (sorted by id) over the
    /// archive `entries`.
    pub fn of(backup: &BackupInfo, backups: &[BackupInfo], entries: &[XlogEntry]) -> Result<Self> {
        let (_, next) = neighbours(backups, backup.backup_id());
        let wals = wals_until_next(entries, backup, next.and_then(BackupInfo::end_wal), false);
        Self::compute(backup, &wals)
    }
}

/// The timelines whose history file (in `wals/`, read in order from
/// `tli + 1` until one is missing) says they forked from `tli` at or after
/// `forked_after`.
pub fn children_timelines(
    layout: &ServerLayout,
    tli: u32,
    forked_after: Option<Lsn>,
) -> Result<Vec<ChildTimeline>> {
    let mut children = Vec::new();
    let mut child = tli;
    loop {
        child += 1;
        let Ok(id) = TimelineId::new(child) else {
            break;
        };
        let Some(history) = crate::archive::read_history(layout, id)? else {
            break;
        };
        for entry in history.entries() {
            if entry.parent.get() != tli {
                continue;
            }
            if forked_after.is_some_and(|lsn| entry.switchpoint < lsn) {
                continue;
            }
            children.push(ChildTimeline {
                tli: child,
                switchpoint: entry.switchpoint,
            });
        }
    }
    Ok(children)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact zeros are what Barman computes
mod tests {
    use super::*;

    fn entry(name: &str, size: u64, time: f64) -> XlogEntry {
        XlogEntry::new(name, size, time)
    }

    fn backup(id: &str, begin: &str, end: &str) -> BackupInfo {
        let mut info = BackupInfo::new("pg", id.parse().unwrap());
        info.set_status(BackupStatus::Done);
        info.set_begin_wal(Some(begin)).unwrap();
        info.set_end_wal(Some(end)).unwrap();
        info
    }

    const MB16: u64 = 16 * 1024 * 1024;

    #[test]
    fn counts_follow_barmans_get_wal_info() {
        // The archive of the Barman 3.20.1 fixture (pg-xlog.db).
        let entries = vec![
            entry("000000010000000000000003", MB16, 100.0),
            entry("000000010000000000000003.00000028.backup", 345, 101.0),
            entry("000000010000000000000004", MB16, 110.0),
            entry("000000010000000000000005", MB16, 130.0),
            entry("000000010000000000000006", MB16, 140.0),
            entry("000000010000000000000006.00000028.backup", 345, 141.0),
        ];
        let first = backup(
            "20261122T041510",
            "000000010000000000000003",
            "000000010000000000000003",
        );
        let second = backup(
            "20261122T041536",
            "000000010000000000000006",
            "000000010000000000000006",
        );
        let all = [first.clone(), second.clone()];
        let s = WalStats::of(&first, &all, &entries).unwrap();
        // Its own WAL (03), then 04, 05 and 06 up to the next backup's end.
        assert_eq!((s.wal_num, s.wal_size), (1, MB16));
        assert_eq!((s.until_next_num, s.until_next_size), (3, 3 * MB16));
        assert_eq!(s.last.as_deref(), Some("000000010000000000000006"));
        // 4 WALs in 40 seconds.
        assert!((s.wals_per_second - 0.1).abs() < 1e-12);
        assert!(s.compression_ratio.abs() < 1e-12);
        let s = WalStats::of(&second, &all, &entries).unwrap();
        assert_eq!((s.wal_num, s.until_next_num), (1, 0));
        assert_eq!(s.wals_per_second, 0.0);
        assert_eq!(s.until_next_compression_ratio, 0.0);
    }

    #[test]
    fn higher_timelines_and_missing_begin_are_left_out() {
        let entries = vec![
            entry("000000010000000000000004", 4 * 1024 * 1024, 1.0),
            entry("00000002.history", 42, 2.0),
            entry("000000020000000000000004", MB16, 3.0),
        ];
        let b = backup(
            "20260101T000000",
            "000000010000000000000003",
            "000000010000000000000004",
        );
        let got = wals_until_next(&entries, &b, None, true);
        let names: Vec<&str> = got.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["000000010000000000000004", "00000002.history"]);
        // begin_wal itself is not archived: Barman computes no rates.
        let s = WalStats::compute(&b, &wals_until_next(&entries, &b, None, false)).unwrap();
        assert_eq!(s.wal_num, 1);
        assert_eq!(s.first, None);
        assert_eq!(s.compression_ratio, 0.0);
    }

    #[test]
    fn neighbours_skip_backups_that_are_not_done() {
        let mut failed = backup(
            "20260102T000000",
            "000000010000000000000005",
            "000000010000000000000005",
        );
        failed.set_status(BackupStatus::Failed);
        let all = [
            backup(
                "20260101T000000",
                "000000010000000000000003",
                "000000010000000000000003",
            ),
            failed.clone(),
            backup(
                "20260103T000000",
                "000000010000000000000007",
                "000000010000000000000007",
            ),
        ];
        let (p, n) = neighbours(&all, failed.backup_id());
        assert_eq!(p.unwrap().backup_id().as_str(), "20260101T000000");
        assert_eq!(n.unwrap().backup_id().as_str(), "20260103T000000");
        let (p, n) = neighbours(&all, all[0].backup_id());
        assert!(p.is_none());
        assert_eq!(n.unwrap().backup_id().as_str(), "20260103T000000");
    }
}
