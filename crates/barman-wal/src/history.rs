//! Timeline history files (`00000002.history`).

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::timeline::TimelineId;

/// One line of a timeline history file: timeline `parent` ended at
/// `switchpoint`, where the next timeline forked from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryEntry {
    /// The timeline that ended.
    pub parent: TimelineId,
    /// The LSN at which it ended (the first LSN of the next timeline).
    pub switchpoint: Lsn,
    /// Why (`no recovery target specified`, `before 2024-01-01 ...`);
    /// empty if the line has none.
    pub reason: String,
}

/// The contents of a timeline history file: the ancestors of a timeline, in
/// order, each with the position where it was left.
///
/// Each non-comment line is `parentTLI<tab>switchpoint<tab>reason` (any
/// whitespace separates the first two fields; the rest of the line, trimmed,
/// is the reason). Lines starting with `#` (after leading whitespace) and
/// blank lines are ignored. Parent timelines must increase strictly, as
/// PostgreSQL requires.
///
/// ```
/// use barman_wal::{Lsn, TimelineHistory, TimelineId};
///
/// let text = "1\t0/3000158\tno recovery target specified\n\
///             2\t0/5000000\tat restore point \"before_upgrade\"\n";
/// let history = TimelineHistory::parse(text)?;
/// assert_eq!(history.entries().len(), 2);
/// let tli = |n| TimelineId::new(n).unwrap();
/// assert_eq!(history.switchpoint_of(tli(1)), Some("0/3000158".parse()?));
/// assert_eq!(history.timeline_at(Lsn(0x100)), Some(tli(1)));
/// assert_eq!(history.timeline_at("0/4000000".parse()?), Some(tli(2)));
/// assert_eq!(history.timeline_at("0/5000000".parse()?), None); // the file's own timeline
/// # Ok::<(), barman_wal::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimelineHistory {
    entries: Vec<HistoryEntry>,
}

impl TimelineHistory {
    /// Parses the text of a history file; errors name the 1-based line.
    pub fn parse(text: &str) -> Result<TimelineHistory> {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |reason: String| Error::InvalidHistory {
                line: index + 1,
                text: raw.to_owned(),
                reason,
            };
            let (tli_text, rest) = split_field(line);
            let parent: TimelineId = tli_text
                .parse()
                .map_err(|_| invalid(format!("`{tli_text}` is not a timeline ID")))?;
            let (lsn_text, reason) = split_field(rest);
            if lsn_text.is_empty() {
                return Err(invalid("missing switchpoint LSN".to_owned()));
            }
            let switchpoint: Lsn = lsn_text
                .parse()
                .map_err(|_| invalid(format!("`{lsn_text}` is not an LSN")))?;
            if let Some(last) = entries.last() {
                if parent <= last.parent {
                    return Err(invalid(format!(
                        "timeline {parent} does not follow timeline {} (timelines must increase)",
                        last.parent
                    )));
                }
                if switchpoint < last.switchpoint {
                    return Err(invalid(format!(
                        "switchpoint {switchpoint} is before the previous one ({})",
                        last.switchpoint
                    )));
                }
            }
            entries.push(HistoryEntry {
                parent,
                switchpoint,
                reason: reason.to_owned(),
            });
        }
        Ok(TimelineHistory { entries })
    }

    /// The entries in file order (oldest ancestor first).
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// Whether the file has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The LSN at which ancestor timeline `tli` ended, if it is listed.
    pub fn switchpoint_of(&self, tli: TimelineId) -> Option<Lsn> {
        self.entries
            .iter()
            .find(|e| e.parent == tli)
            .map(|e| e.switchpoint)
    }

    /// Whether `tli` is an ancestor listed in this history.
    pub fn contains(&self, tli: TimelineId) -> bool {
        self.switchpoint_of(tli).is_some()
    }

    /// The ancestor timeline that `lsn` belongs to: the first entry whose
    /// switchpoint is after `lsn`.
    ///
    /// `None` when `lsn` is at or after the last switchpoint: it then belongs
    /// to the timeline this file describes (named by the file name, not its
    /// contents) or a later one.
    pub fn timeline_at(&self, lsn: Lsn) -> Option<TimelineId> {
        self.entries
            .iter()
            .find(|e| lsn < e.switchpoint)
            .map(|e| e.parent)
    }
}

/// Splits off the first whitespace-separated field; returns it and the rest
/// with leading whitespace removed.
fn split_field(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(at) => (&s[..at], s[at..].trim_start()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tli(n: u32) -> TimelineId {
        TimelineId::new(n).unwrap()
    }

    #[test]
    fn parses_postgres_output() {
        let text = "1\t0/3000158\tno recovery target specified\n\n\
                    # a comment\n  \n\
                    2\t0/50000A0\tbefore 2024-01-01 00:00:00+00\n\
                    5\t1/0\t\n";
        let h = TimelineHistory::parse(text).unwrap();
        assert_eq!(
            h.entries(),
            [
                HistoryEntry {
                    parent: tli(1),
                    switchpoint: Lsn(0x0300_0158),
                    reason: "no recovery target specified".into(),
                },
                HistoryEntry {
                    parent: tli(2),
                    switchpoint: Lsn(0x0500_00A0),
                    reason: "before 2024-01-01 00:00:00+00".into(),
                },
                HistoryEntry {
                    parent: tli(5),
                    switchpoint: Lsn(0x1_0000_0000),
                    reason: String::new()
                },
            ]
        );
        assert!(h.contains(tli(5)) && !h.contains(tli(3)));
        assert_eq!(h.switchpoint_of(tli(2)), Some(Lsn(0x0500_00A0)));
        assert_eq!(h.switchpoint_of(tli(6)), None);
    }

    #[test]
    fn empty_text_is_empty_history() {
        assert!(TimelineHistory::parse("").unwrap().is_empty());
        assert!(TimelineHistory::parse("# only\n\n").unwrap().is_empty());
    }

    #[test]
    fn timeline_at_boundaries() {
        let h = TimelineHistory::parse("1\t0/3000000\tx\n2\t0/5000000\ty\n").unwrap();
        assert_eq!(h.timeline_at(Lsn(0)), Some(tli(1)));
        assert_eq!(h.timeline_at(Lsn(0x02FF_FFFF)), Some(tli(1)));
        assert_eq!(h.timeline_at(Lsn(0x0300_0000)), Some(tli(2)));
        assert_eq!(h.timeline_at(Lsn(0x0500_0000)), None);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, needle) in [
            (
                "1\t0/3000000\tok\nx\t0/1\tbad\n",
                2,
                "`x` is not a timeline ID",
            ),
            ("\n\n0\t0/1\tzero\n", 3, "`0` is not a timeline ID"),
            ("1\n", 1, "missing switchpoint"),
            ("1\tzz\treason\n", 1, "`zz` is not an LSN"),
            ("2\t0/3\ta\n1\t0/4\tb\n", 2, "timelines must increase"),
            ("1\t0/5\ta\n2\t0/4\tb\n", 2, "before the previous one"),
        ] {
            let err = TimelineHistory::parse(text).unwrap_err();
            let Error::InvalidHistory { line: got, .. } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(*got, line, "{text:?}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("line {line}")) && msg.contains(needle),
                "{msg}"
            );
        }
    }
}
