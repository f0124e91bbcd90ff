//! Which archived WAL files a recovery needs (BARMAN-BEHAVIOUR.md §4.1),
//! and whether any of them is missing. Pure: the caller passes the archive's
//! names (from xlog.db) and the timeline histories.

use std::collections::{BTreeMap, BTreeSet};

use barman_wal::{Lsn, SegmentName, TimelineHistory, TimelineId, WalFileName, WalSegmentSize};

/// How far the recovery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalStop {
    /// As far as the archive goes (time, xid, name targets, or none).
    End,
    /// `--target-immediate`: up to the backup's end WAL.
    Immediate,
    /// `--target-lsn`: up to the segment holding the LSN.
    Lsn(Lsn),
}

/// The question.
#[derive(Debug, Clone)]
pub struct WalNeeds<'a> {
    /// The backup's first WAL.
    pub begin_wal: SegmentName,
    /// The backup's last WAL.
    pub end_wal: SegmentName,
    /// The timeline recovery ends on.
    pub target_tli: TimelineId,
    /// Where recovery stops.
    pub stop: WalStop,
    /// Include `.partial` files: on each timeline of the chain, the one of
    /// the segment right after its last complete segment.
    pub partial: bool,
    /// The segment size.
    pub segment_size: WalSegmentSize,
    /// Every name in the archive (xlog.db order does not matter).
    pub archived: &'a [String],
}

/// Why the archive cannot serve a recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingWal {
    /// The first missing file.
    pub name: String,
    /// Why it is needed.
    pub reason: String,
}

/// The files to stage, in order: history files first, then segments by
/// name. `histories` gives the parsed history of a timeline (from its
/// archived `.history` file).
///
/// # Errors
///
/// [`MissingWal`] naming the first segment missing from the range the
/// recovery must replay: the backup's own range (`begin_wal..=end_wal`),
/// then on each timeline from the backup's to `target_tli` (following the
/// target's history) every segment up to the switch point, and on the
/// target timeline every segment up to the last one archived (or to the
/// stop). A target timeline without a history file is missing too. With
/// `partial`, a `.partial` past the segment after a timeline's last
/// complete one names that segment as missing.
pub fn required_wals(
    needs: &WalNeeds<'_>,
    histories: &BTreeMap<TimelineId, TimelineHistory>,
) -> Result<Vec<String>, MissingWal> {
    let archive = Archive::of(needs.archived);
    let chain = timeline_chain(needs, histories)?;
    let stop = Stop::of(needs);
    check_backup_range(needs, &archive.segments)?;
    let (mut wanted, continues_at) = chain_segments(needs, &chain, &archive.segments, stop)?;

    // Every other archived segment of the chain's timelines past the
    // begin (Barman copies them all; they are harmless and may hold the
    // target), bounded by the stop.
    let tlis: BTreeSet<TimelineId> = chain.iter().map(|(t, _)| *t).collect();
    for seg in &archive.segments {
        if tlis.contains(&seg.timeline())
            && (seg.log(), seg.seg()) >= (needs.begin_wal.log(), needs.begin_wal.seg())
            && !stop.passed(*seg)
        {
            wanted.insert(*seg);
        }
    }

    let mut names: Vec<String> = archive
        .history_names
        .into_iter()
        .filter(|(tli, _)| tli.get() <= needs.target_tli.get())
        .map(|(_, name)| name)
        .collect();
    names.extend(wanted.iter().map(ToString::to_string));
    if needs.partial {
        names.extend(partial_names(
            needs,
            &archive.partials,
            &wanted,
            &continues_at,
            stop,
        )?);
    }
    Ok(names)
}

/// The archive's names by kind.
struct Archive {
    /// Complete segments.
    segments: BTreeSet<SegmentName>,
    /// `.partial` files, by segment.
    partials: BTreeSet<SegmentName>,
    /// History files, by timeline, sorted.
    history_names: Vec<(TimelineId, String)>,
}

impl Archive {
    fn of(archived: &[String]) -> Self {
        let mut segments: BTreeSet<SegmentName> = BTreeSet::new();
        let mut partials: BTreeSet<SegmentName> = BTreeSet::new();
        let mut history_names = Vec::new();
        for name in archived {
            match name.parse::<WalFileName>() {
                Ok(WalFileName::History(tli)) => history_names.push((tli, name.clone())),
                Ok(WalFileName::Segment(seg)) => {
                    segments.insert(seg);
                }
                Ok(WalFileName::Partial(seg)) => {
                    partials.insert(seg);
                }
                _ => {}
            }
        }
        history_names.sort();
        Self {
            segments,
            partials,
            history_names,
        }
    }
}

