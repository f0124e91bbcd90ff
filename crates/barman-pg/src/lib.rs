//! PostgreSQL access for barman-rs: libpq connection strings
//! ([`conninfo`]: `key=value` and URIs, redaction, `~/.pgpass`), TLS with
//! libpq's `sslmode` semantics ([`tls`]), the SQL connection
//! ([`postgres`]: a blocking facade over `tokio-postgres`) and the physical
//! replication-protocol client ([`replication`]: `IDENTIFY_SYSTEM`,
//! `TIMELINE_HISTORY`, `BASE_BACKUP`, `START_REPLICATION`, slots).
//!
//! No Barman concepts live here (no configuration, catalog or backup
//! state): the crate speaks PostgreSQL's protocols and nothing else, so the
//! crates that only read Barman's files do not compile tokio, tokio-postgres
//! or rustls.
//!
//! # Invariants
//!
//! - Messages and `Debug` output MUST NOT contain a password: conninfo
//!   strings are shown through [`conninfo::redact`].
//! - Both connection paths MUST parse conninfo strings with
//!   [`conninfo::parse`] and negotiate TLS with [`tls`], so that a setting
//!   means the same for SQL and replication connections.
//! - Every size or count a server sends is checked before it is used
//!   (no arithmetic overflow, no unbounded allocation).

#![deny(missing_docs)]

pub mod conninfo;
mod error;
pub mod postgres;
pub mod replication;
pub mod tls;

pub use error::{Error, Result};
