//! The case table for [`evaluate`]: each case lists backups and the labels
//! Barman's `_backup_report` gives them (BARMAN-BEHAVIOUR.md §6.2–6.4).

use super::*;
use crate::warning::RetentionWarning;

const DAY: i64 = 86_400;
const NOW: i64 = 1_800_000_000;

/// `(id, status, ended seconds ago, keep, parent)`; `None` = no end time.
type Row = (
    &'static str,
    BackupStatus,
    Option<i64>,
    Option<KeepTarget>,
    Option<&'static str>,
);

use BackupStatus::{Done, Empty, Failed, WaitingForWals};
use KeepTarget::{Full, Standalone};

/// Ended `days` days ago.
#[expect(
    clippy::unnecessary_wraps,
    reason = "rows hold `Option`; `None` = no end time"
)]
const fn d(days: i64) -> Option<i64> {
    Some(days * DAY)
}

/// Ended `secs` seconds ago.
#[expect(
    clippy::unnecessary_wraps,
    reason = "rows hold `Option`; `None` = no end time"
)]
const fn s(secs: i64) -> Option<i64> {
    Some(secs)
}

fn summaries(rows: &[Row]) -> Vec<BackupSummary> {
    rows.iter()
        .map(|&(id, status, ago, keep, parent)| {
            let mut b = BackupSummary::new(id, status);
            b.end_time = ago.map(|secs| NOW - secs);
            b.keep = keep;
            b.parent_backup_id = parent.map(str::to_owned);
            b
        })
        .collect()
}

fn labels(report: &RetentionReport) -> Vec<(String, String)> {
    report
        .decisions
        .iter()
        .map(|d| (d.backup_id.clone(), d.status.to_string()))
        .collect()
}

