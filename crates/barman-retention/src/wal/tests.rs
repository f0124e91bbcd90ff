//! The WAL cleanup case table: which archived names survive deleting which
//! backup. Expected lists are written from Barman's `delete_backup`,
//! `should_remove_wals`, `get_timelines_to_protect` and
//! `remove_wal_before_backup` (BARMAN-BEHAVIOUR.md §4.2, corrected where
//! Barman's code says otherwise; see the module docs).

use super::*;
use crate::backup::BackupStatus::{self, Done, Failed, Started, WaitingForWals};
use KeepTarget::{Full, Standalone};

/// A segment name on timeline `tli`, log 0.
fn w(tli: u32, seg: u32) -> String {
    format!("{tli:08X}{:08X}{seg:08X}", 0)
}

/// The archive every case starts from: timeline 1 segments 01..0A with a
/// backup label after 03 and a partial segment 06, timeline 2's history and
/// segments 09..0B.
const ARCHIVE: &[&str] = &[
    "000000010000000000000001",
    "000000010000000000000002",
    "000000010000000000000003",
    "000000010000000000000003.00000028.backup",
    "000000010000000000000004",
    "000000010000000000000005",
    "000000010000000000000006",
    "000000010000000000000006.partial",
    "000000010000000000000007",
    "000000010000000000000008",
    "000000010000000000000009",
    "00000001000000000000000A",
    "00000002.history",
    "000000020000000000000009",
    "00000002000000000000000A",
    "00000002000000000000000B",
];

/// `(id, status, keep, parent, (timeline, first segment, last segment))`.
type Row = (
    &'static str,
    BackupStatus,
    Option<KeepTarget>,
    Option<&'static str>,
    (u32, u32, u32),
);

fn summaries(rows: &[Row]) -> Vec<BackupSummary> {
    rows.iter()
        .map(|&(id, status, keep, parent, (tli, begin, end))| {
            let mut b = BackupSummary::new(id, status).wals(w(tli, begin), w(tli, end));
            b.keep = keep;
            b.parent_backup_id = parent.map(str::to_owned);
            b
        })
        .collect()
}

enum Action {
    Delete {
        id: &'static str,
        kind: DeleteKind,
        concurrent: bool,
    },
    FirstBackup(&'static str),
}

use Action::{Delete, FirstBackup};
use DeleteKind::{Manual, Retention};

struct Case {
    name: &'static str,
    backups: &'static [Row],
    action: Action,
    /// `None`: no WAL may go. `Some(list)`: exactly these names go.
    removed: Option<&'static [&'static str]>,
}

const fn delete(id: &'static str, kind: DeleteKind) -> Action {
    Delete {
        id,
        kind,
        concurrent: false,
    }
}

