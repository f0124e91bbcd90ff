//! The data behind Barman's listing commands: `list-backups`, `show-backup`,
//! `list-files`, `status`, `list-processes` and `check-wal-archive`.
//!
//! Everything here is plain data computed from the catalog (and, for
//! [`status`], from PostgreSQL); the CLI renders it as Barman's console lines
//! or its `-f json` documents. The rules are Barman 3.20's (server.py
//! `get_wal_info`, `get_wal_until_next_backup`, `get_backup_ext_info`,
//! `list_backups`, `status`; BARMAN-BEHAVIOUR.md §1.4 and §4.1):
//!
//! - [`crate::shared::wal_stats`] (shared with check): the WALs "until the
//!   next backup" of a backup and the
//!   statistics Barman derives from them ([`WalStats`]), the previous/next
//!   DONE backups, the timelines forked after a backup.
//! - [`backups`]: one [`BackupRow`] per backup for `list-backups`.
//! - [`details`]: [`BackupDetails`] for `show-backup`.
//! - [`files`]: the absolute paths `list-files` prints per [`FilesTarget`].
//! - [`status`]: [`ServerStatus`] (catalog) and [`PgStatus`] (PostgreSQL).
//! - [`processes`]: the barman processes holding a server's locks.
//! - [`wal_archive`]: whether an archive is safe for a new cluster.

pub mod backups;
pub mod details;
pub mod files;
pub mod processes;
pub mod status;
pub mod wal_archive;

pub use crate::shared::wal_stats::{
    ChildTimeline, WalStats, children_timelines, neighbours, wals_until_next,
};
pub use backups::{BackupRow, list_backups};
pub use details::{BackupDetails, backup_details};
pub use files::{FilesTarget, list_files};
pub use processes::{ServerProcess, list_processes};
pub use status::{PgStatus, ServerStatus, pg_status, server_status};
pub use wal_archive::check_wal_archive;
