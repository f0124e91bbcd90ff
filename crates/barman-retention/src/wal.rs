//! WAL retention: which archived WAL files a backup deletion (or the very
//! first backup) lets go, following Barman's `backup.py`.
//!
//! Barman never expires WAL files on their own: they go only when a backup is
//! deleted (`delete_backup`, by `barman delete` or by retention enforcement in
//! `cron`) and when the first backup of a server purges what came before it.
//! Both end in `remove_wal_before_backup(B, protected_timelines,
//! protected_ranges)`, which this module models as a [`WalCleanup`]; the
//! functions [`wal_cleanup_for_delete`] and [`wal_cleanup_for_first_backup`]
//! compute its arguments as Barman does.

use std::collections::BTreeSet;

use crate::backup::{BackupSummary, KeepTarget};
use crate::wal_name::timeline_of;

/// The WAL cleanup one call of Barman's `remove_wal_before_backup(B,
/// timelines_to_protect, wal_ranges_to_protect)` performs.
///
/// An xlog.db entry is kept when any of these holds (Barman's order), and
/// removed otherwise:
///
/// 1. it is a `.history` file;
/// 2. its timeline (first 8 hex digits) is in `protected_timelines`;
/// 3. it lies in one of `protected_ranges`, inclusive at both ends — for this
///    test a `.backup` name is cut to its 24-character segment name, a
///    `.partial` name is compared whole (so `<end>.partial` sorts after `end`
///    and is outside the range, as in Barman);
/// 4. `name >= keep_from`, compared as plain strings (the full name: a
///    `.backup` or `.partial` name sorts right after its segment, so cutting
///    it would not change this test).
///
/// A name that is not a WAL file name at all is never removable: Barman logs
/// an error for it ("invalid WAL segment name", run `rebuild-xlogdb`) and
/// drops its xlog.db line without deleting any file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalCleanup {
    /// `B.begin_wal`: entries at or after it are kept. `None` (no `B`, or `B`
    /// has no `begin_wal`) means no lower bound: everything not otherwise
    /// protected goes.
    pub keep_from: Option<String>,
    /// Timelines on which nothing is removed.
    pub protected_timelines: BTreeSet<u32>,
    /// Inclusive `(begin_wal, end_wal)` ranges that are kept: the WALs of
    /// older `keep:standalone` backups.
    pub protected_ranges: Vec<(String, String)>,
}

/// Why [`WalCleanup`] keeps an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalKeepReason {
    /// Not a WAL file name; Barman reports it and deletes nothing.
    NotAWalName,
    /// A timeline history file, always kept.
    History,
    /// On a protected timeline.
    ProtectedTimeline(u32),
    /// Inside `protected_ranges[index]`.
    ProtectedRange(usize),
    /// At or after `keep_from`.
    NotBeforeKeepFrom,
}

impl WalCleanup {
    /// Why the entry `wal_file_name` (an xlog.db name such as
    /// `000000010000000000000003`, `…03.00000028.backup`, `…03.partial` or
    /// `00000002.history`) is kept, or `None` when the cleanup removes it.
    pub fn keep_reason(&self, wal_file_name: &str) -> Option<WalKeepReason> {
        let Some(kind) = WalKind::of(wal_file_name) else {
            return Some(WalKeepReason::NotAWalName);
        };
        if kind == WalKind::History {
            return Some(WalKeepReason::History);
        }
        if let Some(tli) = timeline_of(wal_file_name)
            && self.protected_timelines.contains(&tli)
        {
            return Some(WalKeepReason::ProtectedTimeline(tli));
        }
        let range_name = if kind == WalKind::BackupLabel {
            &wal_file_name[..24]
        } else {
            wal_file_name
        };
        if let Some(index) = self
            .protected_ranges
            .iter()
            .position(|(begin, end)| range_name >= begin.as_str() && range_name <= end.as_str())
        {
            return Some(WalKeepReason::ProtectedRange(index));
        }
        if self
            .keep_from
            .as_deref()
            .is_some_and(|from| wal_file_name >= from)
        {
            return Some(WalKeepReason::NotBeforeKeepFrom);
        }
        None
    }

    /// Whether the entry `wal_file_name` stays (see [`WalCleanup`] for the rules).
    pub fn keeps(&self, wal_file_name: &str) -> bool {
        self.keep_reason(wal_file_name).is_some()
    }

    /// The names the cleanup removes, in input order.
    pub fn removable<'a, I: IntoIterator<Item = &'a str>>(&self, names: I) -> Vec<&'a str> {
        names.into_iter().filter(|name| !self.keeps(name)).collect()
    }
}

/// Who deletes the backup: it decides whether older `keep:standalone`
/// backups stop the WAL cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeleteKind {
    /// `barman delete`: Barman's `skip_wal_cleanup_if_standalone=True`. An
    /// older `keep:standalone` backup means no WAL is removed.
    Manual,
    /// Retention enforcement in `cron`: `skip_wal_cleanup_if_standalone=False`.
    /// Older `keep:standalone` backups let the cleanup go on, their
    /// `begin_wal..=end_wal` ranges protected.
    Retention,
}

