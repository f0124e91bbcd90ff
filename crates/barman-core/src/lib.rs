//! Barman-compatible configuration, catalog and operations for PostgreSQL
//! backup and recovery.
//!
//! `barman-core` owns the Barman configuration model, the on-disk catalog
//! of each server and the operations on it. WAL names, positions and
//! compression come from `barman-wal`.
//!
//! - [`config`]: [`Config`](config::Config) parses `barman.conf` and its
//!   included `*.conf` files the way Barman's `ConfigParser` does, into a
//!   [`GlobalConfig`](config::GlobalConfig) and one
//!   [`ServerConfig`](config::ServerConfig) per server (plus models). Invalid
//!   values are errors naming file, line, option and the allowed values.
//! - [`catalog`]: one server's files. [`ServerLayout`] is where they live
//!   (`base/`, `wals/`, `meta/`, ...); [`Catalog`] is the facade over it;
//!   [`BackupInfo`] is a `backup.info` (keyed by [`BackupId`], with a
//!   [`BackupStatus`]); [`XlogDb`](catalog::XlogDb) is the
//!   `<server>-xlog.db` WAL catalogue; [`Identity`](catalog::Identity) is
//!   `identity.json`; keep marks and lock files complete it.
//! - [`archive`]: continuous WAL archiving — receiving put-wal streams,
//!   archive-wal (checks, compression, duplicates, `errors/`, crash-safe
//!   xlog.db), get-wal and rebuild-xlogdb.
//! - [`postgres`]: SQL access to the server (`conninfo`), passwords never
//!   shown; [`server`] ties a [`ServerConfig`](config::ServerConfig) to the
//!   operations' options.
//! - [`retention`]: the catalog's backups as retention sees them and the
//!   server's retention report.
//! - [`listing`]: the data of `list-backups`, `show-backup`, `list-files`,
//!   `status`, `list-processes` and `check-wal-archive`.
//! - [`replication`]: the physical replication client (receive-wal,
//!   `backup_method = postgres`); [`tls`]: libpq's `sslmode` semantics and
//!   the one rustls configuration both connection paths use.
//! - [`hooks`]: the hook scripts of a server ([`ServerHooks`](hooks::ServerHooks))
//!   and the `BARMAN_*` variables of each operation, run through `barman-hooks`.
//! - [`sync`]: passive nodes (geographical redundancy): `sync-info`,
//!   `sync-backup` and `sync-wals` copying another barman's catalog
//!   through `barman agent` over `primary_ssh_command`, every file checked
//!   against the primary's manifest.
//! - [`shell`]: quoting of every value put into a shell command line
//!   (ssh command lines, PostgreSQL `restore_command`), `exec` for ssh.
//! - [`clock`]: injected time.
//! - [`fs`]: the durable-write primitives the catalog uses.
//! - [`Error`]: the single error type; every variant names the file, line,
//!   option or object involved.
//!
//! # Catalog invariants
//!
//! - **Atomic writes.** A catalog file is replaced by writing a temporary
//!   file next to it, fsync'ing it, renaming it over the target and
//!   fsync'ing the directory: an interrupted write leaves either the old or
//!   the new file, never half of one. xlog.db appends are fsync'ed.
//! - **Private modes.** Files are created 0600, directories 0700.
//! - **Byte-identical round trips.** Files written by Barman 3.x
//!   (`backup.info`, xlog.db, `identity.json`, keep marks) are read and, when
//!   rewritten unchanged, are byte-for-byte what Barman wrote; files written
//!   here are what Barman would write.
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
pub mod catalog;
pub mod check;
pub mod clock;
pub mod config;
pub mod cron;
pub mod delete;
mod error;
pub mod fs;
pub mod hooks;
pub mod keep;
pub mod listing;
pub mod postgres;
pub mod receive_wal;
pub mod recover;
pub mod replication;
pub mod replication_status;
pub mod retention;
pub mod server;
pub mod shell;
pub mod sync;
pub mod tls;

pub use catalog::{BackupId, BackupInfo, BackupStatus, Catalog, ServerLayout};
pub use error::{Error, Result};

/// Compiles and runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
