//! PostgreSQL WAL naming, positions, timelines, page headers and compression.
//!
//! (crate documentation is being written; see README.md)

mod compression;
mod error;

pub use compression::{Compression, CompressionLevel};
pub use error::{Error, Result};