/// The WAL cleanup that deleting backup `deleting` allows, or `None` when no
/// WAL may go. Follows Barman's `BackupManager.delete_backup`:
///
/// * **Whether** (`should_remove_wals`): walk the older backups whose status
///   is `WAITING_FOR_WALS` or `DONE` (older `FAILED`, `STARTED`, `EMPTY` or
///   `SYNCING` backups are skipped), newest first. No such backup: WALs may
///   go. One without a keep annotation or with `keep:full`: `None` (PITR from
///   it to now needs every later WAL). A `keep:standalone` one: for
///   [`DeleteKind::Manual`], `None`; for [`DeleteKind::Retention`], its
///   `(begin_wal, end_wal)` joins `protected_ranges` and the walk goes on.
/// * **`B`** (`remove_until`): the next newer backup whose status is
///   `WAITING_FOR_WALS` or `DONE`; without one, the deleted backup itself
///   when `concurrent_backup` is in `backup_options` (a backup starting right
///   now may need the WALs from its start), else none (`keep_from` = `None`).
///   `keep_from` is `B.begin_wal`.
/// * **`protected_timelines`** (`get_timelines_to_protect`): when there is a
///   `B`, the timelines of every other backup with an archiving status
///   (`STARTED`, `WAITING_FOR_WALS`, `DONE`, `SYNCING`), less `B`'s own
///   timeline; when there is no `B`, none.
///
/// Incremental backups take part like any other backup (Barman filters by
/// status only). `backups` is the whole catalog, the backup being deleted
/// included; when deleting several (a backup and its children, or every
/// obsolete backup in `cron`), remove each deleted one from `backups` before
/// asking about the next, as Barman's catalog cache does.
///
/// `None` also when `deleting` is not in `backups`, and when an older
/// `keep:standalone` backup has no `begin_wal`/`end_wal` (its range cannot be
/// protected; Barman would fail comparing with `None`).
pub fn wal_cleanup_for_delete(
    backups: &[BackupSummary],
    deleting: &str,
    kind: DeleteKind,
    concurrent_backup: bool,
) -> Option<WalCleanup> {
    let deleted = backups.iter().find(|b| b.id == deleting)?;

    let mut older: Vec<&BackupSummary> = backups
        .iter()
        .filter(|b| b.id.as_str() < deleting && b.status.is_copy_done())
        .collect();
    older.sort_by(|a, b| b.id.cmp(&a.id));
    let mut protected_ranges = Vec::new();
    for previous in older {
        match (previous.keep, kind) {
            (Some(KeepTarget::Standalone), DeleteKind::Retention) => {
                let (Some(begin), Some(end)) = (&previous.begin_wal, &previous.end_wal) else {
                    return None;
                };
                protected_ranges.push((begin.clone(), end.clone()));
            }
            _ => return None,
        }
    }

    let next = backups
        .iter()
        .filter(|b| b.id.as_str() > deleting && b.status.is_copy_done())
        .min_by(|a, b| a.id.cmp(&b.id));
    let remove_until = next.or(concurrent_backup.then_some(deleted));

    let protected_timelines = remove_until.map_or_else(BTreeSet::new, |until| {
        let mut timelines: BTreeSet<u32> = backups
            .iter()
            .filter(|b| b.id != deleting && b.status.is_archiving())
            .filter_map(BackupSummary::timeline)
            .collect();
        if let Some(tli) = until.timeline() {
            timelines.remove(&tli);
        }
        timelines
    });

    Some(WalCleanup {
        keep_from: remove_until.and_then(|b| b.begin_wal.clone()),
        protected_timelines,
        protected_ranges,
    })
}

/// The purge Barman's backup executor runs for the very first backup of a
/// server (`_purge_unused_wal_files`): `remove_wal_before_backup(backup)`,
/// which removes every WAL before the backup's `begin_wal`, on every
/// timeline, with no timeline or range protected.
///
/// `None` when the backup has no `begin_wal` yet: Barman then purges nothing.
/// Ask [`is_first_backup`] first; with `worm_mode` on Barman skips the purge.
pub fn wal_cleanup_for_first_backup(backup: &BackupSummary) -> Option<WalCleanup> {
    let begin_wal = backup.begin_wal.clone()?;
    Some(WalCleanup {
        keep_from: Some(begin_wal),
        ..WalCleanup::default()
    })
}

/// Whether `backup_id` is the first backup in Barman's sense
/// (`get_previous_backup` is `None`): no older backup has status
/// `WAITING_FOR_WALS` or `DONE`. Older `FAILED`, `STARTED`, `EMPTY` and
/// `SYNCING` backups do not count.
pub fn is_first_backup(backups: &[BackupSummary], backup_id: &str) -> bool {
    !backups
        .iter()
        .any(|b| b.id.as_str() < backup_id && b.status.is_copy_done())
}

/// The kinds of name Barman's `xlog._xlog_re` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalKind {
    /// `TTTTTTTTLLLLLLLLSSSSSSSS`
    Segment,
    /// `<segment>.partial`
    Partial,
    /// `<segment>.XXXXXXXX.backup`
    BackupLabel,
    /// `TTTTTTTT.history`
    History,
}

impl WalKind {
    /// Classifies `name` as Barman's regex does (hex digits in either case).
    fn of(name: &str) -> Option<Self> {
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        let (head, rest) = name.split_at_checked(8)?;
        if !hex(head) {
            return None;
        }
        if rest == ".history" {
            return Some(Self::History);
        }
        let (segment, suffix) = rest.split_at_checked(16)?;
        if !hex(segment) {
            return None;
        }
        match suffix {
            "" => Some(Self::Segment),
            ".partial" => Some(Self::Partial),
            _ => {
                let offset = suffix.strip_prefix('.')?.strip_suffix(".backup")?;
                (offset.len() == 8 && hex(offset)).then_some(Self::BackupLabel)
            }
        }
    }
}

#[cfg(test)]
mod tests;
