//! Typed option values and their parsers.
//!
//! Every parser returns `Err(allowed)` where `allowed` describes the accepted
//! values; the caller turns that into [`crate::Error::ConfigValue`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Declares a string-valued enum with its Barman spellings.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            const ALLOWED_RAW: &'static str = concat!($($s, ", "),+);

            /// Every accepted spelling, comma separated (for error messages).
            pub fn allowed() -> &'static str {
                Self::ALLOWED_RAW.trim_end_matches(", ")
            }

            /// The name as written in barman.conf.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$var => $s),+ }
            }

            /// Parses a value as barman.conf spells it (case-insensitive);
            /// the error lists the allowed values.
            pub fn parse(value: &str) -> Result<Self, String> {
                match value.trim().to_ascii_lowercase().as_str() {
                    $($s => Ok(Self::$var),)+
                    _ => Err(Self::allowed().to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// `backup_method`.
    BackupMethod {
        /// rsync over ssh (the default).
        Rsync = "rsync",
        /// rsync on the local host.
        LocalRsync = "local-rsync",
        /// pg_basebackup.
        Postgres = "postgres",
        /// Cloud disk snapshots.
        Snapshot = "snapshot",
        /// Local backup shipped to a cloud (3.20).
        LocalToCloud = "local-to-cloud",
    }
);

str_enum!(
    /// One value of `backup_options`.
    BackupOption {
        /// Concurrent (non-exclusive) backup API.
        ConcurrentBackup = "concurrent_backup",
        /// Exclusive backup API (PostgreSQL < 15, deprecated).
        ExclusiveBackup = "exclusive_backup",
        /// Configuration files live outside PGDATA; do not warn.
        ExternalConfiguration = "external_configuration",
    }
);

str_enum!(
    /// `reuse_backup`.
    ReuseBackup {
        /// No reuse.
        Off = "off",
        /// Copy unchanged files from the previous backup.
        Copy = "copy",
        /// Hard-link unchanged files from the previous backup.
        Link = "link",
    }
);

str_enum!(
    /// One value of `recovery_options`.
    RecoveryOption {
        /// Put `barman get-wal` in restore_command.
        GetWal = "get-wal",
        /// Delta restore (reuse files already at the destination).
        DeltaRestore = "delta-restore",
    }
);

str_enum!(
    /// `backup_compression` (postgres method).
    BackupCompression {
        /// gzip.
        Gzip = "gzip",
        /// lz4.
        Lz4 = "lz4",
        /// zstd.
        Zstd = "zstd",
        /// Explicitly uncompressed.
        None = "none",
    }
);

str_enum!(
    /// `backup_compression_format`.
    BackupCompressionFormat {
        /// tar archives (Barman's default when unset).
        Tar = "tar",
        /// Plain files (PostgreSQL 15+, server-side compression).
        Plain = "plain",
    }
);

str_enum!(
    /// `backup_compression_location`.
    BackupCompressionLocation {
        /// pg_basebackup compresses (Barman's default when unset).
        Client = "client",
        /// PostgreSQL compresses.
        Server = "server",
    }
);

str_enum!(
    /// `encryption`.
    Encryption {
        /// No encryption.
        None = "none",
        /// GnuPG.
        Gpg = "gpg",
    }
);

str_enum!(
    /// `create_slot`.
    CreateSlot {
        /// receive-wal creates the slot.
        Auto = "auto",
        /// The slot must be created by hand.
        Manual = "manual",
    }
);

str_enum!(
    /// `staging_location`.
    StagingLocation {
        /// Staging on the Barman host.
        Local = "local",
        /// Staging on the recovery host.
        Remote = "remote",
    }
);

str_enum!(
    /// `combine_mode` (pg_combinebackup copy mode).
    CombineMode {
        /// Plain copy.
        Copy = "copy",
        /// Hard links.
        Link = "link",
        /// Reflink clones.
        Clone = "clone",
        /// copy_file_range(2).
        CopyFileRange = "copy-file-range",
    }
);

str_enum!(
    /// `log_level`.
    LogLevel {
        /// DEBUG.
        Debug = "debug",
        /// INFO.
        Info = "info",
        /// WARNING.
        Warning = "warning",
        /// ERROR.
        Error = "error",
        /// CRITICAL.
        Critical = "critical",
    }
);

str_enum!(
    /// `wal_retention_policy` (only `main`).
    WalRetentionPolicy {
        /// Follow the backups' retention.
        Main = "main",
    }
);

str_enum!(
    /// `retention_policy_mode` (only `auto`).
    RetentionPolicyMode {
        /// Enforced by `barman cron`.
        Auto = "auto",
    }
);

const BOOL_ALLOWED: &str = "true, t, yes, 1, on, false, f, no, 0, off";

/// Parses a Barman boolean.
pub(crate) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "1" | "on" => Ok(true),
        "false" | "f" | "no" | "0" | "off" => Ok(false),
        _ => Err(BOOL_ALLOWED.to_owned()),
    }
}

