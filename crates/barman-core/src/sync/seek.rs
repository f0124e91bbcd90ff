//! The WAL part of `sync-info`: which xlog.db lines a passive node still
//! needs, read from a seek hint (BARMAN-BEHAVIOUR.md §9). Pure: works on
//! the file's text.
//!
//! The passive node sends back the `last_name` and `last_position` of its
//! previous answer. When the line starting at byte `last_position` is the
//! one for `last_name`, reading resumes there; otherwise (xlog.db was
//! rewritten by a delete or `rebuild-xlogdb`, or the hint is stale) the
//! whole file is read again and `last_name` is only a limit. A `last_name`
//! older than the first line or newer than the last cannot be answered:
//! [`Error::SyncPosition`], on which the passive node asks again without it.

use std::path::Path;

use crate::{Error, Result};
use barman_catalog::XlogEntry;

/// Where the passive node stands: the last WAL it has, and where its line
/// started in the primary's xlog.db.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position<'a> {
    /// `LAST_WAL`.
    pub last_wal: Option<&'a str>,
    /// `LAST_POS` (a seek hint).
    pub last_position: Option<u64>,
}

/// The WALs to send and the position to hand back.
#[derive(Debug, Clone, PartialEq)]
pub struct WalScan {
    /// The lines after `last_wal` (all of them from `from_wal` on, without
    /// `last_wal`), in file order.
    pub wals: Vec<XlogEntry>,
    /// The name of the file's last line (`""` for an empty file).
    pub last_name: String,
    /// The byte offset where the file's last line starts (0 for an empty file).
    pub last_position: u64,
    /// The seek hint did not match and the file was read from its start.
    pub rescanned: bool,
}

/// Reads `text` (the xlog.db at `origin`) from `position`. Without a
/// `last_wal`, lines before `from_wal` (the first DONE backup's `begin_wal`)
/// are left out, except history files.
pub fn scan(
    text: &str,
    origin: &Path,
    position: Position<'_>,
    from_wal: Option<&str>,
) -> Result<WalScan> {
    let start = position
        .last_wal
        .zip(position.last_position)
        .and_then(|(wal, pos)| usize::try_from(pos).ok().map(|pos| (wal, pos)))
        .filter(|&(wal, pos)| line_at(text, pos).is_some_and(|line| first_column(line) == wal))
        .map_or(0, |(_, pos)| pos);
    let rescanned = position.last_position.is_some_and(|p| p != 0) && start == 0;
    let mut check_first = start == 0 && position.last_wal.is_some();
    let mut scan = WalScan {
        wals: Vec::new(),
        last_name: String::new(),
        last_position: 0,
        rescanned,
    };
    let mut offset = start;
    for (index, line) in text[start..].split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim().is_empty() {
            continue;
        }
        let entry = XlogEntry::parse_line(content).map_err(|message| {
            Error::Catalog(barman_catalog::Error::CatalogSyntax {
                path: origin.to_path_buf(),
                line: text[..start].matches('\n').count() + index + 1,
                message: format!("malformed xlog.db line: {message}"),
            })
        })?;
        scan.last_position = line_start as u64;
        scan.last_name.clone_from(&entry.name);
        let wanted = match position.last_wal {
            Some(last) => {
                if check_first && last < entry.name.as_str() {
                    return Err(Error::SyncPosition(format!(
                        "last_wal '{last}' is older than the first available wal '{}'",
                        entry.name
                    )));
                }
                check_first = false;
                entry.name.as_str() > last
            }
            None => from_wal.is_none_or(|from| !is_before(&entry.name, from)),
        };
        if wanted {
            scan.wals.push(entry);
        }
    }
    if let Some(last) = position.last_wal
        && !scan.last_name.is_empty()
        && last > scan.last_name.as_str()
    {
        return Err(Error::SyncPosition(format!(
            "last_wal '{last}' is newer than the last available wal '{}'",
            scan.last_name
        )));
    }
    Ok(scan)
}

/// The line starting at byte `pos` (which must be a line start).
fn line_at(text: &str, pos: usize) -> Option<&str> {
    if pos >= text.len() || !text.is_char_boundary(pos) {
        return None;
    }
    if pos > 0 && text.as_bytes()[pos - 1] != b'\n' {
        return None;
    }
    text[pos..].lines().next()
}