const CASES: &[Case] = &[
    Case {
        // should_remove_wals rule 1 (no previous backup); B = next backup.
        name: "deleting the oldest backup frees the WALs before the next backup's begin_wal",
        backups: &[
            ("b1", Done, None, None, (1, 2, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b1", Manual),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
        ]),
    },
    Case {
        // should_remove_wals rule 2: an older plain backup needs every later WAL for PITR.
        name: "an older backup without keep: nothing goes",
        backups: &[
            ("b1", Done, None, None, (1, 2, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b2", Retention),
        removed: None,
    },
    Case {
        // find_previous_backup_in filters on STATUS_COPY_DONE: WAITING_FOR_WALS counts.
        name: "an older WAITING_FOR_WALS backup blocks the cleanup too",
        backups: &[
            ("b1", WaitingForWals, None, None, (1, 2, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
        ],
        action: delete("b2", Manual),
        removed: None,
    },
    Case {
        // find_previous_backup_in skips statuses outside STATUS_COPY_DONE.
        name: "an older FAILED backup does not block the cleanup",
        backups: &[
            ("b1", Failed, None, None, (1, 2, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b2", Manual),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.partial",
            "000000010000000000000007",
            "000000010000000000000008",
        ]),
    },
    Case {
        // get_next_backup filters on STATUS_COPY_DONE: B skips a FAILED newer backup.
        name: "B is the next DONE/WAITING_FOR_WALS backup, a FAILED one in between is skipped",
        backups: &[
            ("b1", Done, None, None, (1, 2, 3)),
            ("b2", Failed, None, None, (1, 5, 6)),
            ("b3", WaitingForWals, None, None, (1, 7, 8)),
        ],
        action: delete("b1", Retention),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.partial",
        ]),
    },
    Case {
        // get_timelines_to_protect: timelines of other archiving backups (STARTED
        // included) except B's; B = b3 (b2 is STARTED, not copy-done).
        name: "a STARTED backup protects its timeline; B's own timeline is cleaned",
        backups: &[
            ("b1", Done, None, None, (1, 2, 3)),
            ("b2", Started, None, None, (1, 7, 7)),
            ("b3", Done, None, None, (2, 10, 11)),
        ],
        action: delete("b1", Manual),
        removed: Some(&["000000020000000000000009"]),
    },
    Case {
        // The deleted backup's own timeline is not protected; a higher timeline
        // sorts after every name of a lower one, so keep_from on timeline 2 frees
        // all of timeline 1.
        name: "only the deleted backup was on timeline 1: all of timeline 1 goes",
        backups: &[
            ("b1", Done, None, None, (1, 2, 3)),
            ("b3", Done, None, None, (2, 10, 11)),
        ],
        action: delete("b1", Manual),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.partial",
            "000000010000000000000007",
            "000000010000000000000008",
            "000000010000000000000009",
            "00000001000000000000000A",
            "000000020000000000000009",
        ]),
    },
    Case {
        // No next backup and concurrent_backup: remove_until = the deleted backup.
        name: "last backup, concurrent_backup: keep from its own begin_wal",
        backups: &[("b3", Done, None, None, (1, 9, 9))],
        action: Delete {
            id: "b3",
            kind: Manual,
            concurrent: true,
        },
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.partial",
            "000000010000000000000007",
            "000000010000000000000008",
        ]),
    },
    Case {
        // No next backup, exclusive: remove_until = None, no timeline protected;
        // only history files stay.
        name: "last backup, exclusive: everything but history files goes",
        backups: &[("b3", Done, None, None, (1, 9, 9))],
        action: delete("b3", Retention),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.partial",
            "000000010000000000000007",
            "000000010000000000000008",
            "000000010000000000000009",
            "00000001000000000000000A",
            "000000020000000000000009",
            "00000002000000000000000A",
            "00000002000000000000000B",
        ]),
    },
    Case {
        // skip_wal_cleanup_if_standalone=True for `barman delete`.
        name: "manual delete: an older keep:standalone backup stops the cleanup",
        backups: &[
            ("b1", Done, Some(Standalone), None, (1, 2, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b2", Manual),
        removed: None,
    },
    Case {
        // should_remove_wals rule 4a (retention): the standalone range is protected;
        // the .backup label is cut to 24 chars and falls in it.
        name: "retention delete past a keep:standalone backup protects its begin..end",
        backups: &[
            ("b1", Done, Some(Standalone), None, (1, 2, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b2", Retention),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.partial",
            "000000010000000000000007",
            "000000010000000000000008",
        ]),
    },
    Case {
        // Only .backup names are cut for the range test: `…06.partial` > `…06`.
        name: "a .partial at a standalone range's end is compared whole and goes",
        backups: &[
            ("b1", Done, Some(Standalone), None, (1, 5, 6)),
            ("b2", Done, None, None, (1, 7, 7)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b2", Retention),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
            "000000010000000000000006.partial",
            "000000010000000000000007",
            "000000010000000000000008",
        ]),
    },
    Case {
        // Rule 4b: walk on past standalone backups; a plain one further back stops it.
        name: "standalone, then a plain backup further back: nothing goes",
        backups: &[
            ("b0", Done, None, None, (1, 1, 1)),
            ("b1", Done, Some(Standalone), None, (1, 2, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b2", Retention),
        removed: None,
    },
    Case {
        // Rule 4b all the way down: every standalone range protected.
        name: "two standalone backups further back: both ranges protected",
        backups: &[
            ("b0", Done, Some(Standalone), None, (1, 1, 1)),
            ("b1", Done, Some(Standalone), None, (1, 3, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b2", Retention),
        removed: Some(&[
            "000000010000000000000002",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.partial",
            "000000010000000000000007",
            "000000010000000000000008",
        ]),
    },
    Case {
        // Rule 3: keep:full needs PITR from it to now.
        name: "an older keep:full backup: nothing goes",
        backups: &[
            ("b1", Done, Some(Full), None, (1, 2, 3)),
            ("b2", Done, None, None, (1, 5, 6)),
        ],
        action: delete("b2", Retention),
        removed: None,
    },
    Case {
        // Barman filters by status only: an incremental child is a "next backup".
        name: "deleting a full backup whose incremental child is next: keep from the child",
        backups: &[
            ("b1", Done, None, None, (1, 2, 3)),
            ("b2", Done, None, Some("b1"), (1, 5, 6)),
            ("b3", Done, None, None, (1, 9, 9)),
        ],
        action: delete("b1", Retention),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
        ]),
    },
    Case {
        // _purge_unused_wal_files: remove_wal_before_backup(backup), no protection;
        // timeline 2 sorts after timeline 1's begin_wal and stays.
        name: "first backup purges what precedes its begin_wal",
        backups: &[("b1", Started, None, None, (1, 5, 5))],
        action: FirstBackup("b1"),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
        ]),
    },
    Case {
        // The purge protects no timeline: a first backup on timeline 2 frees timeline 1.
        name: "first backup on timeline 2 purges all of timeline 1",
        backups: &[("b1", Started, None, None, (2, 10, 10))],
        action: FirstBackup("b1"),
        removed: Some(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000006.partial",
            "000000010000000000000007",
            "000000010000000000000008",
            "000000010000000000000009",
            "00000001000000000000000A",
            "000000020000000000000009",
        ]),
    },
];

#[test]
fn wal_cleanup_case_table() {
    assert!(CASES.len() >= 10);
    for case in CASES {
        let backups = summaries(case.backups);
        let cleanup = match case.action {
            Delete {
                id,
                kind,
                concurrent,
            } => wal_cleanup_for_delete(&backups, id, kind, concurrent),
            FirstBackup(id) => {
                let backup = backups.iter().find(|b| b.id == id).unwrap();
                wal_cleanup_for_first_backup(backup)
            }
        };
        let removed = cleanup
            .as_ref()
            .map(|c| c.removable(ARCHIVE.iter().copied()));
        assert_eq!(
            removed.as_deref(),
            case.removed,
            "case: {}\ncleanup: {cleanup:?}",
            case.name
        );
    }
}

#[test]
fn delete_arguments_match_barman() {
    let backups = summaries(&[
        ("b0", Done, Some(Standalone), None, (1, 1, 1)),
        ("b1", Done, Some(Standalone), None, (1, 3, 3)),
        ("b2", Done, None, None, (1, 5, 6)),
        ("b3", Started, None, None, (3, 1, 1)),
        ("b4", Failed, None, None, (4, 1, 1)),
        ("b5", Done, None, None, (2, 10, 11)),
    ]);
    let cleanup = wal_cleanup_for_delete(&backups, "b2", Retention, true).unwrap();
    assert_eq!(
        cleanup,
        WalCleanup {
            keep_from: Some(w(2, 10)),
            // b0, b1 (timeline 1) and b3 (STARTED, timeline 3); b4 is FAILED
            // (not archiving); b5 is B.
            protected_timelines: BTreeSet::from([1, 3]),
            // Newest first, as Barman appends them.
            protected_ranges: vec![(w(1, 3), w(1, 3)), (w(1, 1), w(1, 1))],
        }
    );
}

#[test]
fn unknown_backup_or_standalone_without_wals_allows_nothing() {
    let backups = summaries(&[("b1", Done, None, None, (1, 1, 1))]);
    assert_eq!(
        wal_cleanup_for_delete(&backups, "nope", Retention, true),
        None
    );

    let mut backups = summaries(&[
        ("b1", Done, Some(Standalone), None, (1, 1, 1)),
        ("b2", Done, None, None, (1, 5, 6)),
    ]);
    backups[0].end_wal = None;
    assert_eq!(
        wal_cleanup_for_delete(&backups, "b2", Retention, true),
        None
    );
}

#[test]
fn no_b_means_no_timeline_protection() {
    // get_timelines_to_protect returns an empty set when remove_until is None,
    // even though b2 (STARTED, timeline 2) is still there.
    let backups = summaries(&[
        ("b1", Done, None, None, (1, 1, 1)),
        ("b2", Started, None, None, (2, 5, 5)),
    ]);
    let cleanup = wal_cleanup_for_delete(&backups, "b1", Manual, false).unwrap();
    assert_eq!(cleanup, WalCleanup::default());
    assert!(!cleanup.keeps("000000020000000000000005"));
}

#[test]
fn b_without_begin_wal_has_no_lower_bound() {
    // Concurrent, last backup, which never got a begin_wal: Barman's
    // `backup_info.begin_wal is not None` test fails, nothing bounds the removal.
    let backups = vec![BackupSummary::new("b1", Failed)];
    let cleanup = wal_cleanup_for_delete(&backups, "b1", Manual, true).unwrap();
    assert_eq!(cleanup.keep_from, None);
    assert_eq!(
        cleanup.removable(ARCHIVE.iter().copied()).len(),
        ARCHIVE.len() - 1
    );
}

#[test]
fn keep_reasons_follow_barmans_order() {
    let cleanup = WalCleanup {
        keep_from: Some(w(1, 8)),
        protected_timelines: BTreeSet::from([3]),
        protected_ranges: vec![(w(1, 2), w(1, 3))],
    };
    let reason = |name: &str| cleanup.keep_reason(name);
    assert_eq!(reason("00000001.history"), Some(WalKeepReason::History));
    assert_eq!(reason("00000009.history"), Some(WalKeepReason::History));
    assert_eq!(
        reason("000000030000000000000001"),
        Some(WalKeepReason::ProtectedTimeline(3))
    );
    assert_eq!(
        reason("000000010000000000000002"),
        Some(WalKeepReason::ProtectedRange(0))
    );
    assert_eq!(
        reason("000000010000000000000003.000000D8.backup"),
        Some(WalKeepReason::ProtectedRange(0))
    );
    assert_eq!(reason("000000010000000000000003.partial"), None);
    assert_eq!(reason("000000010000000000000007"), None);
    assert_eq!(
        reason("000000010000000000000008"),
        Some(WalKeepReason::NotBeforeKeepFrom)
    );
    assert_eq!(
        reason("000000010000000000000008.partial"),
        Some(WalKeepReason::NotBeforeKeepFrom)
    );
    assert_eq!(reason("000000010000000000000007.00000028.backup"), None);
}

#[test]
fn names_that_are_not_wal_files_are_never_removed() {
    let cleanup = WalCleanup::default();
    for bad in [
        "",
        "foo",
        "00000001000000000000000G",
        "0000000100000000000000010",
        "00000001000000000000000",
        "000000010000000000000001.gz",
        "000000010000000000000001.0000028.backup",
        "000000010000000000000001.00000028.backup.x",
        "0000000X.history",
        "00000001.history.partial",
    ] {
        assert_eq!(
            cleanup.keep_reason(bad),
            Some(WalKeepReason::NotAWalName),
            "{bad:?}"
        );
    }
    // Lower-case hex is a WAL name for Barman's regex; it is compared as is.
    assert_eq!(cleanup.keep_reason("0000000a00000000000000ff"), None);
}

#[test]
fn comparisons_are_plain_string_comparisons() {
    let cleanup = WalCleanup {
        keep_from: Some("00000001000000000000000A".into()),
        ..WalCleanup::default()
    };
    // 'a' (0x61) sorts after 'A' (0x41): a lower-case name is "newer".
    assert!(cleanup.keeps("00000001000000000000000a"));
    assert!(!cleanup.keeps("000000010000000000000009"));
    assert!(cleanup.keeps("00000001000000000000000A.00000028.backup"));
    assert!(!cleanup.keeps("000000010000000000000009.00000028.backup"));
}

#[test]
fn removable_keeps_input_order() {
    let cleanup = WalCleanup {
        keep_from: Some(w(1, 5)),
        ..WalCleanup::default()
    };
    let names = [
        w(1, 4),
        w(1, 9),
        w(1, 1),
        "00000001.history".to_owned(),
        w(1, 3),
    ];
    assert_eq!(
        cleanup.removable(names.iter().map(String::as_str)),
        [w(1, 4), w(1, 1), w(1, 3)]
    );
}

#[test]
fn first_backup_needs_a_begin_wal() {
    assert_eq!(
        wal_cleanup_for_first_backup(&BackupSummary::new("b1", Started)),
        None
    );
    let b = BackupSummary::new("b1", Started).wals(w(1, 5), w(1, 6));
    assert_eq!(
        wal_cleanup_for_first_backup(&b),
        Some(WalCleanup {
            keep_from: Some(w(1, 5)),
            ..WalCleanup::default()
        })
    );
}

#[test]
fn first_backup_ignores_older_failed_and_started_backups() {
    let backups = summaries(&[
        ("b1", Failed, None, None, (1, 1, 1)),
        ("b2", Started, None, None, (1, 2, 2)),
        ("b3", Started, None, None, (1, 3, 3)),
        ("b4", Done, None, None, (1, 4, 4)),
        ("b5", Started, None, None, (1, 5, 5)),
    ]);
    assert!(is_first_backup(&backups, "b3"));
    assert!(!is_first_backup(&backups, "b5"), "b4 is DONE");
    let backups = summaries(&[
        ("b1", WaitingForWals, None, None, (1, 1, 1)),
        ("b2", Started, None, None, (1, 2, 2)),
    ]);
    assert!(!is_first_backup(&backups, "b2"));
}
