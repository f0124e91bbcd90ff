//! The output of [`evaluate`](crate::evaluate): one [`Decision`] per backup, with its reason.

use std::fmt;

use crate::backup::{BackupStatus, KeepTarget};
use crate::status::RetentionStatus;
use crate::warning::RetentionWarning;

/// Why a backup got its retention label.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The backup is not `DONE`; only `DONE` backups are judged by the policy.
    NotDone {
        /// The backup's status.
        status: BackupStatus,
    },
    /// A `barman keep` annotation keeps the backup whatever the policy says.
    KeepAnnotation {
        /// The keep target.
        target: KeepTarget,
    },
    /// `REDUNDANCY`: among the newest `redundancy` DONE full backups.
    WithinRedundancy {
        /// 1-based position among DONE full backups, newest first (kept backups count).
        position: u32,
        /// The redundancy applied: `max(n, minimum_redundancy)`.
        redundancy: u32,
    },
    /// `REDUNDANCY`: older than the newest `redundancy` DONE full backups.
    BeyondRedundancy {
        /// 1-based position among DONE full backups, newest first (kept backups count).
        position: u32,
        /// The redundancy applied: `max(n, minimum_redundancy)`.
        redundancy: u32,
    },
    /// `RECOVERY WINDOW`: the backup ended at or after the point of recoverability
    /// (or recorded no end time), so it lies inside the window.
    InsideRecoveryWindow {
        /// The point of recoverability, seconds since the Unix epoch.
        point_of_recoverability: i64,
    },
    /// `RECOVERY WINDOW`: the newest backup that ended before the point of
    /// recoverability; recovering to that point starts from it.
    NeededForPointOfRecoverability {
        /// The point of recoverability, seconds since the Unix epoch.
        point_of_recoverability: i64,
    },
    /// `RECOVERY WINDOW`: outside the window, but kept so that at least
    /// `minimum_redundancy` backups remain (`OBSOLETE*`).
    MinimumRedundancy {
        /// The configured `minimum_redundancy`.
        minimum_redundancy: u32,
    },
    /// `RECOVERY WINDOW`: older than the backup needed for the point of recoverability.
    OlderThanRecoveryWindow {
        /// The point of recoverability, seconds since the Unix epoch.
        point_of_recoverability: i64,
    },
    /// An incremental backup takes its label from the root of its chain.
    Inherited {
        /// The id of the chain's root (full) backup.
        root: String,
        /// The root's own label.
        root_status: RetentionStatus,
    },
    /// An incremental backup whose chain root is missing or `EMPTY`: nothing
    /// to inherit from.
    MissingChainRoot {
        /// The first id in the parent chain that could not be evaluated.
        missing: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDone { status } => {
                write!(
                    f,
                    "status is {status}; only DONE backups are judged by the policy"
                )
            }
            Self::KeepAnnotation { target } => write!(f, "kept by a `{target}` keep annotation"),
            Self::WithinRedundancy {
                position,
                redundancy,
            } => write!(
                f,
                "DONE full backup #{position} (newest first) is within REDUNDANCY {redundancy}"
            ),
            Self::BeyondRedundancy {
                position,
                redundancy,
            } => write!(
                f,
                "DONE full backup #{position} (newest first) is beyond REDUNDANCY {redundancy}"
            ),
            Self::InsideRecoveryWindow {
                point_of_recoverability,
            } => write!(
                f,
                "inside the recovery window (did not end before the point of recoverability, epoch {point_of_recoverability})"
            ),
            Self::NeededForPointOfRecoverability {
                point_of_recoverability,
            } => write!(
                f,
                "newest backup ending before the point of recoverability (epoch {point_of_recoverability}): needed to recover to it"
            ),
            Self::MinimumRedundancy { minimum_redundancy } => write!(
                f,
                "outside the recovery window, kept to honour minimum_redundancy = {minimum_redundancy}"
            ),
            Self::OlderThanRecoveryWindow {
                point_of_recoverability,
            } => write!(
                f,
                "older than the backup needed for the point of recoverability (epoch {point_of_recoverability})"
            ),
            Self::Inherited { root, root_status } => {
                write!(
                    f,
                    "incremental backup: follows its chain root {root} ({root_status})"
                )
            }
            Self::MissingChainRoot { missing } => write!(
                f,
                "incremental backup: chain root {missing} is missing or EMPTY, nothing to inherit"
            ),
        }
    }
}

/// The retention decision for one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// The backup id.
    pub backup_id: String,
    /// The label Barman would print.
    pub status: RetentionStatus,
    /// Why.
    pub reason: Reason,
}

/// The result of evaluating a retention policy over a server's backups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// One decision per evaluated backup, newest (highest id) first.
    pub decisions: Vec<Decision>,
    /// The warnings Barman logs while computing this report, in its order.
    pub warnings: Vec<RetentionWarning>,
}

impl RetentionReport {
    /// The decision for `backup_id`, if it was evaluated.
    pub fn get(&self, backup_id: &str) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.backup_id == backup_id)
    }

    /// The label of `backup_id`; `-` ([`RetentionStatus::None`]) for a backup
    /// the report does not cover, as Barman answers.
    pub fn status_of(&self, backup_id: &str) -> RetentionStatus {
        self.get(backup_id)
            .map_or(RetentionStatus::None, |d| d.status)
    }

    /// Ids of the backups enforcement deletes (`OBSOLETE` only), oldest first:
    /// the order `cron` deletes them in.
    pub fn obsolete_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .decisions
            .iter()
            .filter(|d| d.status.is_deletable())
            .map(|d| d.backup_id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }
}
