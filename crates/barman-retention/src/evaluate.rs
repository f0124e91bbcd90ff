//! [`evaluate`]: label every backup as Barman's retention report does.

use std::collections::HashMap;

use crate::backup::{BackupStatus, BackupSummary, KeepTarget};
use crate::decision::{Decision, Reason, RetentionReport};
use crate::policy::{RetentionPolicy, window_start};
use crate::status::RetentionStatus;
use crate::warning::RetentionWarning;

/// Evaluates `policy` over a server's backups at `now_epoch_secs`.
///
/// Follows Barman's `_backup_report`:
///
/// * Backups with status `EMPTY` are not judged. Full (non-incremental)
///   backups are walked newest first by id; only `DONE` ones are judged, the
///   others get `-`.
/// * A keep annotation wins over the policy (`KEEP:FULL` / `KEEP:STANDALONE`)
///   but still uses a redundancy slot (`REDUNDANCY`) or counts towards
///   `minimum_redundancy` (`RECOVERY WINDOW`).
/// * `REDUNDANCY n` keeps the newest `max(n, minimum_redundancy)` DONE full
///   backups `VALID`; older ones are `OBSOLETE`.
/// * `RECOVERY WINDOW` keeps every backup down to and including the newest one
///   that ended before the point of recoverability (`VALID`); older ones are
///   `OBSOLETE*` while fewer than `minimum_redundancy` backups are kept, then
///   `OBSOLETE`. A DONE backup without an end time is treated as inside the window.
/// * Incremental backups inherit the label of their chain root; a
///   `KEEP:STANDALONE` root passes on `OBSOLETE` when the root itself is outside
///   the policy and `VALID` otherwise, a `KEEP:FULL` root passes on `VALID`.
///   Every descendant of a judged root is labelled, whatever its status (as
///   Barman walks the backup tree); an incremental whose root is missing or
///   `EMPTY` gets `-`.
///
/// The report lists each labelled backup once, newest first, and carries the
/// warnings Barman logs ([`RetentionWarning`]): `REDUNDANCY n` below
/// `minimum_redundancy`, and each backup kept `OBSOLETE*` by it.
pub fn evaluate(
    policy: &RetentionPolicy,
    backups: &[BackupSummary],
    now_epoch_secs: i64,
    minimum_redundancy: u32,
) -> RetentionReport {
    let by_id: HashMap<&str, &BackupSummary> = backups.iter().map(|b| (b.id.as_str(), b)).collect();

    // Descendants of every chain root, found by following parent links.
    let mut descendants: HashMap<&str, Vec<&BackupSummary>> = HashMap::new();
    let mut orphans: HashMap<&str, &str> = HashMap::new();
    for backup in backups.iter().filter(|b| b.is_incremental()) {
        match chain_root(backup, &by_id) {
            Ok(root) => descendants.entry(root).or_default().push(backup),
            Err(missing) => {
                orphans.insert(backup.id.as_str(), missing);
            }
        }
    }

    let mut roots: Vec<&BackupSummary> = backups
        .iter()
        .filter(|b| b.status != BackupStatus::Empty && !b.is_incremental())
        .collect();
    roots.sort_by(|a, b| b.id.cmp(&a.id));
    roots.dedup_by(|a, b| a.id == b.id);

    let mut labels: HashMap<&str, (RetentionStatus, Reason)> = HashMap::new();
    let mut warnings = Vec::new();
    if let RetentionPolicy::Redundancy(redundancy) = *policy
        && redundancy < minimum_redundancy
    {
        warnings.push(RetentionWarning::RedundancyBelowMinimum {
            redundancy,
            minimum_redundancy,
        });
    }
    let mut judge = Judge::new(*policy, now_epoch_secs, minimum_redundancy);
    for root in roots {
        let (status, reason, outside_policy) = judge.next(root);
        if let Reason::MinimumRedundancy { minimum_redundancy } = reason
            && let Some(point_of_recoverability) = policy.point_of_recoverability(now_epoch_secs)
        {
            warnings.push(RetentionWarning::KeptForMinimumRedundancy {
                backup_id: root.id.clone(),
                point_of_recoverability,
                minimum_redundancy,
            });
        }
        let children_status = match status {
            RetentionStatus::KeepStandalone if outside_policy => RetentionStatus::Obsolete,
            RetentionStatus::KeepStandalone | RetentionStatus::KeepFull => RetentionStatus::Valid,
            other => other,
        };
        for child in descendants.get(root.id.as_str()).into_iter().flatten() {
            let reason = Reason::Inherited {
                root: root.id.clone(),
                root_status: status,
            };
            labels.insert(child.id.as_str(), (children_status, reason));
        }
        labels.insert(root.id.as_str(), (status, reason));
    }

    // Incrementals that no judged root reached: nothing to inherit.
    for backup in backups
        .iter()
        .filter(|b| b.is_incremental() && b.status != BackupStatus::Empty)
    {
        if labels.contains_key(backup.id.as_str()) {
            continue;
        }
        let missing = orphans
            .get(backup.id.as_str())
            .copied()
            .or(backup.parent_backup_id.as_deref())
            .unwrap_or_default();
        let reason = Reason::MissingChainRoot {
            missing: missing.to_owned(),
        };
        labels.insert(backup.id.as_str(), (RetentionStatus::None, reason));
    }

    let mut decisions: Vec<Decision> = labels
        .into_iter()
        .map(|(id, (status, reason))| Decision {
            backup_id: id.to_owned(),
            status,
            reason,
        })
        .collect();
    decisions.sort_by(|a, b| b.backup_id.cmp(&a.backup_id));
    RetentionReport {
        decisions,
        warnings,
    }
}

