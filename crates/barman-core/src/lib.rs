//! Barman-compatible configuration, catalog and operations.
//!
//! (crate documentation is being written; see README.md)

pub mod catalog;
pub mod config;
mod error;
pub mod fs;

pub use catalog::{BackupId, BackupInfo, BackupStatus, Catalog, ServerLayout};
pub use error::{Error, Result};