struct Case {
    name: &'static str,
    policy: &'static str,
    minimum_redundancy: u32,
    backups: &'static [Row],
    /// Expected labels, newest first (the report's order).
    expected: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "redundancy keeps the newest n",
        policy: "REDUNDANCY 2",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(40), None, None),
            ("b2", Done, d(30), None, None),
            ("b3", Done, d(20), None, None),
            ("b4", Done, d(10), None, None),
        ],
        expected: &[
            ("b4", "VALID"),
            ("b3", "VALID"),
            ("b2", "OBSOLETE"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        name: "minimum redundancy raises a lower redundancy",
        policy: "REDUNDANCY 1",
        minimum_redundancy: 2,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), None, None),
        ],
        expected: &[("b3", "VALID"), ("b2", "VALID"), ("b1", "OBSOLETE")],
    },
    Case {
        name: "non-DONE backups get '-' and use no slot; EMPTY is not reported",
        policy: "REDUNDANCY 2",
        minimum_redundancy: 0,
        backups: &[
            ("b0", Done, d(50), None, None),
            ("b1", Done, d(40), None, None),
            ("b2", WaitingForWals, d(30), None, None),
            ("b3", Done, d(20), None, None),
            ("b4", Failed, None, None, None),
            ("b5", Empty, None, None, None),
        ],
        expected: &[
            ("b4", "-"),
            ("b3", "VALID"),
            ("b2", "-"),
            ("b1", "VALID"),
            ("b0", "OBSOLETE"),
        ],
    },
    Case {
        name: "kept backups win but still use a redundancy slot",
        policy: "REDUNDANCY 2",
        minimum_redundancy: 0,
        backups: &[
            ("b0", Done, d(40), Some(Standalone), None),
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), Some(Full), None),
        ],
        expected: &[
            ("b3", "KEEP:FULL"),
            ("b2", "VALID"),
            ("b1", "OBSOLETE"),
            ("b0", "KEEP:STANDALONE"),
        ],
    },
    Case {
        name: "incrementals inherit their root's label, down the whole chain",
        policy: "REDUNDANCY 1",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(40), None, None),
            ("b2", Done, d(35), None, Some("b1")),
            ("b3", Done, d(30), None, Some("b2")),
            ("b4", Done, d(20), None, None),
            ("b5", Done, d(10), None, Some("b4")),
        ],
        expected: &[
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "OBSOLETE"),
            ("b2", "OBSOLETE"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        name: "standalone root: children VALID inside the policy, OBSOLETE outside",
        policy: "REDUNDANCY 1",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(40), Some(Standalone), None),
            ("b2", Done, d(35), None, Some("b1")),
            ("b3", Done, d(20), Some(Standalone), None),
            ("b4", Done, d(10), None, Some("b3")),
        ],
        expected: &[
            ("b4", "VALID"),
            ("b3", "KEEP:STANDALONE"),
            ("b2", "OBSOLETE"),
            ("b1", "KEEP:STANDALONE"),
        ],
    },
    Case {
        name: "full-kept root outside the policy: children VALID",
        policy: "REDUNDANCY 1",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(40), Some(Full), None),
            ("b2", Done, d(35), None, Some("b1")),
            ("b3", Done, d(20), None, None),
        ],
        expected: &[("b3", "VALID"), ("b2", "VALID"), ("b1", "KEEP:FULL")],
    },
    Case {
        name: "non-DONE root passes '-'; orphan and EMPTY-rooted incrementals get '-'",
        policy: "REDUNDANCY 3",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Failed, None, None, None),
            ("b2", Done, d(35), None, Some("b1")),
            ("b3", Done, d(30), None, Some("gone")),
            ("b4", Empty, None, None, None),
            ("b5", Done, d(10), None, Some("b4")),
            ("b6", Done, d(5), None, None),
        ],
        expected: &[
            ("b6", "VALID"),
            ("b5", "-"),
            ("b3", "-"),
            ("b2", "-"),
            ("b1", "-"),
        ],
    },
    Case {
        name: "window keeps down to the newest backup ending before the PoR",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), None, None),
            ("b4", Done, d(3), None, None),
            ("b5", Done, d(1), None, None),
        ],
        expected: &[
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "VALID"),
            ("b2", "OBSOLETE"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        name: "window: minimum redundancy turns the next ones into OBSOLETE*",
        policy: "RECOVERY WINDOW OF 1 WEEKS",
        minimum_redundancy: 4,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), None, None),
            ("b4", Done, d(3), None, None),
            ("b5", Done, d(1), None, None),
        ],
        expected: &[
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "VALID"),
            ("b2", "OBSOLETE*"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        name: "window: a kept backup past the PoR counts towards minimum redundancy",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 4,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(25), None, None),
            ("b3", Done, d(20), Some(Standalone), None),
            ("b4", Done, d(10), None, None),
            ("b5", Done, d(1), None, None),
            ("b0", Done, d(40), Some(Full), None),
        ],
        expected: &[
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "KEEP:STANDALONE"),
            ("b2", "OBSOLETE*"),
            ("b1", "OBSOLETE"),
            ("b0", "KEEP:FULL"),
        ],
    },
    Case {
        name: "window: all inside, missing end time, end exactly at PoR",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(7), None, None),
            ("b2", Done, None, None, None),
            ("b3", Failed, d(2), None, None),
            ("b4", Done, d(1), None, None),
        ],
        expected: &[
            ("b4", "VALID"),
            ("b3", "-"),
            ("b2", "VALID"),
            ("b1", "VALID"),
        ],
    },
    Case {
        name: "window: standalone root that is the PoR base passes OBSOLETE (Barman's `found`)",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(10), Some(Standalone), None),
            ("b2", Done, d(9), None, Some("b1")),
            ("b3", Done, d(3), Some(Standalone), None),
            ("b4", Done, d(2), None, Some("b3")),
        ],
        expected: &[
            ("b4", "VALID"),
            ("b3", "KEEP:STANDALONE"),
            ("b2", "OBSOLETE"),
            ("b1", "KEEP:STANDALONE"),
        ],
    },
    // ---- What users trip over (§6.2-6.4 and retention_policies.py) ----
    Case {
        // §6.2: i = 0 < r = 1.
        name: "REDUNDANCY 1 with one DONE backup: it is VALID",
        policy: "REDUNDANCY 1",
        minimum_redundancy: 0,
        backups: &[("b1", Done, d(3), None, None)],
        expected: &[("b1", "VALID")],
    },
    Case {
        // §6.2: a non-DONE backup gets '-' and `i` is not incremented.
        name: "a FAILED newest backup gets '-' and takes no slot",
        policy: "REDUNDANCY 1",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(20), None, None),
            ("b2", Done, d(10), None, None),
            ("b3", Failed, None, None, None),
        ],
        expected: &[("b3", "-"), ("b2", "VALID"), ("b1", "OBSOLETE")],
    },
    Case {
        // §6.2: only DONE backups are judged; WAITING_FOR_WALS is not DONE.
        name: "a WAITING_FOR_WALS newest backup gets '-'; slots count from the newest DONE",
        policy: "REDUNDANCY 2",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), None, None),
            ("b4", WaitingForWals, d(1), None, None),
        ],
        expected: &[
            ("b4", "-"),
            ("b3", "VALID"),
            ("b2", "VALID"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        // §6.3: `valid` counts DONE backups only; b3 is the PoR base (valid = 1),
        // b2 OBSOLETE* (valid = 2), b1 OBSOLETE.
        name: "window: a WAITING_FOR_WALS newest backup does not count towards minimum_redundancy",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 2,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), None, None),
            ("b4", WaitingForWals, d(1), None, None),
        ],
        expected: &[
            ("b4", "-"),
            ("b3", "VALID"),
            ("b2", "OBSOLETE*"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        // §6.3: `found` never becomes true; every DONE backup is VALID.
        name: "window: every backup inside the window is VALID, however many",
        policy: "RECOVERY WINDOW OF 2 WEEKS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(13), None, None),
            ("b2", Done, d(10), None, None),
            ("b3", Done, d(5), None, None),
            ("b4", Done, d(1), None, None),
            ("b5", Done, d(0), None, None),
        ],
        expected: &[
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "VALID"),
            ("b2", "VALID"),
            ("b1", "VALID"),
        ],
    },
    Case {
        // §6.3: the newest backup ending before the PoR is VALID (needed to recover
        // to the PoR), even when no backup lies inside the window.
        name: "window: no backup inside the window: the newest is still VALID",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(40), None, None),
            ("b2", Done, d(30), None, None),
            ("b3", Done, d(20), None, None),
        ],
        expected: &[("b3", "VALID"), ("b2", "OBSOLETE"), ("b1", "OBSOLETE")],
    },
    Case {
        // §6.3: `end_time < PoR` is strict: b2 ending exactly at the PoR is inside,
        // so b1 becomes the base and only b0 is OBSOLETE.
        name: "window: end_time equal to the PoR is inside the window",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b0", Done, d(12), None, None),
            ("b1", Done, d(9), None, None),
            ("b2", Done, s(7 * DAY), None, None),
            ("b3", Done, d(1), None, None),
        ],
        expected: &[
            ("b3", "VALID"),
            ("b2", "VALID"),
            ("b1", "VALID"),
            ("b0", "OBSOLETE"),
        ],
    },
    Case {
        // §6.3: one second before the PoR is before it: b1 is the base.
        name: "window: one second before the PoR makes the base; the next older is OBSOLETE",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b0", Done, d(9), None, None),
            ("b1", Done, s(7 * DAY + 1), None, None),
            ("b2", Done, d(1), None, None),
        ],
        expected: &[("b2", "VALID"), ("b1", "VALID"), ("b0", "OBSOLETE")],
    },
    Case {
        // §6.3: a month is 31 days: 30.5 days ago is inside, 31 days + 1 s is the
        // base. With 30-day months b2 would be the base and b1 OBSOLETE.
        name: "window: months are 31 days",
        policy: "RECOVERY WINDOW OF 1 MONTHS",
        minimum_redundancy: 0,
        backups: &[
            ("b0", Done, d(40), None, None),
            ("b1", Done, s(31 * DAY + 1), None, None),
            ("b2", Done, s(30 * DAY + DAY / 2), None, None),
            ("b3", Done, d(1), None, None),
        ],
        expected: &[
            ("b3", "VALID"),
            ("b2", "VALID"),
            ("b1", "VALID"),
            ("b0", "OBSOLETE"),
        ],
    },
    Case {
        // §6.2: kept backups increment `i`: the two newest are kept, so the
        // two slots are used and every other DONE backup is OBSOLETE.
        name: "two kept newest backups use both REDUNDANCY 2 slots",
        policy: "REDUNDANCY 2",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), Some(Standalone), None),
            ("b4", Done, d(5), Some(Full), None),
        ],
        expected: &[
            ("b4", "KEEP:FULL"),
            ("b3", "KEEP:STANDALONE"),
            ("b2", "OBSOLETE"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        // §6.2: r = max(1, 5) = 5 > 3 DONE backups.
        name: "minimum_redundancy above the number of DONE backups keeps them all",
        policy: "REDUNDANCY 1",
        minimum_redundancy: 5,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), None, None),
        ],
        expected: &[("b3", "VALID"), ("b2", "VALID"), ("b1", "VALID")],
    },
    Case {
        // §6.2: r = max(3, 1) = 3.
        name: "minimum_redundancy below the redundancy changes nothing",
        policy: "REDUNDANCY 3",
        minimum_redundancy: 1,
        backups: &[
            ("b1", Done, d(40), None, None),
            ("b2", Done, d(30), None, None),
            ("b3", Done, d(20), None, None),
            ("b4", Done, d(10), None, None),
        ],
        expected: &[
            ("b4", "VALID"),
            ("b3", "VALID"),
            ("b2", "VALID"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        // §6.3: valid = 2 after the base; 2, 3, 4 < 10, so every older one is OBSOLETE*.
        name: "window: minimum_redundancy above the backup count makes every older one OBSOLETE*",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 10,
        backups: &[
            ("b1", Done, d(40), None, None),
            ("b2", Done, d(30), None, None),
            ("b3", Done, d(20), None, None),
            ("b4", Done, d(10), None, None),
            ("b5", Done, d(1), None, None),
        ],
        expected: &[
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "OBSOLETE*"),
            ("b2", "OBSOLETE*"),
            ("b1", "OBSOLETE*"),
        ],
    },
    Case {
        // §6.3: `valid += 1` for kept backups inside the window too: b5, b4, b3
        // make valid = 3 = minimum_redundancy, so b2 is plain OBSOLETE.
        name: "window: kept backups inside the window count towards minimum_redundancy",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 3,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", Done, d(10), None, None),
            ("b4", Done, d(2), Some(Full), None),
            ("b5", Done, d(1), Some(Standalone), None),
        ],
        expected: &[
            ("b5", "KEEP:STANDALONE"),
            ("b4", "KEEP:FULL"),
            ("b3", "VALID"),
            ("b2", "OBSOLETE"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        // §6.4 with `found`: both roots are older than the PoR base b5; the
        // standalone one passes OBSOLETE, the full one VALID.
        name: "window: keep:standalone root outside the policy -> children OBSOLETE; keep:full -> VALID",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(30), Some(Standalone), None),
            ("b2", Done, d(29), None, Some("b1")),
            ("b3", Done, d(25), Some(Full), None),
            ("b4", Done, d(24), None, Some("b3")),
            ("b5", Done, d(10), None, None),
            ("b6", Done, d(1), None, None),
        ],
        expected: &[
            ("b6", "VALID"),
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "KEEP:FULL"),
            ("b2", "OBSOLETE"),
            ("b1", "KEEP:STANDALONE"),
        ],
    },
    Case {
        // §6.4: `found` is still false at b2 (it ended inside the window).
        name: "window: keep:standalone root inside the window -> children VALID",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(10), None, None),
            ("b2", Done, d(3), Some(Standalone), None),
            ("b3", Done, d(2), None, Some("b2")),
            ("b4", Done, d(1), None, None),
        ],
        expected: &[
            ("b4", "VALID"),
            ("b3", "VALID"),
            ("b2", "KEEP:STANDALONE"),
            ("b1", "VALID"),
        ],
    },
    Case {
        // §6.4: `i > r` is strict: b3 takes slot 2 of 2 (i = 2, not outside),
        // b1 slot 3 (i = 3 > 2, outside).
        name: "redundancy: a keep:standalone root in the last slot still passes VALID",
        policy: "REDUNDANCY 2",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(30), Some(Standalone), None),
            ("b2", Done, d(29), None, Some("b1")),
            ("b3", Done, d(20), Some(Standalone), None),
            ("b4", Done, d(19), None, Some("b3")),
            ("b5", Done, d(10), None, None),
        ],
        expected: &[
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "KEEP:STANDALONE"),
            ("b2", "OBSOLETE"),
            ("b1", "KEEP:STANDALONE"),
        ],
    },
    Case {
        // §6.1: incrementals are skipped in the main loop, so they use no slot.
        name: "incremental backups take no redundancy slot",
        policy: "REDUNDANCY 2",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(40), None, None),
            ("b2", Done, d(30), None, None),
            ("b3", Done, d(25), None, Some("b2")),
            ("b4", Done, d(20), None, Some("b3")),
            ("b5", Done, d(10), None, None),
            ("b6", Done, d(5), None, Some("b5")),
        ],
        expected: &[
            ("b6", "VALID"),
            ("b5", "VALID"),
            ("b4", "VALID"),
            ("b3", "VALID"),
            ("b2", "VALID"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        // §6.4: propagation walks the whole tree whatever the child's status
        // (Barman records failed incrementals as children so they get deleted too).
        name: "an OBSOLETE root passes OBSOLETE even to a FAILED child",
        policy: "REDUNDANCY 1",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Failed, None, None, Some("b1")),
            ("b3", Done, d(10), None, None),
        ],
        expected: &[("b3", "VALID"), ("b2", "OBSOLETE"), ("b1", "OBSOLETE")],
    },
    Case {
        // §6.3: a non-DONE backup is skipped before the `end_time < PoR` test,
        // so it cannot be the base.
        name: "window: a WAITING_FOR_WALS backup before the PoR is not the base",
        policy: "RECOVERY WINDOW OF 7 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(30), None, None),
            ("b2", Done, d(20), None, None),
            ("b3", WaitingForWals, d(10), None, None),
            ("b4", Done, d(1), None, None),
        ],
        expected: &[
            ("b4", "VALID"),
            ("b3", "-"),
            ("b2", "VALID"),
            ("b1", "OBSOLETE"),
        ],
    },
    Case {
        // §6.3: the first DONE backup seen is VALID whatever its age.
        name: "window: the only DONE backup is VALID however old, behind a FAILED newest",
        policy: "RECOVERY WINDOW OF 1 DAYS",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Done, d(90), None, None),
            ("b2", Failed, None, None, None),
        ],
        expected: &[("b2", "-"), ("b1", "VALID")],
    },
    Case {
        // §6.1: nothing to judge.
        name: "no backups: empty report",
        policy: "RECOVERY WINDOW OF 1 DAYS",
        minimum_redundancy: 2,
        backups: &[],
        expected: &[],
    },
];

