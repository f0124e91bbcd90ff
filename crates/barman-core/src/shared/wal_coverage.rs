//! check-backup (BARMAN-BEHAVIOUR.md §5.2): is every WAL a backup needs archived?

use std::collections::{BTreeMap, BTreeSet};

use barman_wal::{SegmentName, WalSegmentSize};

use crate::Result;
use barman_catalog::{BackupInfo, BackupStatus, XlogEntry};

/// The verdict of check-backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalCheck {
    /// Nothing to decide (no `end_wal` yet).
    NotApplicable,
    /// Some WALs are not archived yet.
    Waiting,
    /// Every WAL from `begin_wal` to `end_wal` is archived.
    Complete,
    /// The backup cannot become consistent; the message says why.
    Failed(String),
}

/// Applies §5.2 to `info` against the archive listing `xlog` (xlog.db lines).
pub fn check_wals(info: &BackupInfo, xlog: &[XlogEntry]) -> Result<WalCheck> {
    let (Some(begin), Some(end)) = (info.begin_wal(), info.end_wal()) else {
        return Ok(WalCheck::NotApplicable);
    };
    let begin: SegmentName = begin.parse()?;
    let end: SegmentName = end.parse()?;
    if begin.timeline() != end.timeline() {
        return Ok(WalCheck::Failed(format!(
            "The backup spans multiple timelines ({} to {})",
            begin.timeline().get(),
            end.timeline().get()
        )));
    }
    let size = WalSegmentSize::new(info.xlog_segment_size()?)?;
    let mut latest: BTreeMap<u32, String> = BTreeMap::new();
    let mut present: BTreeSet<&str> = BTreeSet::new();
    for entry in xlog {
        let name = entry.name.as_str();
        if name.len() != SegmentName::LEN || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        present.insert(name);
        if let Ok(seg) = name.parse::<SegmentName>() {
            let tli = seg.timeline().get();
            let slot = latest.entry(tli).or_default();
            if name > slot.as_str() {
                name.clone_into(slot);
            }
        }
    }
    let Some(last) = latest.get(&begin.timeline().get()) else {
        return Ok(WalCheck::Waiting);
    };
    let begin_s = begin.to_string();
    let end_s = end.to_string();
    if last.as_str() < begin_s.as_str() {
        return Ok(WalCheck::Waiting);
    }
    for seg in SegmentName::range(&begin, &end, size) {
        let name = seg.to_string();
        if name.as_str() > last.as_str() {
            break;
        }
        if !present.contains(name.as_str()) {
            return Ok(WalCheck::Failed(format!(
                "At least one WAL file is missing. The first missing WAL file is {name}"
            )));
        }
    }
    if end_s.as_str() <= last.as_str() {
        Ok(WalCheck::Complete)
    } else {
        Ok(WalCheck::Waiting)
    }
}

/// The status check-backup gives `info` (only WAITING_FOR_WALS and DONE
/// backups change: DONE can become FAILED if WALs went missing).
pub fn next_status(
    info: &BackupInfo,
    check: &WalCheck,
) -> Result<Option<(BackupStatus, Option<String>)>> {
    let status = info.status()?;
    if !matches!(status, BackupStatus::WaitingForWals | BackupStatus::Done) {
        return Ok(None);
    }
    Ok(match check {
        WalCheck::NotApplicable => None,
        WalCheck::Waiting if status == BackupStatus::WaitingForWals => None,
        WalCheck::Waiting => Some((BackupStatus::WaitingForWals, None)),
        WalCheck::Complete if status == BackupStatus::Done => None,
        WalCheck::Complete => Some((BackupStatus::Done, None)),
        WalCheck::Failed(message) => Some((BackupStatus::Failed, Some(message.clone()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use barman_catalog::BackupId;

    fn info(begin: &str, end: &str) -> BackupInfo {
        let mut i = BackupInfo::new("pg", "20240101T000000".parse::<BackupId>().unwrap());
        i.set_begin_wal(Some(begin)).unwrap();
        i.set_end_wal(Some(end)).unwrap();
        i.set_status(BackupStatus::WaitingForWals);
        i
    }

    fn xlog(names: &[&str]) -> Vec<XlogEntry> {
        names.iter().map(|n| XlogEntry::new(*n, 1, 0.0)).collect()
    }

    #[test]
    fn rules() {
        let b = info("000000010000000000000002", "000000010000000000000004");
        assert_eq!(check_wals(&b, &xlog(&[])).unwrap(), WalCheck::Waiting);
        assert_eq!(
            check_wals(&b, &xlog(&["000000010000000000000001"])).unwrap(),
            WalCheck::Waiting
        );
        assert_eq!(
            check_wals(
                &b,
                &xlog(&["000000010000000000000002", "000000010000000000000003"])
            )
            .unwrap(),
            WalCheck::Waiting
        );
        assert_eq!(
            check_wals(
                &b,
                &xlog(&[
                    "000000010000000000000002",
                    "000000010000000000000002.00000028.backup",
                    "000000010000000000000003",
                    "000000010000000000000004"
                ])
            )
            .unwrap(),
            WalCheck::Complete
        );
        assert_eq!(
            check_wals(&b, &xlog(&["000000010000000000000002", "000000010000000000000004"])).unwrap(),
            WalCheck::Failed(
                "At least one WAL file is missing. The first missing WAL file is 000000010000000000000003".into()
            )
        );
        let spanning = info("000000010000000000000002", "000000020000000000000004");
        assert!(matches!(
            check_wals(&spanning, &[]).unwrap(),
            WalCheck::Failed(_)
        ));
        // A newer timeline does not complete an older one.
        assert_eq!(
            check_wals(&b, &xlog(&["000000020000000000000009"])).unwrap(),
            WalCheck::Waiting
        );
        let done = next_status(&b, &WalCheck::Complete).unwrap();
        assert_eq!(done, Some((BackupStatus::Done, None)));
    }
}
