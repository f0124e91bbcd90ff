//! Barman's operations on a server's catalog: continuous WAL archiving,
//! backups, recovery, checks, cron, deletion, keep, listings, passive
//! sync and receive-wal.
//!
//! `barman-core` holds the operations only. They build on:
//! - `barman-config`: the configuration model (re-exported as [`config`]);
//! - `barman-catalog`: the on-disk catalog and its durable writes
//!   (re-exported as [`catalog`] and [`fs`], and the catalog's main types at
//!   the root);
//! - `barman-pg`: PostgreSQL access (re-exported as [`postgres`],
//!   [`replication`] and [`tls`]);
//! - `barman-wal` (WAL names, positions, compression), `barman-copy`
//!   (file copies and the agent), `barman-retention` and `barman-hooks`.
//!
//! The operations:
//! - [`archive`]: continuous WAL archiving — receiving put-wal streams,
//!   archive-wal (checks, compression, duplicates, `errors/`, crash-safe
//!   xlog.db), get-wal and rebuild-xlogdb.
//! - [`backup`], [`recover`], [`delete`], [`keep`], [`check`], [`cron`],
//!   [`receive_wal`], [`replication_status`].
//! - [`server`] ties a [`ServerConfig`](config::ServerConfig) to the
//!   operations' options.
//! - [`retention`]: the catalog's backups as retention sees them and the
//!   server's retention report.
//! - [`listing`]: the data of `list-backups`, `show-backup`, `list-files`,
//!   `status`, `list-processes` and `check-wal-archive`.
//! - [`event`]: the one event stream: every operation reports typed
//!   [`Event`](event::Event)s (phases with figures, copies, WALs, warnings)
//!   to one [`Observer`](event::Observer); barman-core writes no console
//!   text, the CLI renders Barman's lines from the events.
//! - [`hooks`]: the hook scripts of a server ([`ServerHooks`](hooks::ServerHooks))
//!   and the `BARMAN_*` variables of each operation, run through `barman-hooks`.
//! - [`sync`]: passive nodes (geographical redundancy): `sync-info`,
//!   `sync-backup` and `sync-wals` copying another barman's catalog
//!   through `barman agent` over `primary_ssh_command`, every file checked
//!   against the primary's manifest.
//! - [`shell`]: quoting of every value put into a shell command line
//!   (ssh command lines, PostgreSQL `restore_command`), `exec` for ssh.
//! - [`clock`]: injected time.
//! - [`Error`]: the operations' error type; every variant names the file,
//!   line, option or object involved.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//!
//! use barman_core::config::Config;
//! use barman_core::{BackupInfo, BackupStatus};
//!
//! let home = tempfile::tempdir()?;
//! let text = format!(
//!     "[barman]\nbarman_home = {}\n\n[pg]\nconninfo = host=pg user=barman\n",
//!     home.path().display()
//! );
//! let config = Config::parse_str(&text, Path::new("/etc/barman.conf"))?;
//! let server = config.server("pg").expect("[pg] is configured");
//!
//! // The server's directories default to <barman_home>/<server>/...
//! let layout = server.layout();
//! assert_eq!(layout.backup_directory(), home.path().join("pg"));
//! layout.ensure()?; // creates base/, wals/, meta/, ... with mode 0700
//!
//! // Write a backup.info (atomically, into meta/).
//! let mut info = BackupInfo::new("pg", "20240901T103000".parse()?);
//! info.set_status(BackupStatus::Done);
//! info.set_begin_wal(Some("000000010000000000000003"))?;
//! info.set_begin_xlog(Some("0/3000028"))?;
//! info.write(&layout)?;
//!
//! // Read the catalog back.
//! let catalog = server.catalog();
//! let backups = catalog.backups()?;
//! assert_eq!(backups.len(), 1);
//! assert_eq!(backups[0].backup_id().as_str(), "20240901T103000");
//! assert_eq!(backups[0].status()?, BackupStatus::Done);
//! assert_eq!(backups[0].begin_wal(), Some("000000010000000000000003"));
//! assert!(catalog.xlogdb().read()?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod archive;
pub mod backup;
pub mod check;
pub mod clock;
pub mod cron;
pub mod delete;
mod error;
pub mod event;
pub mod hooks;
pub mod keep;
pub mod listing;
pub mod receive_wal;
pub mod recover;
pub mod removal;
pub mod replication_status;
pub mod retention;
pub mod server;
pub mod shared;
pub mod shell;
pub mod sync;

/// Barman's on-disk catalog (the `barman-catalog` crate), re-exported.
pub use barman_catalog as catalog;
/// The durable writes of the catalog (`barman-catalog`'s `fs`), re-exported.
pub use barman_catalog::fs;
pub use barman_catalog::{BackupId, BackupInfo, BackupStatus, Catalog, ServerLayout};
/// Barman's configuration model (the `barman-config` crate), re-exported.
pub use barman_config as config;
/// PostgreSQL access (the `barman-pg` crate's modules), re-exported.
pub use barman_pg::{postgres, replication, tls};
pub use error::{Error, Result};

/// Compiles and runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