#[test]
fn case_table() {
    assert!(CASES.len() >= 30, "{} cases", CASES.len());
    for case in CASES {
        let policy: RetentionPolicy = case.policy.parse().unwrap();
        let report = evaluate(
            &policy,
            &summaries(case.backups),
            NOW,
            case.minimum_redundancy,
        );
        let expected: Vec<(String, String)> = case
            .expected
            .iter()
            .map(|&(id, label)| (id.to_owned(), label.to_owned()))
            .collect();
        assert_eq!(labels(&report), expected, "case: {}", case.name);
    }
}

#[test]
fn redundancy_reasons_carry_position_and_slots() {
    let backups = summaries(&[
        ("b1", Done, d(30), None, None),
        ("b2", Done, d(20), Some(Full), None),
        ("b3", Done, d(10), None, None),
    ]);
    let report = evaluate(&RetentionPolicy::Redundancy(1), &backups, NOW, 2);
    let reason = |id: &str| report.get(id).unwrap().reason.clone();
    assert_eq!(
        reason("b3"),
        Reason::WithinRedundancy {
            position: 1,
            redundancy: 2
        }
    );
    assert_eq!(reason("b2"), Reason::KeepAnnotation { target: Full });
    assert_eq!(
        reason("b1"),
        Reason::BeyondRedundancy {
            position: 3,
            redundancy: 2
        }
    );
    assert_eq!(
        reason("b1").to_string(),
        "DONE full backup #3 (newest first) is beyond REDUNDANCY 2"
    );
}

