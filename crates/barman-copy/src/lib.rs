//! File-tree copy for PostgreSQL base backups.
//!
//! The copy engine (listing, copy plans, hard-link reuse, deltas, workers) is
//! built in steps; this first piece is the part every step relies on: which
//! entries of a data directory a base backup copies. [`Exclusions`] is a pure
//! matcher implementing PostgreSQL's own base-backup rules
//! ([`Exclusions::postgres_default`], from `basebackup.c`) and Barman's
//! additions for its rsync copy ([`Exclusions::barman_rsync`]). Each path
//! gets an [`Exclusion`]: copy it, keep it as an empty directory, or leave it
//! out; [`Exclusions::explain`] names the [`Rule`] and its reason.
//!
//! `global/pg_control` is not excluded: the copy engine copies it last, as
//! PostgreSQL does, so that the backup never holds a control file newer than
//! its data.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//! use barman_copy::{Exclusion, Exclusions};
//!
//! let rules = Exclusions::postgres_default();
//! assert_eq!(rules.is_excluded(Path::new("base/16384/16400"), false), Exclusion::Include);
//! assert_eq!(rules.is_excluded(Path::new("pg_wal"), true), Exclusion::ExcludeContents);
//! assert_eq!(rules.is_excluded(Path::new("pg_wal/000000010000000000000001"), false), Exclusion::Exclude);
//! assert_eq!(rules.is_excluded(Path::new("base/16384/pgsql_tmp/x"), false), Exclusion::Exclude);
//!
//! let why = rules.explain(Path::new("postmaster.pid"), false).unwrap();
//! assert!(why.reason().contains("postmaster"));
//! ```

pub mod agent;
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
pub mod source;

pub use agent::serve;
pub use entry::{Entry, EntryKind, Mtime, RelPath};
pub use error::{Error, Result};
pub use exclusion::{Exclusion, Exclusions, Matcher, Rule};
pub use executor::{CopyReport, ExecOptions, execute};
pub use local::{LocalFactory, LocalSource};
pub use manifest::{Manifest, ManifestEntry};
pub use plan::{Action, CopyPlan, PlanItem, PlanOptions, Reuse};
pub use progress::{NoProgress, Progress};
pub use remote::{AgentFactory, AgentSource};
pub use source::{Roots, Source, SourceFactory};

/// Runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