/// Parses an integer in `[min, max]`.
pub(crate) fn parse_int<T>(value: &str, min: i64, max: i64) -> Result<T, String>
where
    T: TryFrom<i64>,
{
    let allowed = || {
        if max == i64::MAX {
            format!("an integer >= {min}")
        } else {
            format!("an integer from {min} to {max}")
        }
    };
    let n: i64 = value.trim().parse().map_err(|_| allowed())?;
    if n < min || n > max {
        return Err(allowed());
    }
    T::try_from(n).map_err(|_| allowed())
}

/// Parses a comma separated list of enum values (Barman's CsvOption).
pub(crate) fn parse_csv<T: Ord>(
    value: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<BTreeSet<T>, String> {
    let mut out = BTreeSet::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        out.insert(parse(item).map_err(|a| format!("comma separated list of: {a}"))?);
    }
    Ok(out)
}

const INTERVAL_ALLOWED: &str = "`N day(s)`, `N week(s)`, `N month(s)` (31 days) or `N hour(s)`";

/// Parses `N day(s)|week(s)|month(s)|hour(s)` (case-insensitive).
pub(crate) fn parse_interval(value: &str) -> Result<Duration, String> {
    let bad = || INTERVAL_ALLOWED.to_owned();
    let lower = value.trim().to_ascii_lowercase();
    let mut words = lower.split_whitespace();
    let (Some(n), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(bad());
    };
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    let secs_per = match unit {
        "hour" => 3600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 31 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs_per)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// Renders a duration like Python's `human_readable_timedelta` ("7 days", "1 day, 2 hours").
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "day"),
        ((secs % 86_400) / 3600, "hour"),
        ((secs % 3600) / 60, "minute"),
        (secs % 60, "second"),
    ];
    let list: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| {
            if *n == 1 {
                format!("1 {u}")
            } else {
                format!("{n} {u}s")
            }
        })
        .collect();
    if list.is_empty() {
        "less than one second".to_owned()
    } else {
        list.join(", ")
    }
}

