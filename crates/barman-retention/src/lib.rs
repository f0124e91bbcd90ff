//! Barman retention policies.
//!
//! (crate documentation is being written; see README.md)

mod error;
mod policy;

pub use error::{Error, Result};
pub use policy::{RetentionPolicy, WindowUnit};
