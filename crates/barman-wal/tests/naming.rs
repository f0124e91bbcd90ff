//! Property tests and fixtures for WAL naming: LSNs, timelines, segment
//! names, archive file names and history files.
//!
//! The `.history` fixtures in `tests/fixtures/history/` were written by
//! PostgreSQL 15 (`pg_ctl promote` twice on a fresh cluster).

use std::path::Path;

use barman_wal::{Lsn, SegmentName, TimelineHistory, TimelineId, WalFileName, WalSegmentSize};
use proptest::prelude::*;

/// The segment sizes every arithmetic property is checked with.
const SIZES: [u64; 4] = [1 << 20, 16 << 20, 64 << 20, 1 << 30];

fn size_strategy() -> impl Strategy<Value = WalSegmentSize> {
    prop::sample::select(SIZES.to_vec()).prop_map(|b| WalSegmentSize::new(b).unwrap())
}

fn tli_strategy() -> impl Strategy<Value = TimelineId> {
    prop_oneof![1u32..=20, 1u32..=u32::MAX].prop_map(|t| TimelineId::new(t).unwrap())
}

/// Any name, including segment numbers PostgreSQL never writes.
/// Half of them from a tiny domain, so that comparisons see equal parts.
fn any_segment() -> impl Strategy<Value = SegmentName> {
    prop_oneof![
        (1u32..=2, 0u32..=1, 0u32..=2),
        (
            1u32..=u32::MAX,
            any::<u32>(),
            prop_oneof![0u32..=0x1000, any::<u32>()]
        ),
    ]
    .prop_map(|(t, l, s)| SegmentName::new(TimelineId::new(t).unwrap(), l, s))
}

/// A segment size and a name that is valid for it.
fn sized_segment() -> impl Strategy<Value = (WalSegmentSize, SegmentName)> {
    size_strategy().prop_flat_map(|size| {
        #[allow(clippy::cast_possible_truncation)]
        let spl = size.segments_per_log() as u32;
        let log = prop_oneof![0u32..=3, any::<u32>()];
        (Just(size), tli_strategy(), log, 0..=spl)
            .prop_map(|(size, t, l, s)| (size, SegmentName::new(t, l, s)))
    })
}

fn wal_file_name() -> impl Strategy<Value = WalFileName> {
    prop_oneof![
        any_segment().prop_map(WalFileName::Segment),
        any_segment().prop_map(WalFileName::Partial),
        prop_oneof![1u32..=2, 1u32..=u32::MAX]
            .prop_map(|t| WalFileName::History(TimelineId::new(t).unwrap())),
        (any_segment(), prop_oneof![0u32..=1, any::<u32>()])
            .prop_map(|(segment, offset)| WalFileName::BackupLabel { segment, offset }),
    ]
}

