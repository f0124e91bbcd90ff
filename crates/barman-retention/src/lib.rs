//! Barman retention policies: given a server's backups and a clock, decide
//! which backups the policy still needs and which are obsolete.
//!
//! This crate is pure: it reads no files and takes the time as a parameter.
//! The catalog builds a [`BackupSummary`] per backup (id, status, end time,
//! keep annotation, parent for incrementals) and [`evaluate`] returns a
//! [`RetentionReport`] with one [`Decision`] per backup: the
//! [`RetentionStatus`] label Barman prints (`VALID`, `OBSOLETE`, `OBSOLETE*`,
//! `KEEP:FULL`, `KEEP:STANDALONE`, `-`) and the [`Reason`] for it.
//!
//! Policies parse from and print back to Barman's syntax: `REDUNDANCY n` and
//! `RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS` (a month is 31 days). The report
//! also carries the [`RetentionWarning`]s Barman logs about
//! `minimum_redundancy`.
//!
//! WAL retention follows Barman's `delete_backup`: WAL files go only when a
//! backup is deleted ([`wal_cleanup_for_delete`]) or by the very first
//! backup's purge ([`wal_cleanup_for_first_backup`]). Both give a
//! [`WalCleanup`] — Barman's `remove_wal_before_backup(B, protected_timelines,
//! protected_ranges)` — that says which xlog.db names stay.
//!
//! # Example
//!
//! ```
//! use barman_retention::{
//!     evaluate, wal_cleanup_for_delete, BackupStatus, BackupSummary, DeleteKind,
//!     RetentionPolicy, RetentionStatus,
//! };
//!
//! let policy: RetentionPolicy = "recovery window of 2 weeks".parse()?;
//! assert_eq!(policy.to_string(), "RECOVERY WINDOW OF 2 WEEKS");
//!
//! let day = 86_400;
//! let now = 1_800_000_000;
//! assert_eq!(policy.point_of_recoverability(now), Some(now - 14 * day));
//!
//! let backups = [
//!     BackupSummary::new("20250101T000000", BackupStatus::Done)
//!         .end_time(now - 40 * day)
//!         .wals("000000010000000000000002", "000000010000000000000003"),
//!     BackupSummary::new("20250110T000000", BackupStatus::Done)
//!         .end_time(now - 30 * day)
//!         .wals("000000010000000000000010", "000000010000000000000011"),
//!     BackupSummary::new("20250201T000000", BackupStatus::Done)
//!         .end_time(now - 5 * day)
//!         .wals("000000010000000000000020", "000000010000000000000020"),
//!     BackupSummary::new("20250205T000000", BackupStatus::Failed),
//! ];
//! let report = evaluate(&policy, &backups, now, 1);
//! // The newest backup ending before the point of recoverability is still needed.
//! assert_eq!(report.status_of("20250110T000000"), RetentionStatus::Valid);
//! assert_eq!(report.status_of("20250101T000000").to_string(), "OBSOLETE");
//! assert_eq!(report.status_of("20250205T000000").to_string(), "-");
//! assert_eq!(report.obsolete_ids(), ["20250101T000000"]);
//! assert!(report.warnings.is_empty());
//!
//! // `cron` deletes the obsolete backup: the WALs before the next backup go.
//! let cleanup =
//!     wal_cleanup_for_delete(&backups, "20250101T000000", DeleteKind::Retention, true)
//!         .expect("no older backup needs the WALs");
//! let archive = [
//!     "000000010000000000000002",
//!     "000000010000000000000002.00000028.backup",
//!     "00000002.history",
//!     "00000001000000000000000F",
//!     "000000010000000000000010",
//! ];
//! assert_eq!(
//!     cleanup.removable(archive),
//!     [
//!         "000000010000000000000002",
//!         "000000010000000000000002.00000028.backup",
//!         "00000001000000000000000F",
//!     ]
//! );
//! # Ok::<(), barman_retention::Error>(())
//! ```

mod backup;
mod decision;
mod error;
mod evaluate;
mod policy;
mod status;
mod wal;
mod wal_name;
mod warning;

pub use backup::{BackupStatus, BackupSummary, KeepTarget};
pub use decision::{Decision, Reason, RetentionReport};
pub use error::{Error, Result};
pub use evaluate::evaluate;
pub use policy::{RetentionPolicy, WindowUnit};
pub use status::RetentionStatus;
pub use wal::{
    DeleteKind, WalCleanup, WalKeepReason, is_first_backup, wal_cleanup_for_delete,
    wal_cleanup_for_first_backup,
};
pub use warning::RetentionWarning;

/// Runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