/// The last segment recovery reads, when it stops before the archive's end.
#[derive(Clone, Copy)]
struct Stop(Option<SegmentName>);

impl Stop {
    fn of(needs: &WalNeeds<'_>) -> Self {
        Self(match needs.stop {
            WalStop::End => None,
            WalStop::Immediate => Some(needs.end_wal),
            WalStop::Lsn(lsn) => Some(SegmentName::from_lsn(
                needs.begin_wal.timeline(),
                lsn,
                needs.segment_size,
            )),
        })
    }

    /// Whether `seg` comes after the stop.
    fn passed(self, seg: SegmentName) -> bool {
        self.0
            .is_some_and(|stop| (seg.log(), seg.seg()) > (stop.log(), stop.seg()))
    }
}

fn missing(seg: SegmentName, reason: &str) -> MissingWal {
    MissingWal {
        name: seg.to_string(),
        reason: reason.to_owned(),
    }
}

/// The chain of timelines from the backup's to the target, each with
/// the LSN where it was left (None for the target itself).
fn timeline_chain(
    needs: &WalNeeds<'_>,
    histories: &BTreeMap<TimelineId, TimelineHistory>,
) -> Result<Vec<(TimelineId, Option<Lsn>)>, MissingWal> {
    let backup_tli = needs.begin_wal.timeline();
    let mut chain: Vec<(TimelineId, Option<Lsn>)> = Vec::new();
    if needs.target_tli == backup_tli {
        chain.push((backup_tli, None));
    } else {
        let Some(history) = histories.get(&needs.target_tli) else {
            return Err(MissingWal {
                name: format!("{}.history", needs.target_tli.to_hex()),
                reason: format!(
                    "the history of target timeline {} is not in the archive",
                    needs.target_tli.get()
                ),
            });
        };
        let mut on_chain = false;
        for entry in history.entries() {
            if entry.parent == backup_tli {
                on_chain = true;
            }
            if on_chain {
                chain.push((entry.parent, Some(entry.switchpoint)));
            }
        }
        if !on_chain {
            return Err(MissingWal {
                name: format!("{}.history", needs.target_tli.to_hex()),
                reason: format!(
                    "timeline {} does not descend from the backup's timeline {}",
                    needs.target_tli.get(),
                    backup_tli.get()
                ),
            });
        }
        chain.push((needs.target_tli, None));
    }
    Ok(chain)
}

/// The backup's own range, always.
fn check_backup_range(
    needs: &WalNeeds<'_>,
    segments: &BTreeSet<SegmentName>,
) -> Result<(), MissingWal> {
    let size = needs.segment_size;
    let backup_tli = needs.begin_wal.timeline();
    let mut seg = needs.begin_wal;
    loop {
        if !segments.contains(&seg) {
            return Err(missing(seg, "needed to make the backup consistent"));
        }
        if seg == needs.end_wal {
            break;
        }
        let next = seg.next(size);
        if next.timeline() != backup_tli
            || (next.log(), next.seg()) > (needs.end_wal.log(), needs.end_wal.seg())
        {
            break;
        }
        seg = next;
    }
    Ok(())
}