/// Randomly lower-cases the hex letters of `s`, leaving suffix words alone.
fn mixed_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < 33 && mask >> (i % 64) & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn lsn_display_parse_round_trip(v in any::<u64>()) {
        let lsn = Lsn(v);
        let text = lsn.to_string();
        prop_assert_eq!(text.parse::<Lsn>().unwrap(), lsn);
        // PostgreSQL's form: upper case, no leading zeros.
        let (hi, lo) = text.split_once('/').unwrap();
        prop_assert!(hi == "0" || !hi.starts_with('0'));
        prop_assert!(lo == "0" || !lo.starts_with('0'));
        prop_assert!(!text.chars().any(|c| c.is_ascii_lowercase()));
    }

    #[test]
    fn lsn_parses_padded_and_lower_case(hi in any::<u32>(), lo in any::<u32>()) {
        let expected = Lsn((u64::from(hi) << 32) | u64::from(lo));
        prop_assert_eq!(format!("{hi:08x}/{lo:08x}").parse::<Lsn>().unwrap(), expected);
        prop_assert_eq!(format!("{hi:x}/{lo:X}").parse::<Lsn>().unwrap(), expected);
    }

    #[test]
    fn lsn_arithmetic(a in any::<u64>(), b in any::<u64>()) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert_eq!(Lsn(hi) - Lsn(lo), hi - lo);
        prop_assert_eq!(Lsn(lo) + (hi - lo), Lsn(hi));
        prop_assert_eq!(Lsn(lo).checked_sub(Lsn(hi)), (lo == hi).then_some(0));
        prop_assert_eq!(Lsn(a).checked_add(b), a.checked_add(b).map(Lsn));
    }

    #[test]
    fn timeline_round_trip(t in 1u32..=u32::MAX) {
        let tli = TimelineId::new(t).unwrap();
        prop_assert_eq!(tli.to_string().parse::<TimelineId>().unwrap(), tli);
        prop_assert_eq!(TimelineId::from_hex(&tli.to_hex()).unwrap(), tli);
        prop_assert_eq!(tli.to_hex(), format!("{t:08X}"));
    }

    #[test]
    fn segment_name_round_trip(n in any_segment(), mask in any::<u64>()) {
        let text = n.to_string();
        prop_assert_eq!(text.len(), 24);
        prop_assert_eq!(text.to_ascii_uppercase(), text.clone());
        prop_assert_eq!(text.parse::<SegmentName>().unwrap(), n);
        prop_assert_eq!(mixed_case(&text, mask).parse::<SegmentName>().unwrap(), n);
        prop_assert_eq!(n.hash_dir(), &text[..16]);
    }

    #[test]
    fn segment_order_is_string_order(a in any_segment(), b in any_segment()) {
        prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
    }

    #[test]
    fn wal_file_name_round_trip(f in wal_file_name(), mask in any::<u64>()) {
        let text = f.to_string();
        prop_assert_eq!(text.parse::<WalFileName>().unwrap(), f);
        prop_assert_eq!(mixed_case(&text, mask).parse::<WalFileName>().unwrap(), f);
        prop_assert_eq!(f.archive_subdir().is_none(), f.is_history());
        if let Some(dir) = f.archive_subdir() {
            prop_assert_eq!(dir, &text[..16]);
            prop_assert_eq!(f.segment().unwrap().to_string(), &text[..24]);
        }
    }

    #[test]
    fn wal_file_order_is_string_order(a in wal_file_name(), b in wal_file_name()) {
        prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()), "{} vs {}", a, b);
    }

    #[test]
    fn next_and_prev_are_inverse((size, n) in sized_segment()) {
        if let Some(next) = n.checked_next(size) {
            prop_assert!(next > n);
            prop_assert_eq!(next, n.next(size));
            prop_assert_eq!(next.prev(size), Some(n));
            prop_assert_eq!(next.timeline(), n.timeline());
            // Consecutive segments are adjacent in the LSN space.
            prop_assert_eq!(Some(next.start_lsn(size)), n.end_lsn(size));
        }
        if let Some(prev) = n.prev(size) {
            prop_assert!(prev < n);
            prop_assert_eq!(prev.next(size), n);
        }
    }

    #[test]
    fn from_lsn_and_start_lsn_agree((size, n) in sized_segment(), within in any::<u64>()) {
        let start = n.start_lsn(size);
        prop_assert_eq!(start.segment_offset(size), 0);
        prop_assert_eq!(SegmentName::from_lsn(n.timeline(), start, size), n);
        let offset = within % size.bytes();
        let lsn = start + offset;
        prop_assert_eq!(SegmentName::from_lsn(n.timeline(), lsn, size), n);
        prop_assert_eq!(lsn.segment_offset(size), offset);
        prop_assert_eq!(lsn.segment_start(size), start);
    }

    #[test]
    fn any_lsn_lies_in_its_segment(v in any::<u64>(), size in size_strategy(), t in tli_strategy()) {
        let lsn = Lsn(v);
        let seg = SegmentName::from_lsn(t, lsn, size);
        prop_assert!(u64::from(seg.seg()) <= size.segments_per_log());
        prop_assert_eq!(seg.start_lsn(size) + lsn.segment_offset(size), lsn);
    }

    #[test]
    fn range_lengths((size, begin) in sized_segment(), steps in 0u64..600) {
        // The segment `steps` segments after `begin`, via the LSN space.
        let Some(end_lsn) = begin.start_lsn(size).checked_add(steps * size.bytes()) else {
            return Ok(());
        };
        let end = SegmentName::from_lsn(begin.timeline(), end_lsn, size);
        let range = SegmentName::range(&begin, &end, size);
        prop_assert_eq!(range.remaining(), steps + 1);
        prop_assert_eq!(range.size_hint(), (usize::try_from(steps + 1).unwrap(), Some(usize::try_from(steps + 1).unwrap())));
        let names: Vec<SegmentName> = range.collect();
        prop_assert_eq!(names.len() as u64, steps + 1);
        prop_assert_eq!(names[0], begin);
        prop_assert_eq!(*names.last().unwrap(), end);
        for pair in names.windows(2) {
            prop_assert_eq!(pair[0].next(size), pair[1]);
        }
        prop_assert_eq!(SegmentName::range_inclusive(&begin, &end, size).count() as u64, steps + 1);
        if steps > 0 {
            prop_assert_eq!(SegmentName::range(&end, &begin, size).count(), 0);
        }
    }
}

