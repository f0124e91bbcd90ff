//! [`RetentionStatus`]: the labels Barman prints for a backup's retention state.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Retention label of a backup, printed exactly as Barman prints it.
///
/// `list-backups` shows the label only when it is not `VALID`; `show-backup`
/// always shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionStatus {
    /// `VALID`: needed by the policy.
    Valid,
    /// `OBSOLETE`: outside the policy; `cron` deletes it.
    Obsolete,
    /// `OBSOLETE*`: outside the policy but kept to honour `minimum_redundancy`;
    /// never deleted automatically.
    PotentiallyObsolete,
    /// `KEEP:FULL`: kept by a `full` keep annotation.
    KeepFull,
    /// `KEEP:STANDALONE`: kept by a `standalone` keep annotation.
    KeepStandalone,
    /// `-`: no retention status (the backup is not `DONE`).
    None,
}

impl RetentionStatus {
    /// Every label.
    pub const ALL: [Self; 6] = [
        Self::Valid,
        Self::Obsolete,
        Self::PotentiallyObsolete,
        Self::KeepFull,
        Self::KeepStandalone,
        Self::None,
    ];

    /// The label as Barman prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Obsolete => "OBSOLETE",
            Self::PotentiallyObsolete => "OBSOLETE*",
            Self::KeepFull => "KEEP:FULL",
            Self::KeepStandalone => "KEEP:STANDALONE",
            Self::None => "-",
        }
    }

    /// Whether retention enforcement (`cron`) deletes a backup with this label.
    /// Only `OBSOLETE` is deleted; `OBSOLETE*` never is.
    pub fn is_deletable(self) -> bool {
        self == Self::Obsolete
    }

    /// Whether the label comes from a keep annotation.
    pub fn is_keep(self) -> bool {
        matches!(self, Self::KeepFull | Self::KeepStandalone)
    }
}

impl fmt::Display for RetentionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetentionStatus {
    type Err = Error;

    /// Parses a label exactly as Barman prints it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|label| label.as_str() == s)
            .ok_or_else(|| Error::InvalidRetentionStatus {
                value: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_barman() {
        let printed: Vec<String> = RetentionStatus::ALL
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            printed,
            [
                "VALID",
                "OBSOLETE",
                "OBSOLETE*",
                "KEEP:FULL",
                "KEEP:STANDALONE",
                "-"
            ]
        );
        for label in RetentionStatus::ALL {
            assert_eq!(label.as_str().parse::<RetentionStatus>().unwrap(), label);
        }
        assert!("valid".parse::<RetentionStatus>().is_err());
        assert!("KEEP".parse::<RetentionStatus>().is_err());
    }

    #[test]
    fn only_obsolete_is_deletable() {
        for label in RetentionStatus::ALL {
            assert_eq!(
                label.is_deletable(),
                label == RetentionStatus::Obsolete,
                "{label}"
            );
        }
        assert!(RetentionStatus::KeepFull.is_keep());
        assert!(RetentionStatus::KeepStandalone.is_keep());
        assert!(!RetentionStatus::Valid.is_keep());
    }
}
