//! What two or more operations share, below all of them: operations
//! import this module (and the catalog, configuration and PostgreSQL
//! crates), never each other.
//!
//! - [`backups`]: backup resolution (ids, names, `latest`, ...),
//!   check-backup's verdict, interrupted backups, the manifest file name;
//! - [`wal_coverage`]: whether every WAL a backup needs is archived;
//! - [`wal_stats`]: the WALs of each backup (until the next one) and
//!   their statistics;
//! - [`units`]: Barman's human sizes and durations;
//! - [`spawn`]: process spawning, injected.

pub mod backups;
pub mod spawn;
pub mod units;
pub mod wal_coverage;
pub mod wal_stats;

pub use backups::{
    MANIFEST_FILE, check_backup, check_backup_info, fail_interrupted, resolve_backup,
};
pub use spawn::{ShellSpawner, Spawner};
pub use units::{human_duration, human_size};
pub use wal_coverage::{WalCheck, check_wals};
