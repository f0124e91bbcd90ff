//! `check-wal-archive`: is a server's WAL archive safe to receive the WALs of
//! a new cluster? (Barman's `xlog.check_archive_usable`.)

use barman_wal::WalFileName;

use barman_catalog::XlogEntry;

/// `Ok` when the archive listed by `entries` (xlog.db) may be used: it is
/// empty, or with `timeline`, holds nothing on that timeline or a later one.
/// Otherwise the reason, in Barman's words.
pub fn check_wal_archive(entries: &[XlogEntry], timeline: Option<u32>) -> Result<(), String> {
    let Some(timeline) = timeline else {
        return if entries.is_empty() {
            Ok(())
        } else {
            Err("Expected empty archive".to_owned())
        };
    };
    let mut found = 0usize;
    for entry in entries {
        let name: WalFileName = entry
            .name
            .parse()
            .map_err(|_| format!("Unexpected file {} found in WAL archive", entry.name))?;
        if name.timeline().get() >= timeline {
            found += 1;
        }
    }
    if found == 0 {
        Ok(())
    } else {
        Err(format!(
            "Found {found} file{} in WAL archive equal to or newer than timeline {timeline}",
            if found > 1 { "s" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_older_timelines_only() {
        let e = |n: &str| XlogEntry::new(n, 1, 0.0);
        assert_eq!(check_wal_archive(&[], None), Ok(()));
        assert_eq!(check_wal_archive(&[], Some(1)), Ok(()));
        let archive = [
            e("000000010000000000000003"),
            e("00000002.history"),
            e("000000020000000000000004"),
        ];
        assert_eq!(
            check_wal_archive(&archive, None),
            Err("Expected empty archive".into())
        );
        assert_eq!(
            check_wal_archive(&archive, Some(2)),
            Err("Found 2 files in WAL archive equal to or newer than timeline 2".into())
        );
        assert_eq!(
            check_wal_archive(&archive[..1], Some(1)),
            Err("Found 1 file in WAL archive equal to or newer than timeline 1".into())
        );
        assert_eq!(check_wal_archive(&archive, Some(3)), Ok(()));
    }
}