#[test]
fn window_reasons_name_the_point_of_recoverability() {
    let backups = summaries(&[
        ("b1", Done, d(30), None, None),
        ("b2", Done, d(20), None, None),
        ("b3", Done, d(10), None, None),
        ("b4", Done, d(1), None, None),
        ("b5", Failed, None, None, None),
        ("b6", Done, d(1), None, Some("b4")),
    ]);
    let policy: RetentionPolicy = "RECOVERY WINDOW OF 7 DAYS".parse().unwrap();
    let report = evaluate(&policy, &backups, NOW, 3);
    let por = NOW - 7 * DAY;
    let reason = |id: &str| report.get(id).unwrap().reason.clone();
    assert_eq!(
        reason("b4"),
        Reason::InsideRecoveryWindow {
            point_of_recoverability: por
        }
    );
    assert_eq!(
        reason("b3"),
        Reason::NeededForPointOfRecoverability {
            point_of_recoverability: por
        }
    );
    assert_eq!(
        reason("b2"),
        Reason::MinimumRedundancy {
            minimum_redundancy: 3
        }
    );
    assert_eq!(
        reason("b1"),
        Reason::OlderThanRecoveryWindow {
            point_of_recoverability: por
        }
    );
    assert_eq!(reason("b5"), Reason::NotDone { status: Failed });
    assert_eq!(
        reason("b6"),
        Reason::Inherited {
            root: "b4".into(),
            root_status: RetentionStatus::Valid
        }
    );
    assert!(reason("b2").to_string().contains("minimum_redundancy = 3"));
}