/// Follows parent links up to the full backup at the top of the chain.
/// `Err` carries the first id that is missing, `EMPTY` (as a root), or part of a cycle.
fn chain_root<'a>(
    backup: &'a BackupSummary,
    by_id: &HashMap<&'a str, &'a BackupSummary>,
) -> Result<&'a str, &'a str> {
    let mut current = backup;
    // A chain can be no longer than the number of backups; more means a cycle.
    for _ in 0..=by_id.len() {
        let Some(parent_id) = current.parent_backup_id.as_deref() else {
            return if current.status == BackupStatus::Empty {
                Err(current.id.as_str())
            } else {
                Ok(current.id.as_str())
            };
        };
        match by_id.get(parent_id) {
            Some(parent) => current = parent,
            None => return Err(parent_id),
        }
    }
    Err(current.id.as_str())
}

/// The policy's running state while walking full backups newest first.
struct Judge {
    policy: Policy,
    minimum_redundancy: u32,
    /// REDUNDANCY: DONE full backups seen so far (kept ones included).
    seen: u32,
    /// RECOVERY WINDOW: the backup needed for the point of recoverability was found.
    found: bool,
    /// RECOVERY WINDOW: backups kept so far (VALID, keep-annotated, OBSOLETE*).
    kept: u32,
}

enum Policy {
    Redundancy(u32),
    Window(i64),
}

impl Judge {
    fn new(policy: RetentionPolicy, now_epoch_secs: i64, minimum_redundancy: u32) -> Self {
        let policy = match policy {
            RetentionPolicy::Redundancy(n) => Policy::Redundancy(n.max(minimum_redundancy)),
            RetentionPolicy::RecoveryWindow { count, unit } => {
                Policy::Window(window_start(count, unit, now_epoch_secs))
            }
        };
        Self {
            policy,
            minimum_redundancy,
            seen: 0,
            found: false,
            kept: 0,
        }
    }

    /// Labels the next (older) full backup. The flag says whether the backup is
    /// outside the policy, which decides what a standalone-kept root passes on.
    fn next(&mut self, backup: &BackupSummary) -> (RetentionStatus, Reason, bool) {
        if backup.status != BackupStatus::Done {
            let reason = Reason::NotDone {
                status: backup.status,
            };
            return (RetentionStatus::None, reason, self.outside());
        }
        let keep = backup.keep.map(|target| {
            let status = match target {
                KeepTarget::Full => RetentionStatus::KeepFull,
                KeepTarget::Standalone => RetentionStatus::KeepStandalone,
            };
            (status, Reason::KeepAnnotation { target })
        });
        let (status, reason) = match self.policy {
            Policy::Redundancy(redundancy) => {
                let position = self.seen + 1;
                let by_policy = if self.seen < redundancy {
                    (
                        RetentionStatus::Valid,
                        Reason::WithinRedundancy {
                            position,
                            redundancy,
                        },
                    )
                } else {
                    (
                        RetentionStatus::Obsolete,
                        Reason::BeyondRedundancy {
                            position,
                            redundancy,
                        },
                    )
                };
                self.seen += 1;
                keep.unwrap_or(by_policy)
            }
            Policy::Window(point_of_recoverability) => {
                if self.found {
                    if self.kept < self.minimum_redundancy {
                        self.kept += 1;
                        keep.unwrap_or((
                            RetentionStatus::PotentiallyObsolete,
                            Reason::MinimumRedundancy {
                                minimum_redundancy: self.minimum_redundancy,
                            },
                        ))
                    } else {
                        keep.unwrap_or((
                            RetentionStatus::Obsolete,
                            Reason::OlderThanRecoveryWindow {
                                point_of_recoverability,
                            },
                        ))
                    }
                } else {
                    self.kept += 1;
                    let before = backup
                        .end_time
                        .is_some_and(|end| end < point_of_recoverability);
                    self.found = before;
                    let reason = if before {
                        Reason::NeededForPointOfRecoverability {
                            point_of_recoverability,
                        }
                    } else {
                        Reason::InsideRecoveryWindow {
                            point_of_recoverability,
                        }
                    };
                    keep.unwrap_or((RetentionStatus::Valid, reason))
                }
            }
        };
        (status, reason, self.outside())
    }

    /// Barman's test for "the root is outside the policy", made after the root
    /// was counted: `i > redundancy`, or `found` for a window.
    fn outside(&self) -> bool {
        match self.policy {
            Policy::Redundancy(redundancy) => self.seen > redundancy,
            Policy::Window(_) => self.found,
        }
    }
}

#[cfg(test)]
mod tests;
