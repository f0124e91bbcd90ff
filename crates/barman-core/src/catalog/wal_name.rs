//! Minimal WAL file-name checks used by the catalog.
//!
//! Interim: barman-wal is growing typed names (`SegmentName`, `WalFileName`);
//! until they land the catalog keeps WAL names as validated `String`s using
//! Barman's single regex:
//! `^[0-9A-F]{8}([0-9A-F]{8}[0-9A-F]{8}(\.[0-9A-F]{8}\.backup|\.partial)?|\.history)$`
//! (either case accepted).

use crate::{Error, Result};

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True for a plain 24-hex segment name.
pub fn is_segment_name(name: &str) -> bool {
    name.len() == 24 && is_hex(name)
}

/// True for a history file name `TTTTTTTT.history`.
pub fn is_history_name(name: &str) -> bool {
    name.len() == 16 && name.ends_with(".history") && is_hex(&name[..8])
}

/// True for any name Barman accepts in the WAL archive: a segment, a
/// `.partial` segment, a `<segment>.<offset>.backup` label or a `.history` file.
pub fn is_wal_name(name: &str) -> bool {
    if is_history_name(name) || is_segment_name(name) {
        return true;
    }
    match name.split_at_checked(24) {
        Some((seg, rest)) if is_segment_name(seg) => {
            rest == ".partial"
                || (rest.len() == 16
                    && rest.starts_with('.')
                    && rest.ends_with(".backup")
                    && is_hex(&rest[1..9]))
        }
        _ => false,
    }
}

/// The hash directory of an archived file (first 16 hex chars), `None` for
/// history files, which live at the top of `wals/`.
pub fn hash_dir(name: &str) -> Option<&str> {
    if is_history_name(name) {
        None
    } else {
        name.get(..16)
    }
}

/// Checks a 24-hex segment name.
pub fn check_segment_name(name: &str) -> Result<()> {
    if is_segment_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidCatalogValue {
            what: "WAL segment name",
            value: name.to_owned(),
            reason: "expected 24 hexadecimal digits".into(),
        })
    }
}

/// Checks an LSN in `X/Y` hexadecimal form.
pub fn check_lsn(lsn: &str) -> Result<()> {
    let ok = lsn.split_once('/').is_some_and(|(hi, lo)| {
        (1..=8).contains(&hi.len()) && (1..=8).contains(&lo.len()) && is_hex(hi) && is_hex(lo)
    });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidCatalogValue {
            what: "LSN",
            value: lsn.to_owned(),
            reason: "expected X/Y in hexadecimal".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_wal_name("000000010000000000000003"));
        assert!(is_wal_name("000000010000000000000003.00000028.backup"));
        assert!(is_wal_name("000000010000000000000003.partial"));
        assert!(is_wal_name("00000002.history"));
        assert!(!is_wal_name("00000002.history.tmp"));
        assert!(!is_wal_name("0000000100000000000000GG"));
        assert!(!is_wal_name("000000010000000000000003.0000028.backup"));
        assert_eq!(
            hash_dir("000000010000000000000003.partial"),
            Some("0000000100000000")
        );
        assert_eq!(hash_dir("00000002.history"), None);
        assert!(check_lsn("0/3000028").is_ok());
        assert!(check_lsn("0/").is_err());
    }
}
