//! Property tests of `evaluate`: facts that hold for every catalog by
//! Barman's rules (BARMAN-BEHAVIOUR.md §6.2–6.3), checked on random ones.

use barman_retention::{
    BackupStatus, BackupSummary, KeepTarget, RetentionPolicy, RetentionReport, RetentionStatus,
    WindowUnit, evaluate,
};
use proptest::prelude::*;

const DAY: i64 = 86_400;
const NOW: i64 = 1_800_000_000;

fn status() -> impl Strategy<Value = BackupStatus> {
    prop::sample::select(BackupStatus::ALL.to_vec())
}

fn keep() -> impl Strategy<Value = Option<KeepTarget>> {
    prop_oneof![
        6 => Just(None),
        1 => Just(Some(KeepTarget::Full)),
        1 => Just(Some(KeepTarget::Standalone)),
    ]
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    let unit = prop::sample::select(vec![
        WindowUnit::Days,
        WindowUnit::Weeks,
        WindowUnit::Months,
    ]);
    prop_oneof![
        (1u32..6).prop_map(RetentionPolicy::Redundancy),
        (1u32..4, unit).prop_map(|(count, unit)| RetentionPolicy::RecoveryWindow { count, unit }),
    ]
}

/// Full backups `b00`, `b01`, … with random statuses, end times (in any
/// order, some missing) and keep annotations.
fn full_backups(keeps: bool) -> impl Strategy<Value = Vec<BackupSummary>> {
    prop::collection::vec(
        (status(), prop::option::weighted(0.9, 0..120 * DAY), keep()),
        0..14,
    )
    .prop_map(move |rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (status, ago, keep))| {
                let mut b = BackupSummary::new(format!("b{i:02}"), status);
                b.end_time = ago.map(|a| NOW - a);
                b.keep = if keeps { keep } else { None };
                b
            })
            .collect()
    })
}

/// DONE backups (without a keep annotation unless `keeps`), newest first.
fn done_newest_first(backups: &[BackupSummary], keeps: bool) -> Vec<&BackupSummary> {
    let mut done: Vec<&BackupSummary> = backups
        .iter()
        .filter(|b| b.status == BackupStatus::Done && (keeps || b.keep.is_none()))
        .collect();
    done.sort_by(|a, b| b.id.cmp(&a.id));
    done
}

/// The labels of `backups` in `report`.
fn labels(backups: &[&BackupSummary], report: &RetentionReport) -> Vec<RetentionStatus> {
    backups.iter().map(|b| report.status_of(&b.id)).collect()
}

proptest! {
    /// §6.2: with no keeps, the newest `min(#DONE, max(n, m))` DONE backups
    /// are VALID, every older DONE one OBSOLETE, every other status `-`.
    #[test]
    fn redundancy_keeps_exactly_the_newest_max_n_m(
        backups in full_backups(false),
        n in 1u32..6,
        m in 0u32..8,
    ) {
        let report = evaluate(&RetentionPolicy::Redundancy(n), &backups, NOW, m);
        let labels = labels(&done_newest_first(&backups, true), &report);
        let kept = labels.len().min(n.max(m) as usize);
        let mut expected = vec![RetentionStatus::Valid; kept];
        expected.resize(labels.len(), RetentionStatus::Obsolete);
        prop_assert_eq!(labels, expected);
        for b in backups.iter().filter(|b| !matches!(b.status, BackupStatus::Done | BackupStatus::Empty)) {
            prop_assert_eq!(report.status_of(&b.id), RetentionStatus::None);
        }
        prop_assert_eq!(
            report.decisions.len(),
            backups.iter().filter(|b| b.status != BackupStatus::Empty).count()
        );
    }

    /// Walking DONE backups without keeps from newest to oldest, the label
    /// only ever worsens: VALID, then OBSOLETE*, then OBSOLETE.
    #[test]
    fn a_newer_done_backup_is_never_more_obsolete(
        backups in full_backups(true),
        policy in policy(),
        m in 0u32..6,
    ) {
        let report = evaluate(&policy, &backups, NOW, m);
        let rank = |s: RetentionStatus| match s {
            RetentionStatus::Valid => 0,
            RetentionStatus::PotentiallyObsolete => 1,
            RetentionStatus::Obsolete => 2,
            other => panic!("a DONE backup without keep labelled {other}"),
        };
        let ranks: Vec<u8> = labels(&done_newest_first(&backups, false), &report)
            .into_iter()
            .map(rank)
            .collect();
        prop_assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{:?}", ranks);
    }

    /// The newest DONE backup is always kept (VALID or by its annotation),
    /// and at least `min(#DONE, minimum_redundancy)` DONE backups are not
    /// OBSOLETE, under either policy.
    #[test]
    fn the_newest_and_minimum_redundancy_backups_survive(
        backups in full_backups(true),
        policy in policy(),
        m in 0u32..6,
    ) {
        let report = evaluate(&policy, &backups, NOW, m);
        let labels = labels(&done_newest_first(&backups, true), &report);
        if let Some(newest) = labels.first() {
            prop_assert!(*newest == RetentionStatus::Valid || newest.is_keep(), "{}", newest);
        }
        let surviving = labels.iter().filter(|s| **s != RetentionStatus::Obsolete).count();
        prop_assert!(surviving >= labels.len().min(m as usize), "{:?}", labels);
    }
}
