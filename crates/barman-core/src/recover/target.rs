//! Recovery targets: validation, `--target-time` parsing and the settings
//! PostgreSQL gets (BARMAN-BEHAVIOUR.md §8.1 steps 3 and 8).

use std::fmt::Write as _;

use jiff::Zoned;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::event::recovery::Warning;
use crate::{Error, Result};

/// `--target-tli`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetTli {
    /// A timeline number.
    Number(u32),
    /// The backup's own timeline.
    Current,
    /// The newest timeline in the archive.
    Latest,
}

impl TargetTli {
    /// Parses `N`, `current` or `latest`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "current" => Ok(Self::Current),
            "latest" => Ok(Self::Latest),
            other => other
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .map(Self::Number)
                .ok_or_else(|| {
                    refuse(format!(
                        "--target-tli `{text}`: expected a timeline number, `current` or `latest`"
                    ))
                }),
        }
    }

    /// As PostgreSQL's `recovery_target_timeline` value.
    pub fn setting(self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Current => "current".into(),
            Self::Latest => "latest".into(),
        }
    }
}

/// `--target-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetAction {
    /// Pause at the target (hot standby, read-only) until promoted.
    Pause,
    /// Shut down at the target.
    Shutdown,
    /// Promote at the target.
    Promote,
}

impl TargetAction {
    /// Parses `pause`, `shutdown` or `promote`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "pause" => Ok(Self::Pause),
            "shutdown" => Ok(Self::Shutdown),
            "promote" => Ok(Self::Promote),
            _ => Err(refuse(format!(
                "--target-action `{text}`: expected pause, shutdown or promote"
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Shutdown => "shutdown",
            Self::Promote => "promote",
        }
    }
}

/// The recovery target options as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetOptions {
    /// `--target-time` as typed.
    pub time: Option<String>,
    /// `--target-xid`.
    pub xid: Option<String>,
    /// `--target-lsn`.
    pub lsn: Option<String>,
    /// `--target-name`.
    pub name: Option<String>,
    /// `--target-immediate`.
    pub immediate: bool,
    /// `--target-tli`.
    pub tli: Option<String>,
    /// `--exclusive`.
    pub exclusive: bool,
    /// `--target-action`.
    pub action: Option<String>,
}

/// A validated recovery target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryTarget {
    /// `recovery_target_time`, time-zone aware.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `recovery_target_xid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xid: Option<String>,
    /// `recovery_target_lsn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
    /// `recovery_target_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `recovery_target = 'immediate'`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub immediate: bool,
    /// `recovery_target_timeline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tli: Option<TargetTli>,
    /// `recovery_target_inclusive = false`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
    /// `recovery_target_action`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<TargetAction>,
    /// The parsed target time, for comparisons with backup times.
    #[serde(skip)]
    pub time_value: Option<Zoned>,
    /// The parsed target LSN.
    #[serde(skip)]
    pub lsn_value: Option<barman_wal::Lsn>,
}

fn refuse(message: String) -> Error {
    Error::BackupRefused(message)
}

