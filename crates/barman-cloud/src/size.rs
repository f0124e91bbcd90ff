//! Barman's size syntax (`utils.check_size`), used by `-S/--max-archive-size`,
//! `--min-chunk-size` and `--max-bandwidth`: a plain integer is bytes;
//! `KB`, `MB`, `GB`, `TB`, `PB` multiply by powers of **1024**, and `KiB`,
//! `MiB`, ... by powers of **1000** — the bases are inverted in Barman's
//! code, and copied as they are so that the same option means the same
//! size with both tools.

use crate::{Error, Result};

/// The units and the power of their base.
const UNITS: [(&str, u32); 5] = [("K", 1), ("M", 2), ("G", 3), ("T", 4), ("P", 5)];

/// Parses a size as Barman does.
///
/// # Errors
/// [`Error::Size`] naming the value when it is not `<integer>[unit]` or
/// does not fit in 64 bits.
///
/// ```
/// use barman_cloud::size::parse_size;
/// assert_eq!(parse_size("100GB")?, 100 << 30);
/// assert_eq!(parse_size("5MiB")?, 5_000_000);
/// assert_eq!(parse_size("4096")?, 4096);
/// # Ok::<(), barman_cloud::Error>(())
/// ```
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || Error::Size(text.to_owned());
    let value = text.trim();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let multiplier: u64 = if unit.is_empty() {
        1
    } else {
        let (power, base) = UNITS
            .iter()
            .find_map(|(prefix, power)| {
                let rest = unit.strip_prefix(prefix)?;
                match rest {
                    "B" => Some((*power, 1024u64)),
                    "iB" => Some((*power, 1000u64)),
                    _ => None,
                }
            })
            .ok_or_else(bad)?;
        base.checked_pow(power).ok_or_else(bad)?
    };
    number.checked_mul(multiplier).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_their_inverted_bases() {
        for (text, want) in [
            ("0", 0),
            ("1", 1),
            ("1KB", 1024),
            ("1KiB", 1000),
            ("3MB", 3 << 20),
            ("3MiB", 3_000_000),
            ("100GB", 100 << 30),
            ("2TB", 2 << 40),
            ("1PB", 1 << 50),
            ("1PiB", 1_000_000_000_000_000),
        ] {
            assert_eq!(parse_size(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for text in [
            "",
            "MB",
            "1.5GB",
            "-1",
            "1 GB",
            "1gb",
            "1XB",
            "1B",
            "99999999999PB",
            "18446744073709551616",
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.to_string().contains(&format!("`{text}`")), "{text}: {e}");
        }
    }
}