#[test]
fn orphan_reason_names_the_missing_link() {
    let backups = summaries(&[
        ("b2", Done, d(5), None, Some("b1")),
        ("b3", Done, d(4), None, Some("b2")),
    ]);
    let report = evaluate(&RetentionPolicy::Redundancy(2), &backups, NOW, 0);
    for id in ["b2", "b3"] {
        assert_eq!(
            report.get(id).unwrap().reason,
            Reason::MissingChainRoot {
                missing: "b1".into()
            }
        );
    }
}

#[test]
fn parent_cycle_does_not_hang() {
    let backups = summaries(&[
        ("b1", Done, d(5), None, Some("b2")),
        ("b2", Done, d(4), None, Some("b1")),
    ]);
    let report = evaluate(&RetentionPolicy::Redundancy(2), &backups, NOW, 0);
    assert_eq!(report.status_of("b1"), RetentionStatus::None);
    assert_eq!(report.status_of("b2"), RetentionStatus::None);
}

#[test]
fn obsolete_ids_are_oldest_first_and_exclude_potentially_obsolete() {
    let backups = summaries(&[
        ("b1", Done, d(40), None, None),
        ("b2", Done, d(30), None, None),
        ("b3", Done, d(20), None, None),
        ("b4", Done, d(10), None, None),
        ("b5", Done, d(1), None, None),
    ]);
    let policy: RetentionPolicy = "RECOVERY WINDOW OF 7 DAYS".parse().unwrap();
    let report = evaluate(&policy, &backups, NOW, 3);
    assert_eq!(report.status_of("b3"), RetentionStatus::PotentiallyObsolete);
    assert_eq!(report.obsolete_ids(), ["b1", "b2"]);
    assert_eq!(report.status_of("unknown"), RetentionStatus::None);
}

