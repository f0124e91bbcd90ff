//! Hook events, phases and kinds, and the configuration keys they make.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An operation hook scripts can run around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookEvent {
    /// `barman backup`.
    Backup,
    /// Archiving one WAL file into `wals/` (`archive-wal`).
    Archive,
    /// Deleting a backup.
    Delete,
    /// `barman recover` / `restore`.
    Recovery,
    /// Deleting one WAL file from the archive.
    WalDelete,
}

impl HookEvent {
    /// Every event, in the order Barman's documentation lists them.
    pub const ALL: [Self; 5] = [
        Self::Backup,
        Self::Archive,
        Self::Delete,
        Self::Recovery,
        Self::WalDelete,
    ];

    /// The event's name in configuration keys (`wal_delete`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Archive => "archive",
            Self::Delete => "delete",
            Self::Recovery => "recovery",
            Self::WalDelete => "wal_delete",
        }
    }

    /// Whether the event concerns one WAL file (its hooks get the WAL variables).
    pub fn is_wal_event(self) -> bool {
        matches!(self, Self::Archive | Self::WalDelete)
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HookEvent {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| Error::InvalidEvent { name: s.to_owned() })
    }
}

/// Whether a hook runs before or after the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPhase {
    /// Before the operation (`pre`).
    Pre,
    /// After the operation, whether it succeeded or not (`post`).
    Post,
}

impl HookPhase {
    /// `pre` or `post`, as in configuration keys and `BARMAN_PHASE`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pre => "pre",
            Self::Post => "post",
        }
    }
}

impl fmt::Display for HookPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Standard hooks (exit status ignored) or retry hooks (run until 0, 62 or 63).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookKind {
    /// `*_script`: run once; its exit status is logged, never acted on.
    Standard,
    /// `*_retry_script`: re-run until it exits 0, 62 or 63 (see [`RetryOutcome`](crate::RetryOutcome)).
    Retry,
}

/// One hook script slot: which event, before or after, standard or retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookPoint {
    /// The operation.
    pub event: HookEvent,
    /// Before or after it.
    pub phase: HookPhase,
    /// Standard or retry.
    pub kind: HookKind,
}

impl HookPoint {
    /// A hook point.
    pub fn new(event: HookEvent, phase: HookPhase, kind: HookKind) -> Self {
        Self { event, phase, kind }
    }

    /// The four hook points of `event` in the order they run around the
    /// operation: standard pre, retry pre, (operation), retry post, standard post.
    pub fn around(event: HookEvent) -> [Self; 4] {
        [
            Self::new(event, HookPhase::Pre, HookKind::Standard),
            Self::new(event, HookPhase::Pre, HookKind::Retry),
            Self::new(event, HookPhase::Post, HookKind::Retry),
            Self::new(event, HookPhase::Post, HookKind::Standard),
        ]
    }

    /// Every hook point: for each event in [`HookEvent::ALL`] order, its four
    /// points in run order.
    pub fn all() -> impl Iterator<Item = Self> {
        HookEvent::ALL.into_iter().flat_map(Self::around)
    }

    /// The hook's name without the phase, as Barman puts it in `BARMAN_HOOK`
    /// (`backup_script`, `backup_retry_script`).
    pub fn hook_name(self) -> String {
        match self.kind {
            HookKind::Standard => format!("{}_script", self.event.name()),
            HookKind::Retry => format!("{}_retry_script", self.event.name()),
        }
    }

    /// The configuration key (`pre_backup_retry_script`).
    pub fn config_key(self) -> String {
        format!("{}_{}", self.phase.name(), self.hook_name())
    }
}

impl fmt::Display for HookPoint {
    /// Prints the configuration key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.config_key())
    }
}

impl FromStr for HookPoint {
    type Err = Error;