impl RecoveryTarget {
    /// Validates the options (before anything is written): at most one of
    /// time, xid, lsn, name and immediate; `--exclusive` only with time,
    /// xid or lsn; `--target-action` only with a target. A naive
    /// `--target-time` is taken in `local`, with a warning pushed on
    /// `warnings`.
    pub fn from_options(
        options: &TargetOptions,
        local: &TimeZone,
        warnings: &mut Vec<Warning>,
    ) -> Result<Self> {
        let given: Vec<&str> = [
            (options.time.is_some(), "--target-time"),
            (options.xid.is_some(), "--target-xid"),
            (options.lsn.is_some(), "--target-lsn"),
            (options.name.is_some(), "--target-name"),
            (options.immediate, "--target-immediate"),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect();
        if given.len() > 1 {
            return Err(refuse(format!(
                "only one recovery target may be given, got {}",
                given.join(" and ")
            )));
        }
        let mut target = Self {
            xid: options.xid.clone(),
            name: options.name.clone(),
            immediate: options.immediate,
            exclusive: options.exclusive,
            ..Self::default()
        };
        if let Some(xid) = &options.xid
            && (xid.is_empty() || !xid.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(refuse(format!(
                "--target-xid `{xid}`: expected a transaction id (a number)"
            )));
        }
        if let Some(name) = &options.name
            && name.is_empty()
        {
            return Err(refuse("--target-name: empty restore point name".into()));
        }
        if let Some(text) = &options.time {
            let time = parse_target_time(text, local, warnings)?;
            target.time = Some(format_time(&time));
            target.time_value = Some(time);
        }
        if let Some(text) = &options.lsn {
            let lsn: barman_wal::Lsn = text.parse().map_err(|_| {
                refuse(format!(
                    "--target-lsn `{text}`: expected an LSN such as 0/3000060"
                ))
            })?;
            target.lsn = Some(lsn.to_string());
            target.lsn_value = Some(lsn);
        }
        if let Some(tli) = &options.tli {
            target.tli = Some(TargetTli::parse(tli)?);
        }
        if let Some(action) = &options.action {
            target.action = Some(TargetAction::parse(action)?);
        }
        if options.exclusive
            && target.time.is_none()
            && target.xid.is_none()
            && target.lsn.is_none()
        {
            return Err(refuse(
                "--exclusive needs --target-time, --target-xid or --target-lsn".into(),
            ));
        }
        if target.action.is_some() && !target.is_pitr() {
            return Err(refuse(
                "--target-action needs a recovery target (--target-time, --target-xid, --target-lsn, --target-name, --target-immediate or --target-tli)".into(),
            ));
        }
        Ok(target)
    }

    /// Whether this is a point-in-time recovery (any target, timeline included).
    pub fn is_pitr(&self) -> bool {
        self.time.is_some()
            || self.xid.is_some()
            || self.lsn.is_some()
            || self.name.is_some()
            || self.immediate
            || self.tli.is_some()
    }

    /// The target settings in Barman's order.
    pub fn settings(&self, version: u32) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        let mut put = |k: &str, v: String| lines.push((k.to_owned(), v));
        if let Some(t) = &self.time {
            put("recovery_target_time", quote(t));
        }
        if let Some(x) = &self.xid {
            put("recovery_target_xid", quote(x));
        }
        if let Some(l) = &self.lsn {
            put("recovery_target_lsn", quote(l));
        }
        if let Some(n) = &self.name {
            put("recovery_target_name", quote(n));
        }
        if self.immediate {
            put("recovery_target", quote("immediate"));
        }
        if self.exclusive {
            put("recovery_target_inclusive", quote("false"));
        }
        if let Some(tli) = self.tli {
            put("recovery_target_timeline", quote(&tli.setting()));
        }
        if let Some(action) = self.action {
            if version >= 90500 {
                put("recovery_target_action", quote(action.as_str()));
            } else {
                put(
                    "pause_at_recovery_target",
                    quote(if action == TargetAction::Pause {
                        "true"
                    } else {
                        "false"
                    }),
                );
            }
        }
        lines
    }
}

/// A string literal of PostgreSQL's configuration files: `'` and `\`
/// doubled (the configuration file parser reads `\` escapes in quoted
/// values; `ALTER SYSTEM` writes them so).
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', "''"))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM`, as PostgreSQL reads it.
pub fn format_time(time: &Zoned) -> String {
    let mut text = time.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let micros = time.subsec_nanosecond() / 1000;
    if micros != 0 {
        let _ = write!(text, ".{micros:06}");
    }
    let _ = write!(text, "{}", time.strftime("%:z"));
    text
}