#[test]
fn input_order_does_not_matter() {
    let rows: &[Row] = &[
        ("b1", Done, d(30), None, None),
        ("b3", Done, d(10), None, Some("b2")),
        ("b2", Done, d(20), None, None),
        ("b4", Done, d(5), None, None),
    ];
    let forward = summaries(rows);
    let mut backward = forward.clone();
    backward.reverse();
    let policy = RetentionPolicy::Redundancy(1);
    assert_eq!(
        evaluate(&policy, &forward, NOW, 0),
        evaluate(&policy, &backward, NOW, 0)
    );
}

#[test]
fn redundancy_below_minimum_warns_even_without_backups() {
    // RedundancyRetentionPolicy._backup_report warns before looking at backups.
    let report = evaluate(&RetentionPolicy::Redundancy(1), &[], NOW, 3);
    assert_eq!(
        report.warnings,
        [RetentionWarning::RedundancyBelowMinimum {
            redundancy: 1,
            minimum_redundancy: 3
        }]
    );
    assert_eq!(
        report.warnings[0].to_string(),
        "Retention policy redundancy (1) is lower than the required minimum redundancy (3). Enforce 3."
    );
    // Not lower: no warning.
    let report = evaluate(&RetentionPolicy::Redundancy(3), &[], NOW, 3);
    assert!(report.warnings.is_empty());
    // A window policy has no such warning.
    let policy: RetentionPolicy = "RECOVERY WINDOW OF 1 DAYS".parse().unwrap();
    assert!(evaluate(&policy, &[], NOW, 3).warnings.is_empty());
}