/// Parses a size: integer with optional `k|Ki|M|Mi|G|Gi|T|Ti` (case-sensitive).
pub(crate) fn parse_size(value: &str) -> Result<u64, String> {
    let bad = || "an integer with an optional suffix k, Ki, M, Mi, G, Gi, T or Ti".to_owned();
    let v = value.trim();
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = v[..digits].parse().map_err(|_| bad())?;
    let mult: u64 = match v[digits..].trim_start() {
        "" => 1,
        "k" => 1000,
        "Ki" => 1 << 10,
        "M" => 1_000_000,
        "Mi" => 1 << 20,
        "G" => 1_000_000_000,
        "Gi" => 1 << 30,
        "T" => 1_000_000_000_000,
        "Ti" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Validates a replication slot name (`^[0-9a-z_]+$`).
pub(crate) fn parse_slot_name(value: &str) -> Result<String, String> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_')
    {
        Ok(value.to_owned())
    } else {
        Err("lower-case letters, digits and `_` (^[0-9a-z_]+$)".to_owned())
    }
}

/// The largest bandwidth limit, in KB/s: the limit is applied in bytes per
/// second (`kbps * 1024`), which must not overflow.
pub const MAX_BANDWIDTH_LIMIT_KBPS: u64 = u64::MAX / 1024;

/// Parses a bandwidth limit in KB/s (`bandwidth_limit`), at most
/// [`MAX_BANDWIDTH_LIMIT_KBPS`].
pub(crate) fn parse_kbps(value: &str) -> Result<u64, String> {
    #[allow(clippy::cast_possible_wrap)] // u64::MAX / 1024 < i64::MAX
    parse_int(value, 0, MAX_BANDWIDTH_LIMIT_KBPS as i64)
}

/// Parses `name:kbps name2:kbps` (space separated).
pub(crate) fn parse_tablespace_limits(value: &str) -> Result<BTreeMap<String, u64>, String> {
    let bad = || {
        format!("space separated `tablespace:kbps` pairs, kbps at most {MAX_BANDWIDTH_LIMIT_KBPS}")
    };
    let mut out = BTreeMap::new();
    for pair in value.split_whitespace() {
        let (name, kbps) = pair.split_once(':').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        let kbps = kbps
            .parse::<u64>()
            .ok()
            .filter(|k| *k <= MAX_BANDWIDTH_LIMIT_KBPS)
            .ok_or_else(bad)?;
        out.insert(name.to_owned(), kbps);
    }
    Ok(out)
}

/// Validates a `0x...` hexadecimal magic and returns its bytes.
pub fn parse_hex_magic(value: &str) -> Result<Vec<u8>, String> {
    let bad = || "a hexadecimal byte string such as 0x1f8b".to_owned();
    let hex = value
        .trim()
        .strip_prefix("0x")
        .or_else(|| value.trim().strip_prefix("0X"))
        .ok_or_else(bad)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for t in ["true", "T", "yes", "1", "ON"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "F", "No", "0", "off"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("maybe").unwrap_err().contains("true"));
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1 day"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            parse_interval("2 WEEKS"),
            Ok(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(
            parse_interval("1 month"),
            Ok(Duration::from_secs(31 * 86_400))
        );
        assert_eq!(parse_interval("3 hours"), Ok(Duration::from_secs(3 * 3600)));
        assert!(parse_interval("3 fortnights").is_err());
        assert!(parse_interval("-1 days").is_err());
        assert!(parse_interval("days").is_err());
        assert_eq!(human_duration(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(
            human_duration(Duration::from_secs(86_400 + 7200)),
            "1 day, 2 hours"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10"), Ok(10));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("1 Ki"), Ok(1024));
        assert_eq!(parse_size("2Gi"), Ok(2 << 30));
        assert_eq!(parse_size("1Ti"), Ok(1 << 40));
        assert!(parse_size("1K").is_err(), "suffixes are case-sensitive");
        assert!(parse_size("1.5M").is_err());
    }

    #[test]
    fn slots_tablespaces_magic_ints() {
        assert!(parse_slot_name("barman_1").is_ok());
        assert!(parse_slot_name("Bad-Name").is_err());
        let m = parse_tablespace_limits("tbs1:100  tbs2:2000").unwrap();
        assert_eq!(m["tbs1"], 100);
        assert_eq!(m["tbs2"], 2000);
        assert!(parse_tablespace_limits("tbs1=100").is_err());
        // A limit is applied as kbps * 1024 bytes/s: one that overflows is refused.
        let max = MAX_BANDWIDTH_LIMIT_KBPS;
        assert!(max.checked_mul(1024).is_some() && (max + 1).checked_mul(1024).is_none());
        assert_eq!(parse_kbps(&max.to_string()), Ok(max));
        assert!(parse_kbps(&(max + 1).to_string()).is_err());
        assert!(parse_kbps("-1").is_err());
        assert_eq!(
            parse_tablespace_limits(&format!("t:{max}")).unwrap()["t"],
            max
        );
        assert!(parse_tablespace_limits(&format!("t:{}", max + 1)).is_err());
        assert_eq!(parse_hex_magic("0x1F8b"), Ok(vec![0x1f, 0x8b]));
        assert!(parse_hex_magic("1f8b").is_err());
        assert!(parse_hex_magic("0x1").is_err());
        assert_eq!(parse_int::<u32>("3", 1, i64::MAX), Ok(3));
        assert!(
            parse_int::<u32>("0", 1, i64::MAX)
                .unwrap_err()
                .contains(">= 1")
        );
    }

    #[test]
    fn enums_and_csv() {
        assert_eq!(ReuseBackup::parse("LINK"), Ok(ReuseBackup::Link));
        assert_eq!(
            ReuseBackup::parse("maybe"),
            Err("off, copy, link".to_owned())
        );
        assert_eq!(
            BackupMethod::parse("local-rsync"),
            Ok(BackupMethod::LocalRsync)
        );
        let s = parse_csv("get-wal, delta-restore", RecoveryOption::parse).unwrap();
        assert_eq!(s.len(), 2);
        assert!(parse_csv("foo", RecoveryOption::parse).is_err());
        assert!(parse_csv("", RecoveryOption::parse).unwrap().is_empty());
    }
}
