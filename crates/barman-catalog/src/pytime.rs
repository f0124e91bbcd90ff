//! Python `datetime` text forms used in backup.info and JSON outputs.

use std::fmt::Write as _;

use jiff::Zoned;
use jiff::civil::DateTime;
use jiff::fmt::temporal::Pieces;
use jiff::tz::{Offset, TimeZone};

use crate::{Error, Result};

/// Python's `str(datetime)` of an aware datetime:
/// `YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM` (sub-microseconds truncated).
pub fn to_python_str(time: &Zoned) -> String {
    format_with_sep(time, ' ')
}

/// Python's `datetime.isoformat()`: like [`to_python_str`] with a `T`.
pub fn to_python_isoformat(time: &Zoned) -> String {
    format_with_sep(time, 'T')
}

/// Python's `datetime.ctime()`: `Sun Nov 22 04:15:37 2026` (day of month
/// padded with a space), in the time's own offset.
pub fn to_python_ctime(time: &Zoned) -> String {
    time.strftime("%a %b %e %H:%M:%S %Y").to_string()
}

fn format_with_sep(time: &Zoned, sep: char) -> String {
    let dt = time.datetime();
    let mut out = String::with_capacity(32);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let micros = dt.subsec_nanosecond() / 1000;
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    let secs = time.offset().seconds();
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let _ = write!(out, "{sign}{:02}:{:02}", abs / 3600, (abs / 60) % 60);
    if !abs.is_multiple_of(60) {
        let _ = write!(out, ":{:02}", abs % 60);
    }
    out
}

/// Parses a timestamp the way Barman's `load_datetime_tz` does (dateutil):
/// ISO-like `YYYY-MM-DD[ T]HH:MM[:SS[.f]]` with an optional offset (`Z`,
/// `+HH:MM`, `+HHMM`, `+HH`), or `ctime()` form (`Sun Nov 22 04:15:37 2026`).
/// A naive timestamp gets `local` (Barman: the local time zone).
pub fn parse_python_datetime(text: &str, local: &TimeZone) -> Result<Zoned> {
    let text = text.trim();
    let invalid = |reason: String| Error::InvalidCatalogValue {
        what: "timestamp",
        value: text.to_owned(),
        reason,
    };
    if let Ok(pieces) = Pieces::parse(text) {
        let dt = DateTime::from_parts(pieces.date(), pieces.time().unwrap_or_default());
        return match pieces.to_numeric_offset() {
            Some(offset) => dt.to_zoned(TimeZone::fixed(offset)),
            None => dt.to_zoned(local.clone()),
        }
        .map_err(|e| invalid(e.to_string()));
    }
    if let Ok(dt) = DateTime::strptime("%a %b %e %H:%M:%S %Y", text) {
        return dt
            .to_zoned(local.clone())
            .map_err(|e| invalid(e.to_string()));
    }
    Err(invalid(
        "expected `YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]`".into(),
    ))
}

/// A datetime in a fixed offset (how a read timestamp is represented).
pub fn with_fixed_offset(time: &Zoned) -> Zoned {
    let offset: Offset = time.offset();
    time.with_time_zone(TimeZone::fixed(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_forms() {
        let utc = TimeZone::UTC;
        let t = parse_python_datetime("2026-11-22 04:15:10.863835+00:00", &utc).unwrap();
        assert_eq!(to_python_str(&t), "2026-11-22 04:15:10.863835+00:00");
        assert_eq!(to_python_isoformat(&t), "2026-11-22T04:15:10.863835+00:00");
        let t = parse_python_datetime("2026-11-22 04:15:10-05:30", &utc).unwrap();
        assert_eq!(to_python_str(&t), "2026-11-22 04:15:10-05:30");
        let t = parse_python_datetime("2026-11-22T04:15:10Z", &utc).unwrap();
        assert_eq!(to_python_str(&t), "2026-11-22 04:15:10+00:00");
        let t = parse_python_datetime(
            "Sun Nov 22 04:15:37 2026",
            &TimeZone::fixed(Offset::constant(2)),
        )
        .unwrap();
        assert_eq!(to_python_str(&t), "2026-11-22 04:15:37+02:00");
        let t = parse_python_datetime(
            "2026-11-22 04:15:10",
            &TimeZone::fixed(Offset::constant(-3)),
        )
        .unwrap();
        assert_eq!(to_python_str(&t), "2026-11-22 04:15:10-03:00");
        assert!(parse_python_datetime("yesterday", &utc).is_err());
    }
}
