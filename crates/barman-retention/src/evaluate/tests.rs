//! The case table for [`evaluate`]: each case lists backups and the labels
//! Barman's `_backup_report` gives them (BARMAN-BEHAVIOUR.md §6.2–6.4).

use super::*;

const DAY: i64 = 86_400;
const NOW: i64 = 1_800_000_000;

/// `(id, status, ended days ago, keep, parent)`; `None` days = no end time.
type Row = (
    &'static str,
    BackupStatus,
    Option<i64>,
    Option<KeepTarget>,
    Option<&'static str>,
);

use BackupStatus::{Done, Empty, Failed, WaitingForWals};
use KeepTarget::{Full, Standalone};

fn summaries(rows: &[Row]) -> Vec<BackupSummary> {
    rows.iter()
        .map(|&(id, status, days_ago, keep, parent)| {
            let mut b = BackupSummary::new(id, status);
            b.end_time = days_ago.map(|d| NOW - d * DAY);
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
            ("b1", Done, Some(40), None, None),
            ("b2", Done, Some(30), None, None),
            ("b3", Done, Some(20), None, None),
            ("b4", Done, Some(10), None, None),
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
            ("b1", Done, Some(30), None, None),
            ("b2", Done, Some(20), None, None),
            ("b3", Done, Some(10), None, None),
        ],
        expected: &[("b3", "VALID"), ("b2", "VALID"), ("b1", "OBSOLETE")],
    },
    Case {
        name: "non-DONE backups get '-' and use no slot; EMPTY is not reported",
        policy: "REDUNDANCY 2",
        minimum_redundancy: 0,
        backups: &[
            ("b0", Done, Some(50), None, None),
            ("b1", Done, Some(40), None, None),
            ("b2", WaitingForWals, Some(30), None, None),
            ("b3", Done, Some(20), None, None),
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
            ("b0", Done, Some(40), Some(Standalone), None),
            ("b1", Done, Some(30), None, None),
            ("b2", Done, Some(20), None, None),
            ("b3", Done, Some(10), Some(Full), None),
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
            ("b1", Done, Some(40), None, None),
            ("b2", Done, Some(35), None, Some("b1")),
            ("b3", Done, Some(30), None, Some("b2")),
            ("b4", Done, Some(20), None, None),
            ("b5", Done, Some(10), None, Some("b4")),
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
            ("b1", Done, Some(40), Some(Standalone), None),
            ("b2", Done, Some(35), None, Some("b1")),
            ("b3", Done, Some(20), Some(Standalone), None),
            ("b4", Done, Some(10), None, Some("b3")),
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
            ("b1", Done, Some(40), Some(Full), None),
            ("b2", Done, Some(35), None, Some("b1")),
            ("b3", Done, Some(20), None, None),
        ],
        expected: &[("b3", "VALID"), ("b2", "VALID"), ("b1", "KEEP:FULL")],
    },
    Case {
        name: "non-DONE root passes '-'; orphan and EMPTY-rooted incrementals get '-'",
        policy: "REDUNDANCY 3",
        minimum_redundancy: 0,
        backups: &[
            ("b1", Failed, None, None, None),
            ("b2", Done, Some(35), None, Some("b1")),
            ("b3", Done, Some(30), None, Some("gone")),
            ("b4", Empty, None, None, None),
            ("b5", Done, Some(10), None, Some("b4")),
            ("b6", Done, Some(5), None, None),
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
            ("b1", Done, Some(30), None, None),
            ("b2", Done, Some(20), None, None),
            ("b3", Done, Some(10), None, None),
            ("b4", Done, Some(3), None, None),
            ("b5", Done, Some(1), None, None),
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
            ("b1", Done, Some(30), None, None),
            ("b2", Done, Some(20), None, None),
            ("b3", Done, Some(10), None, None),
            ("b4", Done, Some(3), None, None),
            ("b5", Done, Some(1), None, None),
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
            ("b1", Done, Some(30), None, None),
            ("b2", Done, Some(25), None, None),
            ("b3", Done, Some(20), Some(Standalone), None),
            ("b4", Done, Some(10), None, None),
            ("b5", Done, Some(1), None, None),
            ("b0", Done, Some(40), Some(Full), None),
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
            ("b1", Done, Some(7), None, None),
            ("b2", Done, None, None, None),
            ("b3", Failed, Some(2), None, None),
            ("b4", Done, Some(1), None, None),
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
            ("b1", Done, Some(10), Some(Standalone), None),
            ("b2", Done, Some(9), None, Some("b1")),
            ("b3", Done, Some(3), Some(Standalone), None),
            ("b4", Done, Some(2), None, Some("b3")),
        ],
        expected: &[
            ("b4", "VALID"),
            ("b3", "KEEP:STANDALONE"),
            ("b2", "OBSOLETE"),
            ("b1", "KEEP:STANDALONE"),
        ],
    },
];

#[test]
fn case_table() {
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
        ("b1", Done, Some(30), None, None),
        ("b2", Done, Some(20), Some(Full), None),
        ("b3", Done, Some(10), None, None),
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
        ("b1", Done, Some(30), None, None),
        ("b2", Done, Some(20), None, None),
        ("b3", Done, Some(10), None, None),
        ("b4", Done, Some(1), None, None),
        ("b5", Failed, None, None, None),
        ("b6", Done, Some(1), None, Some("b4")),
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
        ("b2", Done, Some(5), None, Some("b1")),
        ("b3", Done, Some(4), None, Some("b2")),
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
        ("b1", Done, Some(5), None, Some("b2")),
        ("b2", Done, Some(4), None, Some("b1")),
    ]);
    let report = evaluate(&RetentionPolicy::Redundancy(2), &backups, NOW, 0);
    assert_eq!(report.status_of("b1"), RetentionStatus::None);
    assert_eq!(report.status_of("b2"), RetentionStatus::None);
}

#[test]
fn obsolete_ids_are_oldest_first_and_exclude_potentially_obsolete() {
    let backups = summaries(&[
        ("b1", Done, Some(40), None, None),
        ("b2", Done, Some(30), None, None),
        ("b3", Done, Some(20), None, None),
        ("b4", Done, Some(10), None, None),
        ("b5", Done, Some(1), None, None),
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
        ("b1", Done, Some(30), None, None),
        ("b3", Done, Some(10), None, Some("b2")),
        ("b2", Done, Some(20), None, None),
        ("b4", Done, Some(5), None, None),
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
