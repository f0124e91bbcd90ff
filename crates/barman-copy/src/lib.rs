//! File-tree copy engine for PostgreSQL base backups: listing with
//! PostgreSQL's base-backup exclusions, a pure copy plan against the previous
//! backup's manifest, and execution with N workers, bandwidth limits and
//! checksums — in process or through a `barman agent` on the database host.
//!
//! The pieces, in the order a backup uses them:
//!
//! - [`Exclusions`]: which entries a base backup copies
//!   ([`Exclusions::postgres_default`] from `basebackup.c`,
//!   [`Exclusions::barman_rsync`] adds Barman's), and why ([`Exclusions::explain`]).
//! - [`listing::list_tree`]: a tree's [`Entry`]s (path, kind, size, mtime,
//!   mode), symlinks not followed, empty directories kept.
//! - [`CopyPlan::compute`]: per file, fetch / hard-link / local copy / page
//!   delta / rsync delta against the previous backup's [`Manifest`]
//!   ([`Reuse`] = `reuse_backup`), trusting size+mtime only for files older
//!   than a horizon. Pure; its `Display` is the `--dry-run` listing.
//! - [`execute`]: runs a plan with [`ExecOptions::jobs`] workers, each with
//!   its own [`Source`] session, token-bucket limits ([`ratelimit`]), every
//!   file written temp + fsync + rename, `global/pg_control` last, and
//!   returns the new [`Manifest`] (blake3 per file, a fingerprint per 8 KiB
//!   page of relation files) in a [`CopyReport`].
//! - [`restore()`] pushes a backup back into a [`Destination`], verifying
//!   every file; [`combine::plan`] and [`restore_combined`] restore a chain
//!   of PostgreSQL 17+ incremental backups as the one data directory
//!   `pg_combinebackup` would write, reconstructing relation files from
//!   their `INCREMENTAL.*` versions while streaming them.
//! - Sources: [`LocalSource`] (in process) and [`AgentSource`] (a child
//!   process speaking the protocol of [`protocol`], e.g. `ssh host barman
//!   agent`, served by [`agent::serve`]). Paths from a peer are validated
//!   ([`RelPath`]: no `..`, no absolute paths; symlinks inside a tree are
//!   never followed).
//!
//! # Example
//!
//! Two backups of a small tree; the second hard-links the unchanged file.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::os::unix::fs::MetadataExt;
//! use std::sync::{Arc, atomic::AtomicBool};
//! use barman_copy::{
//!     CopyPlan, ExecOptions, Exclusions, LocalFactory, NoProgress, PlanOptions, Reuse,
//!     SourceFactory, execute,
//! };
//!
//! let pgdata = tempfile::tempdir()?;
//! std::fs::create_dir_all(pgdata.path().join("base/5"))?;
//! std::fs::write(pgdata.path().join("base/5/16384"), vec![7u8; 8192])?;
//! std::fs::write(pgdata.path().join("postmaster.pid"), "4242")?;
//! let backups = tempfile::tempdir()?;
//!
//! let roots = BTreeMap::from([("data".to_string(), pgdata.path().to_path_buf())]);
//! let sources = LocalFactory::new(roots);
//! let listing = sources.open()?.list("data", &Exclusions::postgres_default())?;
//! assert!(listing.iter().all(|e| e.path.as_str() != "data/postmaster.pid"));
//!
//! let first = backups.path().join("1");
//! let plan = CopyPlan::compute(None, &listing, &PlanOptions::default());
//! let report = execute(&plan, &sources, &first, &ExecOptions::default(), &NoProgress, &AtomicBool::new(false))?;
//! assert_eq!(report.files_fetched, 1);
//!
//! let second = backups.path().join("2");
//! let options = PlanOptions { reuse: Reuse::Link, ..PlanOptions::default() };
//! let plan = CopyPlan::compute(Some(&report.manifest), &listing, &options);
//! let exec = ExecOptions {
//!     reuse: Reuse::Link,
//!     previous_dir: Some(first.clone()),
//!     previous: Some(Arc::new(report.manifest.clone())),
//!     ..ExecOptions::default()
//! };
//! let again = execute(&plan, &sources, &second, &exec, &NoProgress, &AtomicBool::new(false))?;
//! assert_eq!(again.files_linked, 1);
//! let ino = |p: &std::path::Path| std::fs::metadata(p.join("data/base/5/16384")).map(|m| m.ino());
//! assert_eq!(ino(&first)?, ino(&second)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod agent;
pub mod combine;
mod entry;
mod error;
mod exclusion;
pub mod executor;
pub mod fsutil;
pub mod hash;
pub mod listing;
pub mod local;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod protocol;
pub mod ratelimit;
pub mod remote;
pub mod restore;
pub mod source;

pub use agent::serve;
pub use entry::{Entry, EntryKind, FileMeta, Mtime, RelPath, SETID_BITS, copy_mode, warn_setid};
pub use error::{Error, Result};
pub use exclusion::{Exclusion, Exclusions, Matcher, Rule};
pub use executor::{CopyReport, ExecOptions, execute};
pub use local::{LocalFactory, LocalSource};
pub use manifest::{Manifest, ManifestEntry};
pub use plan::{Action, CopyPlan, PlanItem, PlanOptions, Reuse};
pub use progress::{NoProgress, Progress};
pub use remote::{AgentFactory, AgentSource, SessionOptions};
pub use restore::{
    Destination, DestinationFactory, LocalDestination, RestoreOptions, RestoreReport, restore,
    restore_combined,
};
pub use source::{ByteSink, PageSink, Roots, Source, SourceFactory};

/// Runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