fn first_column(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// Whether WAL file `name` comes before segment `from` (history files never do).
fn is_before(name: &str, from: &str) -> bool {
    !name.ends_with(".history") && name.get(..24).unwrap_or(name) < from
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = "000000010000000000000002\t16777216\t1795320900.5\tNone\tNone\n\
                      000000010000000000000003\t16777216\t1795320911.3077557\tNone\tNone\n\
                      000000010000000000000003.00000028.backup\t345\t1795320911.3151977\tNone\tNone\n\
                      000000010000000000000004\t16777216\t1795320915.8997614\tgzip\tNone\n";

    fn names(scan: &WalScan) -> Vec<&str> {
        scan.wals.iter().map(|e| e.name.as_str()).collect()
    }

    fn at(last_wal: &str, pos: u64) -> Position<'_> {
        Position {
            last_wal: Some(last_wal),
            last_position: Some(pos),
        }
    }

    /// `DB` read from `last_wal` at `pos`.
    fn scan_at(last_wal: &str, pos: u64) -> Result<WalScan> {
        scan(DB, Path::new("x"), at(last_wal, pos), None)
    }

    fn offset_of(name: &str) -> u64 {
        DB.find(&format!("{name}\t")).unwrap() as u64
    }

    #[test]
    fn without_position_everything_from_the_first_backup() {
        let path = Path::new("x");
        let all = scan(DB, path, Position::default(), None).unwrap();
        assert_eq!(all.wals.len(), 4);
        assert_eq!(all.last_name, "000000010000000000000004");
        assert_eq!(all.last_position, offset_of("000000010000000000000004"));
        assert!(!all.rescanned);
        let from = scan(
            DB,
            path,
            Position::default(),
            Some("000000010000000000000003"),
        )
        .unwrap();
        assert_eq!(names(&from)[0], "000000010000000000000003");
        assert_eq!(from.wals.len(), 3);
        assert_eq!(from.last_position, all.last_position);
    }

    #[test]
    fn a_matching_hint_resumes_there() {
        let pos = offset_of("000000010000000000000003");
        let s = scan_at("000000010000000000000003", pos).unwrap();
        assert!(!s.rescanned);
        assert_eq!(
            names(&s),
            [
                "000000010000000000000003.00000028.backup",
                "000000010000000000000004"
            ]
        );
        // The last line's own name, as Barman hands it back (it is a
        // `.backup` file here: Barman compares 24 characters and would rescan).
        let label = "000000010000000000000003.00000028.backup";
        let s = scan_at(label, offset_of(label)).unwrap();
        assert!(!s.rescanned);
        assert_eq!(names(&s), ["000000010000000000000004"]);
    }

    #[test]
    fn a_stale_hint_rescans_from_the_start() {
        for pos in [1, 7, offset_of("000000010000000000000004"), 10_000] {
            let s = scan_at("000000010000000000000003", pos).unwrap();
            assert!(s.rescanned, "{pos}");
            assert_eq!(
                names(&s),
                [
                    "000000010000000000000003.00000028.backup",
                    "000000010000000000000004"
                ],
                "{pos}"
            );
        }
        // A name the file does not hold, inside its range: a limit only.
        let s = scan_at("000000010000000000000002.00000100.backup", 3).unwrap();
        assert!(s.rescanned);
        assert_eq!(names(&s)[0], "000000010000000000000003");
    }

    #[test]
    fn last_wal_outside_the_file_is_an_error() {
        let older = scan_at("000000010000000000000001", 0);
        assert!(
            matches!(&older, Err(Error::SyncPosition(m)) if m.contains("older than the first")),
            "{older:?}"
        );
        let newer = scan_at("0000000100000000000000FF", 999);
        assert!(
            matches!(&newer, Err(Error::SyncPosition(m)) if m.contains("newer than the last")),
            "{newer:?}"
        );
    }

    #[test]
    fn up_to_date_and_empty() {
        let last = "000000010000000000000004";
        let s = scan_at(last, offset_of(last)).unwrap();
        assert!(s.wals.is_empty());
        assert_eq!(s.last_name, last);
        assert_eq!(s.last_position, offset_of(last));
        let empty = scan("", Path::new("x"), at(last, 0), None).unwrap();
        assert!(empty.wals.is_empty());
        assert_eq!((empty.last_name.as_str(), empty.last_position), ("", 0));
    }

    #[test]
    fn history_files_are_always_sent_and_bad_lines_named() {
        let db = format!("{DB}00000002.history\t42\t1795320999.0\tNone\tNone\n");
        let s = scan(
            &db,
            Path::new("x"),
            Position::default(),
            Some("000000020000000000000001"),
        )
        .unwrap();
        assert_eq!(names(&s), ["00000002.history"]);
        let bad = format!("{DB}garbage\n");
        let e = scan(&bad, Path::new("/x/pg-xlog.db"), Position::default(), None).unwrap_err();
        assert!(e.to_string().contains(":5:"), "{e}");
    }
}
