//! Property test of WAL retention: deleting a backup never removes a WAL
//! that a remaining backup needs (DESIGN.md §4 invariant, which Barman's
//! `delete_backup` rules give when backup ids, timelines and WAL positions
//! grow together, as they do in a real catalog).

use barman_retention::{
    BackupStatus, BackupSummary, DeleteKind, KeepTarget, wal_cleanup_for_delete,
};
use proptest::prelude::*;

fn name(tli: u32, seg: u32) -> String {
    format!("{tli:08X}{:08X}{:08X}", seg / 256, seg % 256)
}

/// Backups `b00`, `b01`, … whose WAL ranges follow each other; the timeline
/// sometimes steps up.
fn catalog() -> impl Strategy<Value = Vec<(BackupSummary, u32, u32, u32)>> {
    let status = prop::sample::select(vec![
        BackupStatus::Done,
        BackupStatus::Done,
        BackupStatus::WaitingForWals,
        BackupStatus::Failed,
        BackupStatus::Started,
    ]);
    let keep = prop_oneof![
        4 => Just(None),
        1 => Just(Some(KeepTarget::Full)),
        2 => Just(Some(KeepTarget::Standalone)),
    ];
    prop::collection::vec(
        (status, keep, 0u32..3, 0u32..4, prop::bool::weighted(0.2)),
        1..9,
    )
    .prop_map(|rows| {
        let (mut tli, mut next) = (1, 1);
        rows.into_iter()
            .enumerate()
            .map(|(i, (status, keep, gap, len, switch))| {
                tli += u32::from(switch);
                let begin = next + gap;
                let end = begin + len;
                next = end + 1;
                let mut b = BackupSummary::new(format!("b{i:02}"), status)
                    .wals(name(tli, begin), name(tli, end));
                if status == BackupStatus::Done {
                    b.keep = keep;
                }
                (b, tli, begin, end)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn deleting_never_removes_a_wal_a_remaining_backup_needs(
        catalog in catalog(),
        pick in any::<prop::sample::Index>(),
        retention in any::<bool>(),
        concurrent in any::<bool>(),
    ) {
        let backups: Vec<BackupSummary> = catalog.iter().map(|(b, ..)| b.clone()).collect();
        let deleting = &backups[pick.index(backups.len())].id;
        let kind = if retention { DeleteKind::Retention } else { DeleteKind::Manual };
        let Some(cleanup) = wal_cleanup_for_delete(&backups, deleting, kind, concurrent) else {
            return Ok(());
        };
        let last = catalog.iter().map(|&(_, _, _, end)| end).max().unwrap_or(0) + 3;
        let top_tli = catalog.last().map_or(1, |&(_, tli, ..)| tli);
        let mut archive: Vec<String> = Vec::new();
        for tli in 1..=top_tli {
            archive.push(format!("{tli:08X}.history"));
            archive.extend((0..=last).map(|seg| name(tli, seg)));
        }
        archive.extend(catalog.iter().map(|(b, ..)| format!("{}.00000028.backup", b.begin_wal.as_deref().unwrap())));
        let removed = cleanup.removable(archive.iter().map(String::as_str));
        prop_assert!(removed.iter().all(|n| !n.ends_with(".history")));
        for (b, tli, begin, end) in &catalog {
            if &b.id == deleting || !b.status.is_copy_done() {
                continue;
            }
            for seg in *begin..=*end {
                let needed = name(*tli, seg);
                prop_assert!(!removed.contains(&needed.as_str()), "{} needs {}; cleanup {:?}", b.id, needed, cleanup);
            }
        }
    }
}