/// Parses a `--target-time`: RFC 3339 / ISO 8601 with an offset (`Z`,
/// `+01`, `+01:00`, `+0100`), with or without `T`, fractional seconds, or a
/// naive date-time (or date) taken in `local` with a warning.
pub fn parse_target_time(
    text: &str,
    local: &TimeZone,
    warnings: &mut Vec<Warning>,
) -> Result<Zoned> {
    let trimmed = text.trim();
    if let Ok(ts) = trimmed.parse::<jiff::Timestamp>() {
        // Keep the offset the user wrote when there is one.
        let offset = offset_of(trimmed).unwrap_or(jiff::tz::Offset::UTC);
        return Ok(ts.to_zoned(TimeZone::fixed(offset)));
    }
    if let Some((naive, offset)) = split_offset(trimmed)
        && let Ok(dt) = naive.parse::<DateTime>()
        && let Ok(zoned) = dt.to_zoned(TimeZone::fixed(offset))
    {
        return Ok(zoned);
    }
    let naive = trimmed
        .parse::<DateTime>()
        .or_else(|_| trimmed.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
        .map_err(|e| {
            refuse(format!(
                "--target-time `{text}`: not a date and time ({e}); write e.g. `2026-11-27 18:30:00+00:00`"
            ))
        })?;
    let zoned = naive
        .to_zoned(local.clone())
        .map_err(|e| refuse(format!("--target-time `{text}`: {e}")))?;
    warnings.push(Warning::TargetTimeWithoutZone {
        given: text.to_owned(),
        taken_as: zoned.clone(),
    });
    Ok(zoned)
}

/// The offset written at the end of an RFC 3339 text.
fn offset_of(text: &str) -> Option<jiff::tz::Offset> {
    if text.ends_with(['Z', 'z']) {
        return Some(jiff::tz::Offset::UTC);
    }
    split_offset(text).map(|(_, o)| o)
}

/// `(rest, offset)` for a text ending in an offset `±HH`, `±HHMM` or
/// `±HH:MM` (PostgreSQL's short forms included, which RFC 3339 refuses).
fn split_offset(text: &str) -> Option<(&str, jiff::tz::Offset)> {
    let at = text.rfind(['+', '-'])?;
    let (rest, off) = text.split_at(at);
    // A date's `-` is not an offset: the offset follows a time.
    if !rest.contains(':') {
        return None;
    }
    parse_offset(off).map(|o| (rest, o))
}

fn parse_offset(text: &str) -> Option<jiff::tz::Offset> {
    let sign: i32 = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if h > 15 || m > 59 {
        return None;
    }
    jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TargetOptions {
        TargetOptions::default()
    }

    fn build(o: &TargetOptions) -> Result<RecoveryTarget> {
        RecoveryTarget::from_options(o, &TimeZone::UTC, &mut Vec::new())
    }

    #[test]
    fn times_with_and_without_zones() {
        let mut w = Vec::new();
        let utc = TimeZone::UTC;
        let t = parse_target_time("2026-11-27 18:30:00+00:00", &utc, &mut w).unwrap();
        assert_eq!(format_time(&t), "2026-11-27 18:30:00+00:00");
        let t = parse_target_time("2026-11-27T18:30:00.123456+01:00", &utc, &mut w).unwrap();
        assert_eq!(format_time(&t), "2026-11-27 18:30:00.123456+01:00");
        let t = parse_target_time("2026-11-27 18:30:00Z", &utc, &mut w).unwrap();
        assert_eq!(format_time(&t), "2026-11-27 18:30:00+00:00");
        let t = parse_target_time("2026-11-27 18:30:00+02", &utc, &mut w).unwrap();
        assert_eq!(format_time(&t), "2026-11-27 18:30:00+02:00");
        let t = parse_target_time("2026-11-27 18:30:00-0530", &utc, &mut w).unwrap();
        assert_eq!(format_time(&t), "2026-11-27 18:30:00-05:30");
        assert!(w.is_empty(), "{w:?}");
        let paris = TimeZone::get("Europe/Paris").unwrap_or(TimeZone::UTC);
        let t = parse_target_time("2026-11-27 18:30:00", &paris, &mut w).unwrap();
        assert_eq!(t.datetime().hour(), 18);
        assert_eq!(
            w,
            [Warning::TargetTimeWithoutZone {
                given: "2026-11-27 18:30:00".into(),
                taken_as: t.clone()
            }]
        );
        assert!(parse_target_time("yesterday", &utc, &mut w).is_err());
    }

    #[test]
    fn combinations_are_checked() {
        let mut o = opts();
        o.xid = Some("1234".into());
        o.name = Some("p".into());
        let e = build(&o).unwrap_err().to_string();
        assert!(e.contains("--target-xid and --target-name"), "{e}");
        let mut o = opts();
        o.action = Some("promote".into());
        assert!(
            build(&o)
                .unwrap_err()
                .to_string()
                .contains("--target-action needs")
        );
        let mut o = opts();
        o.exclusive = true;
        o.name = Some("p".into());
        assert!(build(&o).unwrap_err().to_string().contains("--exclusive"));
        let mut o = opts();
        o.xid = Some("12x".into());
        assert!(build(&o).is_err());
        let mut o = opts();
        o.lsn = Some("nope".into());
        assert!(build(&o).is_err());
        let mut o = opts();
        o.tli = Some("0".into());
        assert!(build(&o).is_err());
        let mut o = opts();
        o.action = Some("explode".into());
        o.immediate = true;
        assert!(build(&o).is_err());
        assert!(!build(&opts()).unwrap().is_pitr());
    }

    #[test]
    fn settings_in_barman_order() {
        let mut o = opts();
        o.xid = Some("1234".into());
        o.exclusive = true;
        o.tli = Some("latest".into());
        o.action = Some("promote".into());
        let t = build(&o).unwrap();
        assert!(t.is_pitr());
        let lines: Vec<String> = t
            .settings(150_000)
            .into_iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        assert_eq!(
            lines,
            [
                "recovery_target_xid = '1234'",
                "recovery_target_inclusive = 'false'",
                "recovery_target_timeline = 'latest'",
                "recovery_target_action = 'promote'",
            ]
        );
        let mut o = opts();
        o.name = Some("it's".into());
        let t = build(&o).unwrap();
        assert_eq!(t.settings(150_000)[0].1, "'it''s'");
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), "'it''s'");
        // A shell-quoted `'` (`'\''`) survives the configuration parser.
        assert_eq!(quote(r"'it'\''s'"), r"'''it''\\''''s'''");
        assert_eq!(quote(r"C:\n"), r"'C:\\n'");
    }
}