#[test]
fn barman_examples_16mib() {
    let size = WalSegmentSize::DEFAULT;
    let n: SegmentName = "0000000100000000000000FF".parse().unwrap();
    assert_eq!(n.next(size).to_string(), "000000010000000100000000");
    let lsn: Lsn = "0/3000028".parse().unwrap();
    let seg = SegmentName::from_lsn(TimelineId::ONE, lsn, size);
    assert_eq!(seg.to_string(), "000000010000000000000003");
    assert_eq!(lsn.segment_offset(size), 0x28);
    // The backup label Barman's fixture catalog holds for that backup.
    let label: WalFileName = "000000010000000000000003.00000028.backup".parse().unwrap();
    assert_eq!(
        label,
        WalFileName::BackupLabel {
            segment: seg,
            offset: 0x28
        }
    );
}

#[test]
fn full_log_has_segments_0_to_spl_inclusive() {
    for bytes in SIZES {
        let size = WalSegmentSize::new(bytes).unwrap();
        let first = SegmentName::new(TimelineId::ONE, 7, 0);
        let last = SegmentName::new(
            TimelineId::ONE,
            7,
            u32::try_from(size.segments_per_log()).unwrap(),
        );
        assert_eq!(
            SegmentName::range(&first, &last, size).count() as u64,
            (1u64 << 32) / bytes
        );
        assert_eq!(last.next(size), SegmentName::new(TimelineId::ONE, 8, 0));
    }
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/history")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn postgres_written_history_files() {
    let tli = |n| TimelineId::new(n).unwrap();

    let h2 = TimelineHistory::parse(&fixture("00000002.history")).unwrap();
    assert_eq!(h2.entries().len(), 1);
    assert_eq!(h2.entries()[0].parent, tli(1));
    assert_eq!(h2.entries()[0].switchpoint.to_string(), "0/1500808");
    assert_eq!(h2.entries()[0].reason, "no recovery target specified");

    // PostgreSQL copies the parent's history, then a blank line, then the new entry.
    let h3 = TimelineHistory::parse(&fixture("00000003.history")).unwrap();
    let parents: Vec<u32> = h3.entries().iter().map(|e| e.parent.get()).collect();
    assert_eq!(parents, [1, 2]);
    assert_eq!(
        h3.switchpoint_of(tli(2)),
        Some("0/20000A0".parse().unwrap())
    );
    assert_eq!(h3.timeline_at("0/1500807".parse().unwrap()), Some(tli(1)));
    assert_eq!(h3.timeline_at("0/1500808".parse().unwrap()), Some(tli(2)));
    assert_eq!(h3.timeline_at("0/20000A0".parse().unwrap()), None);

    // The file names themselves.
    let name: WalFileName = "00000003.history".parse().unwrap();
    assert_eq!(name, WalFileName::History(tli(3)));
}