    /// Parses a configuration key (`post_wal_delete_retry_script`), exactly:
    /// lower case, no surrounding spaces.
    fn from_str(key: &str) -> Result<Self, Self::Err> {
        let bad = || Error::InvalidConfigKey {
            key: key.to_owned(),
        };
        let (phase, rest) = if let Some(rest) = key.strip_prefix("pre_") {
            (HookPhase::Pre, rest)
        } else if let Some(rest) = key.strip_prefix("post_") {
            (HookPhase::Post, rest)
        } else {
            return Err(bad());
        };
        let (kind, event) = if let Some(event) = rest.strip_suffix("_retry_script") {
            (HookKind::Retry, event)
        } else if let Some(event) = rest.strip_suffix("_script") {
            (HookKind::Standard, event)
        } else {
            return Err(bad());
        };
        let event = event.parse().map_err(|_| bad())?;
        Ok(Self::new(event, phase, kind))
    }
}

/// The configuration key of a hook script (`config_key(Backup, Pre, Retry)` is
/// `pre_backup_retry_script`).
pub fn config_key(event: HookEvent, phase: HookPhase, kind: HookKind) -> String {
    HookPoint::new(event, phase, kind).config_key()
}

/// The inverse of [`config_key`].
pub fn parse_config_key(key: &str) -> Result<(HookEvent, HookPhase, HookKind), Error> {
    let point: HookPoint = key.parse()?;
    Ok((point.event, point.phase, point.kind))
}

/// All 20 hook script configuration keys, in [`HookPoint::all`] order.
pub fn all_config_keys() -> Vec<String> {
    HookPoint::all().map(HookPoint::config_key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        let names: Vec<&str> = HookEvent::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            ["backup", "archive", "delete", "recovery", "wal_delete"]
        );
        assert_eq!(
            "wal_delete".parse::<HookEvent>().unwrap(),
            HookEvent::WalDelete
        );
        assert!("wal-delete".parse::<HookEvent>().is_err());
        assert!(HookEvent::Archive.is_wal_event() && HookEvent::WalDelete.is_wal_event());
        assert!(!HookEvent::Backup.is_wal_event());
    }

    #[test]
    fn config_keys_follow_barman_naming() {
        use {HookEvent::*, HookKind::*, HookPhase::*};
        assert_eq!(config_key(Backup, Pre, Retry), "pre_backup_retry_script");
        assert_eq!(config_key(Backup, Post, Standard), "post_backup_script");
        assert_eq!(
            config_key(WalDelete, Post, Retry),
            "post_wal_delete_retry_script"
        );
        assert_eq!(config_key(Recovery, Pre, Standard), "pre_recovery_script");
        assert_eq!(
            HookPoint::new(Archive, Pre, Retry).hook_name(),
            "archive_retry_script"
        );
        assert_eq!(
            HookPoint::new(Delete, Post, Standard).hook_name(),
            "delete_script"
        );
    }

    #[test]
    fn all_twenty_keys_in_run_order_and_round_trip() {
        let keys = all_config_keys();
        assert_eq!(keys.len(), 20);
        assert_eq!(
            &keys[..4],
            [
                "pre_backup_script",
                "pre_backup_retry_script",
                "post_backup_retry_script",
                "post_backup_script"
            ]
        );
        assert_eq!(keys[19], "post_wal_delete_script");
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 20);
        for (key, point) in keys.iter().zip(HookPoint::all()) {
            assert_eq!(key.parse::<HookPoint>().unwrap(), point);
            assert_eq!(
                parse_config_key(key).unwrap(),
                (point.event, point.phase, point.kind)
            );
            assert_eq!(point.to_string(), *key);
        }
    }

    #[test]
    fn refuses_other_keys() {
        for bad in [
            "backup_script",
            "pre_backup",
            "pre_backup_retry",
            "pre_restore_script",
            "mid_backup_script",
            "PRE_BACKUP_SCRIPT",
            " pre_backup_script",
            "pre__script",
            "pre_retry_script",
            "pre_backup_retry_retry_script",
        ] {
            let err = bad.parse::<HookPoint>().unwrap_err();
            assert!(
                matches!(err, Error::InvalidConfigKey { ref key } if key == bad),
                "{bad}"
            );
        }
    }
}