/// Each timeline of the chain, contiguous; where each one's WAL goes
/// on past what is archived (the segment after its last, or its first).
fn chain_segments(
    needs: &WalNeeds<'_>,
    chain: &[(TimelineId, Option<Lsn>)],
    segments: &BTreeSet<SegmentName>,
    stop: Stop,
) -> Result<(BTreeSet<SegmentName>, BTreeMap<TimelineId, SegmentName>), MissingWal> {
    let size = needs.segment_size;
    let on = |tli: TimelineId, seg: SegmentName| SegmentName::new(tli, seg.log(), seg.seg());
    let mut start = needs.begin_wal;
    let mut wanted: BTreeSet<SegmentName> = BTreeSet::new();
    let mut continues_at: BTreeMap<TimelineId, SegmentName> = BTreeMap::new();
    for (tli, left_at) in chain {
        let first = on(*tli, start);
        let last = match left_at {
            // The segment holding the switch point is read from the next
            // timeline (PostgreSQL copies its beginning there).
            Some(lsn) => SegmentName::from_lsn(*tli, *lsn, size).prev(size),
            None => segments
                .range(first..)
                .take_while(|s| s.timeline() == *tli)
                .last()
                .copied(),
        };
        let next = match last {
            Some(last) if (last.log(), last.seg()) >= (first.log(), first.seg()) => last.next(size),
            _ => first,
        };
        continues_at.insert(*tli, next);
        if let Some(last) = last
            && (last.log(), last.seg()) >= (first.log(), first.seg())
        {
            let mut seg = first;
            loop {
                if stop.passed(seg) {
                    break;
                }
                if !segments.contains(&seg) {
                    let reason = format!(
                        "timeline {} is archived up to {last} but this segment is missing",
                        tli.get()
                    );
                    return Err(missing(seg, &reason));
                }
                wanted.insert(seg);
                if seg == last {
                    break;
                }
                seg = seg.next(size);
            }
        }
        if let Some(lsn) = left_at {
            start = SegmentName::from_lsn(*tli, *lsn, size);
        }
    }
    Ok((wanted, continues_at))
}