#[test]
fn window_warns_once_per_backup_kept_for_minimum_redundancy() {
    // b3 (standalone, past the PoR, valid < 4) is kept by its annotation:
    // Barman logs that at INFO, no warning. b2 is OBSOLETE*: one warning.
    let backups = summaries(&[
        ("b0", Done, d(40), Some(Full), None),
        ("b1", Done, d(30), None, None),
        ("b2", Done, d(25), None, None),
        ("b3", Done, d(20), Some(Standalone), None),
        ("b4", Done, d(10), None, None),
        ("b5", Done, d(1), None, None),
    ]);
    let policy: RetentionPolicy = "RECOVERY WINDOW OF 7 DAYS".parse().unwrap();
    let report = evaluate(&policy, &backups, NOW, 4);
    assert_eq!(report.status_of("b2"), RetentionStatus::PotentiallyObsolete);
    assert_eq!(
        report.warnings,
        [RetentionWarning::KeptForMinimumRedundancy {
            backup_id: "b2".into(),
            point_of_recoverability: NOW - 7 * DAY,
            minimum_redundancy: 4
        }]
    );
    assert_eq!(
        report.warnings[0].message("main"),
        "Keeping obsolete backup b2 for server main (older than 2027-01-08 08:00:00+00:00) due to minimum redundancy requirements (4)"
    );
}
