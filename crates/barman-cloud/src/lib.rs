//! Barman's object-storage layout: the bucket format of the
//! `barman-cloud-*` tools (Barman 3.20), so that barman-rs and Barman read
//! and write each other's buckets.
//!
//! [`url::CloudUrl`] parses a tool's destination or source URL into a
//! container and a key prefix, [`layout::Layout`] builds every object key
//! of a server's catalog and parses listed keys back into WAL names and
//! tar parts, [`size`] reads Barman's size syntax (those three do no I/O);
//! [`store::Bucket`] is the provider client (S3, Azure Blob Storage, on
//! `object_store`) and [`wal`] the WAL archive in a bucket. Library code
//! prints nothing: results and typed errors, logs through `tracing`.
//!
//! ```
//! use barman_cloud::layout::{Layout, TarPart, Tree};
//! use barman_cloud::url::{CloudUrl, Provider};
//!
//! let url = CloudUrl::parse("s3://backups/pg", Provider::AwsS3)?;
//! let layout = Layout::new(url.path(), "main");
//! assert_eq!(
//!     layout.wal_key(&"000000010000000000000004".parse()?, Some("gz")),
//!     "pg/main/wals/0000000100000000/000000010000000000000004.gz"
//! );
//! let part = TarPart { tree: Tree::Data, part: 1, extension: Some("zst".into()) };
//! assert_eq!(
//!     layout.tar_key("20261207T101500", &part),
//!     "pg/main/base/20261207T101500/data_0001.tar.zst"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod aws_profile;
pub mod backup;
pub mod catalog;
pub mod delete;
pub mod gcs;
pub mod layout;
pub mod manifest;
mod pipe;
pub mod restore;
pub mod size;
pub mod store;
mod tarfile;
pub mod url;
pub mod wal;
mod walk;

mod error;

pub use error::{Error, Result};

/// Runs the README's example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