/// A timeline's WAL goes on in the `.partial` of the segment right
/// after its last complete one (the segment receive-wal is writing,
/// or the last one of a timeline left by a promotion). A `.partial`
/// further on means the segments between are missing; an older one
/// is superseded by the complete segments.
fn partial_names(
    needs: &WalNeeds<'_>,
    partials: &BTreeSet<SegmentName>,
    wanted: &BTreeSet<SegmentName>,
    continues_at: &BTreeMap<TimelineId, SegmentName>,
    stop: Stop,
) -> Result<Vec<String>, MissingWal> {
    let mut names = Vec::new();
    for seg in partials {
        let Some(&expected) = continues_at.get(&seg.timeline()) else {
            continue;
        };
        if wanted.contains(seg)
            || (seg.log(), seg.seg()) < (needs.begin_wal.log(), needs.begin_wal.seg())
            || stop.passed(*seg)
            || (seg.log(), seg.seg()) < (expected.log(), expected.seg())
        {
            continue;
        }
        if *seg != expected {
            let reason = format!(
                "timeline {} goes on in {} but this segment is missing",
                seg.timeline().get(),
                WalFileName::Partial(*seg)
            );
            return Err(missing(expected, &reason));
        }
        names.push(WalFileName::Partial(*seg).to_string());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str) -> SegmentName {
        name.parse().unwrap()
    }

    fn tli(n: u32) -> TimelineId {
        TimelineId::new(n).unwrap()
    }

    fn needs(archived: &[String], target: u32, stop: WalStop) -> WalNeeds<'_> {
        WalNeeds {
            begin_wal: seg("000000010000000000000003"),
            end_wal: seg("000000010000000000000004"),
            target_tli: tli(target),
            stop,
            partial: false,
            segment_size: WalSegmentSize::DEFAULT,
            archived,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn one_timeline_everything_from_the_begin() {
        let archived = names(&[
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
        ]);
        let got = required_wals(&needs(&archived, 1, WalStop::End), &BTreeMap::new()).unwrap();
        assert_eq!(
            got,
            names(&[
                "000000010000000000000003",
                "000000010000000000000004",
                "000000010000000000000005",
                "000000010000000000000006",
            ])
        );
        let got =
            required_wals(&needs(&archived, 1, WalStop::Immediate), &BTreeMap::new()).unwrap();
        assert_eq!(got.len(), 2);
        let lsn = "0/5000100".parse().unwrap();
        let got = required_wals(&needs(&archived, 1, WalStop::Lsn(lsn)), &BTreeMap::new()).unwrap();
        assert_eq!(got.last().unwrap(), "000000010000000000000005");
    }

    #[test]
    fn a_hole_is_named() {
        let archived = names(&[
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000006",
        ]);
        let err = required_wals(&needs(&archived, 1, WalStop::End), &BTreeMap::new()).unwrap_err();
        assert_eq!(err.name, "000000010000000000000005");
        // A hole past an LSN stop does not matter.
        let lsn = "0/4000100".parse().unwrap();
        assert!(required_wals(&needs(&archived, 1, WalStop::Lsn(lsn)), &BTreeMap::new()).is_ok());
        let archived = names(&["000000010000000000000003"]);
        let err = required_wals(&needs(&archived, 1, WalStop::End), &BTreeMap::new()).unwrap_err();
        assert_eq!(err.name, "000000010000000000000004");
        assert!(err.reason.contains("consistent"));
    }

    #[test]
    fn follows_the_target_timeline_history() {
        let archived = names(&[
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "00000002.history",
            "000000020000000000000006",
            "000000020000000000000007",
        ]);
        let history =
            TimelineHistory::parse("1\t0/6000A00\tno recovery target specified\n").unwrap();
        let histories = BTreeMap::from([(tli(2), history)]);
        let got = required_wals(&needs(&archived, 2, WalStop::End), &histories).unwrap();
        assert_eq!(got[0], "00000002.history");
        assert!(got.contains(&"000000020000000000000007".to_owned()));
        assert!(got.contains(&"000000010000000000000005".to_owned()));
        // Without timeline 2's history, timeline 2 cannot be reached.
        let err = required_wals(&needs(&archived, 2, WalStop::End), &BTreeMap::new()).unwrap_err();
        assert_eq!(err.name, "00000002.history");
        // Timeline 1 alone stops at its own last segment.
        let got = required_wals(&needs(&archived, 1, WalStop::End), &histories).unwrap();
        assert!(!got.iter().any(|n| n.starts_with("00000002")));
        // A hole on timeline 1 before the switch is named.
        let holed: Vec<String> = archived
            .iter()
            .filter(|n| n.as_str() != "000000010000000000000005")
            .cloned()
            .collect();
        let err = required_wals(&needs(&holed, 2, WalStop::End), &histories).unwrap_err();
        assert_eq!(err.name, "000000010000000000000005");
    }

    #[test]
    fn only_the_partial_that_continues_a_timeline() {
        // A hole before the newest .partial: the segment is named.
        let archived = names(&[
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000006.partial",
        ]);
        let mut n = needs(&archived, 1, WalStop::End);
        n.partial = true;
        let err = required_wals(&n, &BTreeMap::new()).unwrap_err();
        assert_eq!(err.name, "000000010000000000000005");
        assert!(
            err.reason.contains("000000010000000000000006.partial"),
            "{}",
            err.reason
        );
        // Without partials the same archive is fine (the hole is past the end).
        n.partial = false;
        assert_eq!(required_wals(&n, &BTreeMap::new()).unwrap().len(), 2);

        // A superseded .partial (its segment is complete) is left out; a
        // timeline's last segment archived as .partial at a promotion
        // continues timeline 1 up to the switch, the new timeline's
        // .partial continues timeline 2.
        let archived = names(&[
            "000000010000000000000003",
            "000000010000000000000003.partial",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006.partial",
            "00000002.history",
            "000000020000000000000006",
            "000000020000000000000007.partial",
        ]);
        let history =
            TimelineHistory::parse("1\t0/6000A00\tno recovery target specified\n").unwrap();
        let histories = BTreeMap::from([(tli(2), history)]);
        let mut n = needs(&archived, 2, WalStop::End);
        n.partial = true;
        let got = required_wals(&n, &histories).unwrap();
        assert!(!got.contains(&"000000010000000000000003.partial".to_owned()));
        assert!(got.contains(&"000000010000000000000006.partial".to_owned()));
        assert_eq!(got.last().unwrap(), "000000020000000000000007.partial");
        // An LSN stop before the .partial leaves it out.
        n.stop = WalStop::Lsn("0/6000100".parse().unwrap());
        let got = required_wals(&n, &histories).unwrap();
        assert!(
            !got.iter()
                .any(|g| g.starts_with("000000020000000000000007"))
        );
        // The first segment of a timeline may be its .partial.
        let archived = names(&[
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006.partial",
            "00000002.history",
            "000000020000000000000006.partial",
        ]);
        let mut n = needs(&archived, 2, WalStop::End);
        n.partial = true;
        let got = required_wals(&n, &histories).unwrap();
        assert_eq!(got.last().unwrap(), "000000020000000000000006.partial");
    }

    #[test]
    fn partial_files_only_when_asked() {
        let archived = names(&[
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005.partial",
        ]);
        let mut n = needs(&archived, 1, WalStop::End);
        assert_eq!(required_wals(&n, &BTreeMap::new()).unwrap().len(), 2);
        n.partial = true;
        assert_eq!(
            required_wals(&n, &BTreeMap::new()).unwrap().last().unwrap(),
            "000000010000000000000005.partial"
        );
    }
}
